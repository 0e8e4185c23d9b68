// A byte stream from one agent to another over ZeroMQ, with credit-based
// flow control: the receiver grants `window` chunks at first and one more
// for each chunk its consumer has taken, so neither side ever holds more
// than window x chunk bytes. Every chunk carries an XXH3 of its bytes and
// the end an XXH3 of those chunk hashes, in order (addChunkHash): each byte
// is hashed once on each side, and the end still checks that the chunks
// that arrived are the ones sent. A stream is authorised by a one-time token
// the receiver was given (by the coordinator) for it alone.
//
// The sender is a ByteSink and the receiver a ByteSource, so a checkpoint
// bundle is written into one and read out of the other as from a file.
//
// Thread-safety: each end is used by one thread (ZeroMQ sockets are not
// shared). Blocking: write/read/finish block on the peer, each wait bounded
// by StreamOptions::timeout (then Error kRetryable: the peer is gone).
#pragma once

#include <xxhash.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/byte_stream.h"
#include "common/error.h"
#include "protocol/curve.h"
#include "protocol/framing.h"
#include "protocol/page_feed.h"

namespace ferry::proto {

struct StreamOptions {
  size_t chunk_bytes = 1 << 20;
  uint32_t window = 8;
  std::chrono::milliseconds timeout{30000};
  // CurveZMQ once keys are configured: the receiver is the CURVE server
  // (its context needs a ZapAuthenticator listing the senders' keys), the
  // sender a client that must know the receiver's public key.
  std::optional<KeyPair> own_keys;
  std::string peer_public_key;  // the sender's view of the receiver
  // Receiver with own_keys: the ZAP domain of its socket (default "ferry"),
  // e.g. a StreamKeys::Vouch's, which admits only the key vouched for it.
  std::string zap_domain;
  // Receiver: when set and true, a wait ends with Error kRetryable within
  // 100 ms (the caller gave up on the stream).
  const std::atomic<bool>* cancel = nullptr;
  // When set: called with each chunk's payload bytes (as on the wire) as
  // it is sent (sender) or taken, checksum verified (receiver), on the
  // stream's thread -- e.g. a daemon's byte counters.
  std::function<void(uint64_t)> count_bytes;
};

class PageSource;

// The end's checksum (stream protocol 5): XXH3-64 over each chunk's XXH3-64
// as 8 little-endian bytes, in order. Adds one chunk's to `end`.
inline void addChunkHash(XXH3_state_t* end, uint64_t chunk_xxh3) {
  unsigned char le[8];
  for (int i = 0; i < 8; ++i) le[i] = static_cast<unsigned char>(chunk_xxh3 >> (8 * i));
  XXH3_64bits_update(end, le, sizeof le);
}

// What ChunkSender::probeLink measured.
struct LinkProbe {
  uint64_t bytes = 0;  // probe bytes the receiver took
  int64_t us = 0;      // from the first sent to the receiver's credit for the last
  // The steady part: the bytes credited after the first probe's credit, and
  // the time from that credit to the last (0 with a single probe). It
  // leaves out the first round trip.
  uint64_t steady_bytes = 0;
  int64_t steady_us = 0;
  // The steady rate where there is one, else the whole probe's.
  double bytesPerSecond() const {
    if (steady_us > 0) return static_cast<double>(steady_bytes) * 1e6 / steady_us;
    return us > 0 ? static_cast<double>(bytes) * 1e6 / us : 0;
  }
};

class ChunkSender : public ByteSink {
 public:
  // Connects a DEALER to the receiver's endpoint and opens the stream.
  ChunkSender(zmq::context_t& ctx, const std::string& endpoint, const std::string& token,
              const std::string& label, StreamOptions opts = {});
  ~ChunkSender() override;

  // Measures what the link carries, before the first write: probes of a
  // chunk's size (incompressible) go out as credit allows -- the window in
  // flight, as the stream's chunks will be -- for kProbeSendFor, or until
  // kProbeMaxBytes went; then it waits for the credit of the last. Costs
  // that time (plus the window's drain on a slow link) and nothing on the
  // receiver but the reading. Throws like write() when the receiver
  // refuses or is silent.
  static constexpr uint64_t kProbeMaxBytes = uint64_t{32} << 20;
  static constexpr std::chrono::milliseconds kProbeSendFor{150};
  LinkProbe probeLink();
  // Buffers and sends in chunks; blocks while the receiver grants no credit.
  // Throws the receiver's Error if it refused the stream.
  void write(std::string_view data) override;
  // Sends what is buffered and the end, then waits for the receiver's
  // verdict: returns when it accepted, throws its Error otherwise.
  void finish();
  // Post-copy, on the source: like finish(), but while the verdict is
  // awaited, the receiver's wants are answered with pages read from
  // `page_server` (a connected socket to CRIU's page server; see
  // page_feed.h), those it holds from pre-copy (`held`, may be empty) by
  // name. `on_restored` runs when the receiver says the container runs
  // there; `on_bytes` (at most every 250 ms, and once at the end) with the
  // page bytes sent so far. Returns on an accepting verdict; throws the receiver's Error, or
  // kRetryable when it goes silent past the timeout or the page server
  // fails -- then verdictUnknown() when the receiver had said it has every
  // page (the copy there may run), copyCutShort() when not (it is killed
  // there). Closes nothing: the caller owns `page_server`.
  PageFeedStats finishWithPages(int page_server, const HeldLookup& held,
                                const std::function<void()>& on_restored,
                                const std::function<void(uint64_t)>& on_bytes);
  // Tells the receiver to discard everything (best effort, never throws).
  void abort(const std::string& why) noexcept;

  uint64_t bytesSent() const { return bytes_; }
  // After finish() timed out: every byte went, and whether the receiver
  // took them (and acted on them) is unknown.
  bool verdictUnknown() const { return verdict_unknown_; }
  // After finishWithPages failed: the receiver restored a copy, but its
  // pages stopped before the last. Its agent kills it once the stream is
  // silent for its own timeout (or at once, when it fails first).
  bool copyCutShort() const { return cut_short_; }
  // The receiver's silence timeout, when it said (post-copy): a copy there
  // cut short is killed within it of the last word it heard from here.
  std::optional<std::chrono::milliseconds> peerTimeout() const { return peer_timeout_; }

 private:
  void sendChunk(std::string_view data);
  void sendEnd();
  void awaitCredit();
  void handle(const zmq::message_t& frame, PageSource* pages = nullptr, bool* restored = nullptr);

  zmq::socket_t sock_;
  StreamOptions opts_;
  std::string buf_;
  uint32_t credit_ = 0;
  uint64_t credits_in_ = 0;  // every credit granted so far
  uint64_t seq_ = 0;
  uint64_t bytes_ = 0;
  XXH3_state_t* hash_;
  bool done_ = false;
  bool verdict_unknown_ = false;
  bool cut_short_ = false;
  std::optional<std::chrono::milliseconds> peer_timeout_;
};

class ChunkReceiver : public ByteSource {
 public:
  // Binds a ROUTER on `endpoint` (e.g. "tcp://127.0.0.3:0": any free port)
  // for one stream presenting `token`. `host` names this side in errors.
  ChunkReceiver(zmq::context_t& ctx, const std::string& endpoint, std::string token,
                std::string host, StreamOptions opts = {});
  ~ChunkReceiver() override;

  // The bound endpoint, with the port the kernel chose.
  std::string endpoint() const;
  // Blocks until a sender with the token has opened the stream.
  void awaitOpen();
  // The next bytes; 0 only once the end arrived and every byte checked out.
  // Throws Error when the sender aborts, the stream is damaged or the sender
  // goes silent past the timeout. Only the sender that opened the stream
  // (its connection: ROUTER refuses a second peer of the same routing id)
  // counts; other peers' frames are dropped and never extend the timeout.
  size_t read(char* buf, size_t n) override;
  // Post-copy, on the target, once read() returned 0: serves the CRIU
  // lazy-pages daemon on `daemon` (its page-server connection) with the
  // pages of `lazy` (every lazy range of the dump), fetched from the sender
  // ahead of the daemon or when it waits for them, those held from
  // pre-copy taken from `held` (page_feed.h). Tells the sender `restored`
  // as soon as it is set (and first, its own timeout); both sides send a
  // keepalive when quiet. Returns once the daemon's connection ended:
  // complete when after its close was answered. Throws Error when `stop`
  // is set, the sender aborts or is silent past the timeout, pages wanted
  // do not come for that long, or the daemon or the sender breaks the
  // protocol. It never closes or shuts `daemon`: the caller kills the
  // container first (LazyRestore::abort), so no task reads a page that did
  // not come.
  PageFeedStats servePages(int daemon, std::vector<PageRange> lazy, const HeldPages& held,
                           const std::atomic<bool>& restored, const std::atomic<bool>& stop);
  // The verdict for the sender, once the consumer is done (or failed).
  void accept();
  void reject(const Error& e);

  const std::string& label() const { return label_; }

 private:
  // Receives and handles messages until one from the sender (its open
  // included) was handled; throws when none came within the timeout.
  void receive(const std::string& waiting_for);
  // Each says whether the frame was the sender's (false: a stranger's,
  // refused or dropped).
  bool handle(const zmq::message_t& identity, zmq::message_t&& frame);
  bool admit(const zmq::message_t& identity, const zmq::message_t& frame);
  void grant(uint32_t chunks);
  void sendToPeer(zmq::message_t&& frame);
  void keepVerdict();
  static constexpr int kVerdictLingerMs = 5000;

  zmq::socket_t sock_;
  std::string token_;
  std::string host_;
  StreamOptions opts_;
  std::string peer_;   // the accepted sender's ROUTER identity
  std::string label_;
  // A chunk that arrived, read where it lies in its frame.
  struct Ready {
    std::unique_ptr<Decoded> frame;
    const char* data;
    size_t size;
  };
  std::deque<Ready> ready_;
  size_t offset_ = 0;  // into ready_.front()
  uint64_t next_seq_ = 0;
  uint64_t bytes_ = 0;
  uint64_t probe_bytes_ = 0;
  XXH3_state_t* hash_;
  bool ended_ = false;
};

}  // namespace ferry::proto
