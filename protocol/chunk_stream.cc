#include "protocol/chunk_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstring>

#include "common/fd.h"
#include "protocol/framing.h"
#include "protocol/page_feed.h"
#include "protocol/stream.capnp.h"
#include "protocol/stream_message.h"

namespace ferry::proto {

namespace {

// Waits up to `timeout` for a message. A signal does not end the wait: a
// handler (the agent's SIGTERM) may run on a stream's thread, and poll then
// fails with EINTR.
bool pollIn(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    try {
      return zmq::poll(&item, 1, timeout) > 0;
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    timeout = std::max(std::chrono::milliseconds(0),
                       std::chrono::duration_cast<std::chrono::milliseconds>(
                           deadline - std::chrono::steady_clock::now()));
  }
}

}  // namespace

namespace {

// A raw descriptor beside the stream's socket in one poll.
zmq::pollitem_t fdItem(int fd, short events) { return zmq::pollitem_t{nullptr, fd, events, 0}; }

int pollItems(zmq::pollitem_t* items, size_t n, std::chrono::milliseconds timeout) {
  try {
    return zmq::poll(items, n, timeout);
  } catch (const zmq::error_t& e) {
    if (e.num() != EINTR) throw;
    return 0;
  }
}

}  // namespace

// ---- sender ---------------------------------------------------------------

ChunkSender::ChunkSender(zmq::context_t& ctx, const std::string& endpoint,
                         const std::string& token, const std::string& label, StreamOptions opts)
    : sock_(ctx, zmq::socket_type::dealer), opts_(opts), hash_(XXH3_createState()) {
  XXH3_64bits_reset(hash_);
  applySocketLimits(sock_);
  if (opts_.own_keys) makeCurveClient(sock_, *opts_.own_keys, opts_.peer_public_key);
  sock_.connect(endpoint);
  sock_.send(message([&](StreamMessage::Builder m) {
    auto o = m.initOpen();
    o.setToken(dataOf(token));
    o.setLabel(label);
  }), zmq::send_flags::none);
}

ChunkSender::~ChunkSender() {
  if (!done_) abort("the sender went away before the end");
  XXH3_freeState(hash_);
}

namespace {

// A chunk of bytes no compressor along the way shrinks (xorshift64).
std::string probeNoise(size_t n) {
  std::string s(n, '\0');
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= s.size(); i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(&s[i], &x, 8);
  }
  return s;
}

int64_t microsBetween(std::chrono::steady_clock::time_point a,
                      std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

}  // namespace

LinkProbe ChunkSender::probeLink() {
  if (done_ || seq_ > 0 || !buf_.empty()) violation("a link probe after the stream's bytes");
  const std::string probe = probeNoise(opts_.chunk_bytes);
  awaitCredit();  // the receiver's first grant: from here on, every credit answers a probe
  const uint64_t credits0 = credits_in_;
  uint64_t probes = 0, sent = 0;
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  std::optional<Clock::time_point> first;  // the first probe's credit
  uint64_t credited_at_first = 0;
  auto take = [&](const zmq::message_t& frame) {
    handle(frame);
    if (!first && credits_in_ > credits0) {
      first = Clock::now();
      credited_at_first = credits_in_ - credits0;
    }
  };
  zmq::message_t frame;
  while (sent < kProbeMaxBytes && Clock::now() - t0 < kProbeSendFor) {
    while (sock_.recv(frame, zmq::recv_flags::dontwait)) take(frame);
    while (credit_ == 0) {
      if (!pollIn(sock_, opts_.timeout)) {
        throw Error(ferry::ErrorCategory::kRetryable,
                    "the receiver took no link probe within " +
                        std::to_string(opts_.timeout.count()) + " ms (is it still there?)");
      }
      while (sock_.recv(frame, zmq::recv_flags::dontwait)) take(frame);
    }
    sock_.send(message([&](StreamMessage::Builder m) { m.setProbe(dataOf(probe)); }),
               zmq::send_flags::none);
    --credit_;
    ++probes;
    sent += probe.size();
  }
  while (credits_in_ - credits0 < probes) {
    if (!pollIn(sock_, opts_.timeout)) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "the receiver took no link probe within " +
                      std::to_string(opts_.timeout.count()) + " ms (is it still there?)");
    }
    while (sock_.recv(frame, zmq::recv_flags::dontwait)) take(frame);
  }
  const auto end = Clock::now();
  LinkProbe p{sent, microsBetween(t0, end)};
  if (first && probes > credited_at_first) {
    p.steady_bytes = (probes - credited_at_first) * probe.size();
    p.steady_us = microsBetween(*first, end);
  }
  return p;
}

void ChunkSender::write(std::string_view data) {
  if (done_) violation("write after the stream ended");
  // Whole chunks straight from the caller's buffer; the rest waits in buf_.
  if (!buf_.empty()) {
    size_t take = std::min(data.size(), opts_.chunk_bytes - buf_.size());
    buf_.append(data.substr(0, take));
    data.remove_prefix(take);
    if (buf_.size() < opts_.chunk_bytes) return;
    sendChunk(buf_);
    buf_.clear();
  }
  while (data.size() >= opts_.chunk_bytes) {
    sendChunk(data.substr(0, opts_.chunk_bytes));
    data.remove_prefix(opts_.chunk_bytes);
  }
  buf_.append(data);
}

void ChunkSender::sendChunk(std::string_view data) {
  awaitCredit();
  // Bytes that are word-aligned and whole words are referenced, not copied
  // into the message: encode() copies them once, into the frame.
  const bool external = reinterpret_cast<uintptr_t>(data.data()) % alignof(capnp::word) == 0 &&
                        data.size() % sizeof(capnp::word) == 0;
  const uint64_t xxh3 = XXH3_64bits(data.data(), data.size());
  sock_.send(message([&](StreamMessage::Builder m) {
    auto c = m.initChunk();
    c.setSeq(seq_);
    if (external) {
      c.adoptData(capnp::Orphanage::getForMessageContaining(m).referenceExternalData(dataOf(data)));
    } else {
      c.setData(dataOf(data));
    }
    c.setXxh3(xxh3);
  }), zmq::send_flags::none);
  --credit_;
  ++seq_;
  bytes_ += data.size();
  if (opts_.count_bytes) opts_.count_bytes(data.size());
  addChunkHash(hash_, xxh3);
}

void ChunkSender::awaitCredit() {
  // Take what has arrived (credit, or a refusal) without waiting.
  zmq::message_t frame;
  while (sock_.recv(frame, zmq::recv_flags::dontwait)) handle(frame);
  while (credit_ == 0) {
    if (!pollIn(sock_, opts_.timeout)) {
      throw Error(ferry::ErrorCategory::kRetryable, "the receiver granted no credit within " +
                                                 std::to_string(opts_.timeout.count()) +
                                                 " ms (is it still there?)");
    }
    if (sock_.recv(frame, zmq::recv_flags::dontwait)) handle(frame);
  }
}

void ChunkSender::handle(const zmq::message_t& frame, PageSource* pages, bool* restored) {
  Decoded d(frame);
  guard([&] {
    auto m = d.root<StreamMessage>();
    checkVersion(m);
    if (pages && pages->take(m)) return;
    switch (m.which()) {
      case StreamMessage::RESTORED:
        if (!restored) violation("unexpected 'restored' from the receiver");
        *restored = true;
        return;
      case StreamMessage::POSTCOPY_TIMEOUT_MS:
        if (!pages) violation("unexpected post-copy timeout from the receiver");
        peer_timeout_ = std::chrono::milliseconds(m.getPostcopyTimeoutMs());
        return;
      case StreamMessage::KEEPALIVE:
        if (!pages) violation("unexpected keepalive from the receiver");
        return;
      case StreamMessage::CREDIT:
        credit_ = std::min<uint64_t>(uint64_t{credit_} + m.getCredit(), opts_.window * 4u);
        credits_in_ += m.getCredit();
        return;
      case StreamMessage::DONE: {
        done_ = true;
        auto done = m.getDone();
        if (done.isError()) throw toError(done.getError(), "the receiver refused the stream: ");
        return;
      }
      default:
        violation("unexpected message from the receiver");
    }
  });
}

void ChunkSender::sendEnd() {
  if (!buf_.empty()) {
    sendChunk(buf_);
    buf_.clear();
  }
  sock_.send(message([&](StreamMessage::Builder m) {
    auto e = m.initEnd();
    e.setChunks(seq_);
    e.setBytes(bytes_);
    e.setXxh3(XXH3_64bits_digest(hash_));
  }), zmq::send_flags::none);
}

void ChunkSender::finish() {
  sendEnd();
  zmq::message_t frame;
  while (!done_) {
    if (!pollIn(sock_, opts_.timeout)) {
      verdict_unknown_ = true;
      throw Error(ferry::ErrorCategory::kRetryable, "the receiver gave no verdict within " +
                                                 std::to_string(opts_.timeout.count()) + " ms");
    }
    if (sock_.recv(frame, zmq::recv_flags::dontwait)) handle(frame);
  }
}

PageFeedStats ChunkSender::finishWithPages(int page_server, const HeldLookup& held,
                                          const std::function<void()>& on_restored,
                                          const std::function<void(uint64_t)>& on_bytes) {
  sendEnd();
  std::optional<PageSource> source;
  bool restored = false, told = false;
  auto heard = std::chrono::steady_clock::now();
  auto reported = heard, spoke = heard;
  zmq::message_t frame;
  try {
    source.emplace(page_server, held,
                   [&](zmq::message_t&& f) { sock_.send(f, zmq::send_flags::none); },
                   opts_.timeout);
    PageSource& pages = *source;
    while (!done_) {
      bool any = false;
      while (!done_ && sock_.recv(frame, zmq::recv_flags::dontwait)) {
        any = true;
        handle(frame, &pages, &restored);
      }
      auto now = std::chrono::steady_clock::now();
      if (any) heard = now;
      if (done_) break;
      if (restored && !told) {
        told = true;
        if (on_restored) on_restored();
      }
      if (on_bytes && now - reported >= std::chrono::milliseconds(250)) {
        reported = now;
        on_bytes(pages.stats().bytes);
      }
      if (now - spoke >= opts_.timeout / 4) {  // the receiver counts silence too
        spoke = now;
        sock_.send(message([&](StreamMessage::Builder m) { m.setKeepalive(); }),
                   zmq::send_flags::none);
      }
      // One answer at a time, so that an urgent want that came meanwhile
      // goes next (and what came while CRIU was read counts before any
      // silence does); wait only when there is nothing to answer.
      if (pages.answerOne()) {
        spoke = std::chrono::steady_clock::now();
        continue;
      }
      if (pollIn(sock_, std::chrono::milliseconds(100))) continue;
      if (std::chrono::steady_clock::now() - heard > opts_.timeout) {
        throw Error(ferry::ErrorCategory::kRetryable,
                    std::string("nothing from the receiver within ") +
                        std::to_string(opts_.timeout.count()) + " ms " +
                        (restored ? "during post-copy" : "while it restored"));
      }
    }
  } catch (const std::exception& e) {
    if (!done_) {
      // No verdict. From the end of the stream on, the receiver may have
      // restored a copy (its `restored` may never have come). Once it said
      // it had every page, that copy may run (unknown). Short of that it
      // waits for a page that never comes, and its agent kills it once
      // this side was silent for its own timeout (cut short) -- or at once
      // on this abort, should it arrive.
      const bool complete = source && source->complete();
      verdict_unknown_ = complete;
      cut_short_ = !complete;
      abort(std::string("post-copy failed on the source: ") + e.what());
    }
    throw;
  }
  if (on_bytes) on_bytes(source->stats().bytes);  // the last word: every page went
  return source->stats();
}

void ChunkSender::abort(const std::string& why) noexcept {
  try {
    done_ = true;
    // As the receiver's verdict: the close right after must not drop it.
    sock_.set(zmq::sockopt::linger, 2000);
    sock_.send(message([&](StreamMessage::Builder m) {
      auto a = m.initAbort();
      a.setCategory(proto::ErrorKind::PERMANENT);
      a.setMessage(why);
    }), zmq::send_flags::dontwait);
  } catch (...) {
    // Best effort: the receiver also times out.
  }
}

// ---- receiver -------------------------------------------------------------

ChunkReceiver::ChunkReceiver(zmq::context_t& ctx, const std::string& endpoint, std::string token,
                             std::string host, StreamOptions opts)
    : sock_(ctx, zmq::socket_type::router), token_(std::move(token)), host_(std::move(host)),
      opts_(opts), hash_(XXH3_createState()) {
  XXH3_64bits_reset(hash_);
  applySocketLimits(sock_);
  if (opts_.own_keys) {
    makeCurveServer(sock_, *opts_.own_keys);
    if (!opts_.zap_domain.empty()) sock_.set(zmq::sockopt::zap_domain, opts_.zap_domain);
  }
  sock_.bind(endpoint);
}

ChunkReceiver::~ChunkReceiver() { XXH3_freeState(hash_); }

std::string ChunkReceiver::endpoint() const { return sock_.get(zmq::sockopt::last_endpoint); }

// The deadline is set once per wait and moved by nothing but the accepted
// sender: frames of other peers -- refused opens, chunks on a connection
// that never opened, garbage -- are handled (answered or dropped) without
// ending the wait, so a stranger sending every 100 ms cannot keep the
// stream (its worker, the container's busy mark) alive past its timeout.
void ChunkReceiver::receive(const std::string& waiting_for) {
  auto deadline = std::chrono::steady_clock::now() + opts_.timeout;
  for (;;) {
    // In slices, so that a cancel flag is seen within 100 ms.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (opts_.cancel && opts_.cancel->load()) {
      throw Error(ferry::ErrorCategory::kRetryable, "cancelled while waiting for " + waiting_for);
    }
    if (left.count() <= 0) {
      throw Error(ferry::ErrorCategory::kRetryable, "nothing from the sender within " +
                                                 std::to_string(opts_.timeout.count()) +
                                                 " ms while waiting for " + waiting_for);
    }
    if (!pollIn(sock_, std::min(left, std::chrono::milliseconds(100)))) continue;
    zmq::message_t identity, frame;
    if (!sock_.recv(identity, zmq::recv_flags::dontwait)) continue;
    if (!identity.more() || !sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
    while (frame.more()) {  // a well-behaved DEALER sends one frame
      zmq::message_t extra;
      if (!sock_.recv(extra, zmq::recv_flags::dontwait)) break;
      frame = std::move(extra);
    }
    if (handle(identity, std::move(frame))) return;
  }
}

bool ChunkReceiver::handle(const zmq::message_t& identity, zmq::message_t&& frame) {
  std::string from(static_cast<const char*>(identity.data()), identity.size());
  if (!peer_.empty() && from != peer_) return false;  // only the accepted sender counts
  if (peer_.empty()) return admit(identity, frame);
  auto d = std::make_unique<Decoded>(std::move(frame));
  guard([&] {
    auto m = d->root<StreamMessage>();
    checkVersion(m);
    switch (m.which()) {
      case StreamMessage::CHUNK: {
        auto c = m.getChunk();
        if (ended_) violation("chunk after the end");
        if (c.getSeq() != next_seq_) violation("chunk " + std::to_string(c.getSeq()) + " out of order");
        auto data = c.getData();
        if (data.size() > opts_.chunk_bytes) violation("chunk larger than agreed");
        // (read() returning 0 bytes means the end: a sender never sends one)
        if (data.size() == 0) violation("an empty chunk");
        if (ready_.size() >= opts_.window) violation("sender exceeded its credit");
        if (XXH3_64bits(data.begin(), data.size()) != c.getXxh3()) {
          violation("chunk " + std::to_string(next_seq_) + " fails its checksum (damaged in transit)");
        }
        addChunkHash(hash_, c.getXxh3());
        bytes_ += data.size();
        if (opts_.count_bytes) opts_.count_bytes(data.size());
        ++next_seq_;
        ready_.push_back(
            Ready{std::move(d), reinterpret_cast<const char*>(data.begin()), data.size()});
        return;
      }
      case StreamMessage::END: {
        auto e = m.getEnd();
        if (e.getChunks() != next_seq_ || e.getBytes() != bytes_ ||
            e.getXxh3() != XXH3_64bits_digest(hash_)) {
          violation("the stream's end does not match what arrived (chunks, bytes or checksum)");
        }
        ended_ = true;
        return;
      }
      case StreamMessage::PROBE:
        // Measuring the link: dropped, its credit granted back at once.
        if (ended_ || next_seq_ > 0) violation("a link probe after the stream's bytes");
        if (m.getProbe().size() > opts_.chunk_bytes) violation("a link probe larger than a chunk");
        probe_bytes_ += m.getProbe().size();
        // What a sender probes at most (it stops once past the cap).
        if (probe_bytes_ > ChunkSender::kProbeMaxBytes + opts_.chunk_bytes) {
          violation("link probes past " + std::to_string(ChunkSender::kProbeMaxBytes >> 20) +
                    " MiB");
        }
        grant(1);
        return;
      case StreamMessage::ABORT:
        throw toError(m.getAbort(), "the sender aborted the stream: ");
      default:
        violation("unexpected message from the sender");
    }
  });
  return true;
}

// Before a sender is accepted, anything that is not an Open with the token
// -- garbage included -- is answered with a refusal and otherwise ignored: a
// stranger cannot end a stream it may not join.
bool ChunkReceiver::admit(const zmq::message_t& identity, const zmq::message_t& frame) {
  Error refusal(ferry::ErrorCategory::kInvalidInput, "stream token refused");
  try {
    Decoded d(frame);
    bool ok = guard([&] {
      auto m = d.root<StreamMessage>();
      if (m.which() != StreamMessage::OPEN || !sameToken(m.getOpen().getToken(), token_)) {
        return false;
      }
      if (m.getVersion() != STREAM_PROTOCOL_VERSION) {
        // The right sender on another version (a rolling upgrade): said so.
        refusal = Error(ferry::ErrorCategory::kIncompatible,
                        "the sender speaks stream protocol " + std::to_string(m.getVersion()) +
                            ", this agent " + std::to_string(STREAM_PROTOCOL_VERSION) +
                            "; run the same ferry version on both hosts");
        return false;
      }
      label_ = m.getOpen().getLabel().cStr();
      return true;
    });
    if (ok) {
      peer_.assign(static_cast<const char*>(identity.data()), identity.size());
      grant(opts_.window);
      return true;
    }
  } catch (const Error&) {
    // Malformed: refused below like a wrong token.
  }
  zmq::message_t id(identity.data(), identity.size());
  sock_.send(id, zmq::send_flags::sndmore);
  sock_.send(message([&](StreamMessage::Builder r) {
    fillError(r.initDone().initError(), refusal, host_);
  }), zmq::send_flags::none);
  return false;
}

void ChunkReceiver::grant(uint32_t chunks) {
  zmq::message_t id(peer_.data(), peer_.size());
  sock_.send(id, zmq::send_flags::sndmore);
  sock_.send(message([&](StreamMessage::Builder m) { m.setCredit(chunks); }),
             zmq::send_flags::none);
}

void ChunkReceiver::awaitOpen() {
  while (peer_.empty()) receive("the sender to open the stream");
}

size_t ChunkReceiver::read(char* buf, size_t n) {
  awaitOpen();
  while (ready_.empty() && !ended_) receive("the next chunk");
  if (ready_.empty()) return 0;
  const Ready& front = ready_.front();
  size_t take = std::min(n, front.size - offset_);
  std::memcpy(buf, front.data + offset_, take);
  offset_ += take;
  if (offset_ == front.size) {
    ready_.pop_front();
    offset_ = 0;
    grant(1);
  }
  return take;
}

void ChunkReceiver::sendToPeer(zmq::message_t&& frame) {
  zmq::message_t id(peer_.data(), peer_.size());
  sock_.send(id, zmq::send_flags::sndmore);
  sock_.send(frame, zmq::send_flags::none);
}

PageFeedStats ChunkReceiver::servePages(int daemon, std::vector<PageRange> lazy,
                                        const HeldPages& held, const std::atomic<bool>& restored,
                                        const std::atomic<bool>& stop) {
  if (peer_.empty() || !ended_) violation("post-copy before the stream's end");
  PageTarget pages(daemon, std::move(lazy), held,
                   [&](zmq::message_t&& f) { sendToPeer(std::move(f)); });
  sendToPeer(message([&](StreamMessage::Builder m) {
    m.setPostcopyTimeoutMs(static_cast<uint32_t>(opts_.timeout.count()));
  }));
  bool told = false;
  auto heard = std::chrono::steady_clock::now();
  auto spoke = heard;
  // The last page run, or the moment pages were first missing again: the
  // daemon fetches until it has everything, so a whole timeout of waiting
  // without a run is a page server that hangs, even when keepalives come.
  auto moved = heard;
  uint64_t runs = 0;
  while (!pages.daemonEnded()) {
    if (stop.load()) {
      throw Error(ferry::ErrorCategory::kRetryable, "post-copy stopped on " + host_);
    }
    if (restored.load() && !told) {
      told = true;
      sendToPeer(message([&](StreamMessage::Builder m) { m.setRestored(); }));
    }
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0},
                               fdItem(daemon, pages.events())};
    pollItems(items, 2, std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    pages.onEvents(items[1].revents);
    zmq::message_t identity, frame;
    while (sock_.recv(identity, zmq::recv_flags::dontwait)) {
      if (!identity.more() || !sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
      std::string from(static_cast<const char*>(identity.data()), identity.size());
      if (from != peer_) continue;  // only the accepted sender counts
      Decoded d(std::move(frame));  // a run of pages is read where it arrived
      guard([&] {
        auto m = d.root<StreamMessage>();
        checkVersion(m);
        heard = now;  // the sender is there (it sends a keepalive when quiet)
        if (pages.take(m)) return;
        if (m.which() == StreamMessage::ABORT) {
          throw toError(m.getAbort(), "the sender aborted the stream: ");
        }
        if (m.which() != StreamMessage::KEEPALIVE && m.which() != StreamMessage::CREDIT) {
          violation("unexpected message during post-copy");
        }
      });
    }
    const bool waiting = pages.waitingForPages();
    pages.pump(told);
    if (pages.runs() != runs || !waiting) {
      runs = pages.runs();
      moved = now;
    }
    if (now - spoke >= opts_.timeout / 4) {  // the sender counts silence too
      spoke = now;
      sendToPeer(message([&](StreamMessage::Builder m) { m.setKeepalive(); }));
    }
    if (now - heard > opts_.timeout) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "nothing from the sender within " + std::to_string(opts_.timeout.count()) +
                      " ms during post-copy (it, or the link, is gone)");
    }
    if (pages.waitingForPages() && now - moved > opts_.timeout) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "no page from the sender's page server within " +
                      std::to_string(opts_.timeout.count()) + " ms during post-copy (it hangs)");
    }
  }
  return pages.stats();
}

// The verdict is the last thing this socket sends, and the stream is closed
// right after it: a linger of 0 (set for every socket) would let the close
// drop it while it still waits in the queue -- a slow link, a proxy -- and
// the sender would report silence instead of the restore's outcome (a full
// disk seen as "no credit"). So the verdict gets time to leave.
void ChunkReceiver::keepVerdict() { sock_.set(zmq::sockopt::linger, kVerdictLingerMs); }

void ChunkReceiver::accept() {
  if (peer_.empty()) return;
  keepVerdict();
  zmq::message_t id(peer_.data(), peer_.size());
  sock_.send(id, zmq::send_flags::sndmore);
  sock_.send(message([&](StreamMessage::Builder m) { m.initDone().setOk(); }),
             zmq::send_flags::none);
}

void ChunkReceiver::reject(const Error& e) {
  if (peer_.empty()) return;
  keepVerdict();
  zmq::message_t id(peer_.data(), peer_.size());
  sock_.send(id, zmq::send_flags::sndmore);
  sock_.send(message([&](StreamMessage::Builder m) { fillError(m.initDone().initError(), e, host_); }),
             zmq::send_flags::none);
}

}  // namespace ferry::proto
