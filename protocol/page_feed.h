// Post-copy's pages, from the source's CRIU page server to the target's CRIU
// lazy-pages daemon, over a migration's chunk stream (chunk_stream.h's
// finishWithPages and servePages drive these two ends).
//
// The target agent is the daemon's page server: it answers the daemon's
// requests (CRIU's page-server protocol, criu/page-xfer.c: 24-byte
// page_server_iov records; PS_IOV_GET asks for pages, the answer echoes the
// record with the pages that follow, possibly fewer than asked) from pages
// it holds, and asks the source for the rest with `want`s. It knows every
// lazy range of the dump (its pagemap images) and fetches them ahead of the
// daemon -- in the daemon's order, within a bound of memory -- so that the
// daemon finds them here instead of making a round trip per request (CRIU's
// daemon asks for one range at a time, 64 KiB growing to 4 MiB and back to
// 64 KiB at every fault). A page the daemon waits for that is not on its way
// is asked for at once, ahead of the rest (urgent).
//
// The source agent is the only client of its CRIU page server: it reads each
// range asked for and answers with the pages -- those the target holds from
// pre-copy (a hybrid migration) as the name of their block, the rest as
// bytes. So what crosses after pre-copy is what changed since its last round.
//
// The daemon's close is answered only once the source heard that every page
// arrived (pagesComplete, pagesHeld): a copy that may run on its own is one
// the source knows of, and keeps frozen when the verdict goes missing.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

#include "protocol/stream.capnp.h"

namespace ferry::proto {

inline constexpr size_t kPostcopyPageBytes = 4096;

// Pages of one process, named as CRIU names it (its pid in the dump).
struct PageRange {
  uint64_t id = 0;
  uint64_t vaddr = 0;
  uint32_t pages = 0;
  uint64_t end() const { return vaddr + uint64_t{pages} * kPostcopyPageBytes; }
};

// The name of a pre-copied block (its XXH3-128, as blocks.h keeps it).
using BlockName = std::array<uint8_t, 16>;
// Source: whether the target holds `page` from pre-copy (then its name).
using HeldLookup = std::function<bool(std::string_view page, BlockName& name)>;
// Target: appends the held pages named, in order; throws Error when one is
// not held.
using HeldPages = std::function<void(const std::vector<BlockName>& names, std::string& out)>;

// What a page feed moved (each side counts what it saw).
struct PageFeedStats {
  uint64_t bytes = 0;          // page bytes that crossed (held pages excluded)
  uint64_t urgent_pages = 0;   // crossed because the daemon waited for them
  uint64_t ahead_pages = 0;    // crossed ahead of the daemon
  uint64_t held_pages = 0;     // the target had from pre-copy: only their names crossed
  uint64_t fault_requests = 0;       // target: the daemon's requests for one page
  uint64_t background_requests = 0;  // target: for more
  bool complete = false;       // the target has every page, and the source knows
};

using SendFrame = std::function<void(zmq::message_t&&)>;

// The source's end. `page_server` is a connected socket to CRIU's page
// server (blocking; reads and writes are bounded by `timeout`); `held` may
// be empty (no pre-copy).
class PageSource {
 public:
  PageSource(int page_server, HeldLookup held, SendFrame send, std::chrono::milliseconds timeout);
  // A page-feed message from the target; false for any other.
  bool take(StreamMessage::Reader m);
  // Answers the next want, urgent ones first; false when none waits.
  // Throws Error kRetryable when the page server fails or hangs.
  bool answerOne();
  // The target said it has every page (and was told it was heard).
  bool complete() const { return stats_.complete; }
  const PageFeedStats& stats() const { return stats_; }

 private:
  void fetch(const PageRange& r);  // into page_buf_

  int ps_;
  HeldLookup held_;
  SendFrame send_;
  std::deque<PageRange> urgent_, ahead_;
  std::string page_buf_;
  PageFeedStats stats_;
};

// The target's end. `daemon` is the daemon's connection (non-blocking);
// `lazy` every lazy range of the dump (from its pagemap images). Throws
// Error kInvalidInput for a daemon request outside them, or a page run that
// does not answer a want.
class PageTarget {
 public:
  PageTarget(int daemon, std::vector<PageRange> lazy, HeldPages held, SendFrame send,
             uint64_t ahead_bytes = uint64_t{64} << 20);
  short events() const;           // for polling the daemon's connection
  void onEvents(short revents);   // reads its requests, writes answers
  bool take(StreamMessage::Reader m);
  // Answers what can be answered, asks for what is missing and, with
  // `ahead` (once the container runs: before, the restore needs the CPU
  // more than the pages), for what lies ahead; call after onEvents and take.
  void pump(bool ahead = true);
  // The daemon's connection ended: after its close was answered (done) or
  // before (it failed).
  bool daemonEnded() const { return eof_; }
  // Pages asked for have not all come; runs() counts those that did.
  bool waitingForPages() const { return !wants_.empty(); }
  uint64_t runs() const { return runs_; }
  const PageFeedStats& stats() const { return stats_; }

 private:
  struct Want {
    PageRange range;
    bool urgent = false;
  };
  struct Run {
    std::string bytes;
    size_t off = 0;  // pages before it were handed out
  };
  using Key = std::pair<uint64_t, uint64_t>;  // id, vaddr
  const PageRange* lazyRangeAt(uint64_t id, uint64_t vaddr) const;
  bool inflight(uint64_t id, uint64_t vaddr) const;
  bool nextAhead(PageRange& piece);
  void markRequested(const PageRange& r);
  void sendWant(const PageRange& r, bool urgent);
  bool answerHead();
  void fetchAhead();
  void takeRun(StreamMessage::PageRun::Reader run);
  void readRequests();
  void writeOut();

  int fd_;
  std::vector<PageRange> lazy_;  // by id, then vaddr
  HeldPages held_;
  SendFrame send_;
  uint64_t ahead_bytes_;
  std::string in_;    // a partial request from the daemon
  std::string out_;   // answers not yet written
  size_t out_off_ = 0;
  std::deque<PageRange> requests_;  // the daemon's, answered in order
  bool closing_ = false, complete_sent_ = false, held_heard_ = false, status_sent_ = false;
  bool eof_ = false;
  std::vector<Want> wants_;  // unanswered
  size_t ahead_wants_ = 0;   // of them, not urgent
  uint64_t runs_ = 0;
  std::map<Key, Run> buffer_;     // pages here, not yet handed out
  uint64_t buffered_bytes_ = 0;
  // Pages asked for at some point (ahead fetches skip them), per id: start -> end.
  std::map<uint64_t, std::map<uint64_t, uint64_t>> requested_;
  size_t cursor_ = 0;             // into lazy_: where fetching ahead goes on
  uint64_t cursor_at_ = 0;        // the address within lazy_[cursor_]
  uint64_t total_pages_ = 0, requested_pages_ = 0, inflight_pages_ = 0;
  PageFeedStats stats_;
};

}  // namespace ferry::proto
