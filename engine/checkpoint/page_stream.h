// A cold migration's memory streamed as CRIU dumps it: no disk on the frozen
// path. The source's runc runs CRIU with --page-server pointed at the source
// agent (a loopback port only it listens on); the agent relays what CRIU's
// page server would receive, as the bundle's "pages" stream, over the
// migration's authenticated chunk stream; the target agent feeds it to a
// `criu page-server` of its own, which writes the pagemap and pages images
// into staging beside the other images. The restore is an ordinary one.
//
// CRIU's page-server protocol (common/criu_page_server.h). A dump without
// a parent or lazy pages sends, per process and shared memory segment,
// OPEN2 (answered with one byte: has_parent), then ADD_F with PE_PRESENT
// (and PE_LAZY on anonymous memory) followed by nr_pages pages, and at the
// end CLOSE (answered with an int32 status). Nothing else is accepted on
// either side.
//
// The "pages" stream: each record in a 4096-byte unit (the 24 bytes, then
// zeros) followed by its pages, so that pages stay page-aligned in the stream
// and those the target holds from pre-copy go as references (bundle.h); it
// ends with the close, and nothing may follow it.
//
// The relay answers CRIU itself (has_parent 0, status 0), so no round trip to
// the target is on the frozen path. Its status is not the commit point: the
// target restores only once the whole bundle, with the rest of the images,
// arrived and its page server exited 0 (CRIU sends CLOSE from a failed dump
// too, and its page server flushes the pagemap only when it ends).
#pragma once

#include <chrono>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

#include "common/byte_stream.h"
#include "common/criu_page_server.h"

namespace ferry {

inline constexpr size_t kPageStreamUnit = 4096;
// Pages one ADD_F may carry (CRIU sends at most a page pipe's worth).
inline constexpr uint32_t kPageStreamMaxRun = uint32_t{1} << 18;

enum class PsRecord { kOpen, kPages, kClose };

// What `iov` is. Throws Error kInvalidInput naming what is wrong with it: a
// command other than OPEN2, ADD_F and CLOSE; flags on ADD_F other than
// PE_PRESENT (with or without PE_LAZY), or any on the others; no pages or
// more than kPageStreamMaxRun; an address not page-aligned; an id of a type
// other than a process or shared memory.
PsRecord checkPageServerIov(const PageServerIov& iov);

struct PageStreamStats {
  uint64_t pagemaps = 0;  // OPEN2s: processes and shared memory segments
  uint64_t pages = 0;
  uint64_t bytes() const { return pages * kPageStreamUnit; }
};

// Source. Relays one page-server connection from CRIU (`criu`, a connected
// socket, blocking) into `out` as the "pages" stream, answering CRIU, until
// its CLOSE. Every wait for CRIU is bounded by `timeout`. Throws Error:
// kPermanent when CRIU's connection ends before its close, goes silent or
// sends what the protocol does not allow; whatever `out` throws (the peer
// is gone) as it is. On a throw the caller closes `criu`, which fails the
// dump (CRIU lets the tasks go on).
PageStreamStats relayPageServer(int criu, ByteSink& out, std::chrono::milliseconds timeout);

// Target. Checks the "pages" stream as it is written and feeds CRIU's page
// server on `page_server` (a connected socket; used without blocking),
// reading its answers. Each wait for the server is bounded by `timeout`.
// Throws Error kInvalidInput for a stream that breaks the format above,
// kPermanent when the server fails or goes silent. Not thread-safe.
class PageStreamFeed : public ByteSink {
 public:
  PageStreamFeed(int page_server, std::chrono::milliseconds timeout);
  void write(std::string_view data) override;
  // The stream ended: it must have ended with the close, and the server
  // must have answered every record (has_parent 0 for each open, status 0
  // for the close). Throws as write().
  void finish();
  const PageStreamStats& stats() const { return stats_; }

 private:
  void unit();  // a complete header unit in unit_
  void send(std::string_view data);
  void readAnswers(bool wait);

  int fd_;
  std::chrono::milliseconds timeout_;
  std::string unit_;          // a header unit being filled
  uint64_t payload_left_ = 0;  // bytes of pages before the next unit
  bool closed_ = false;
  uint64_t answers_due_ = 0;  // bytes the server owes: 1 per open, 4 for the close
  uint64_t answers_read_ = 0;
  // Each id is opened once and takes pages only while it is the one open:
  // CRIU's page server would otherwise reopen (truncate) its images.
  std::set<uint64_t> opened_;
  uint64_t current_ = 0;
  PageStreamStats stats_;
};

}  // namespace ferry
