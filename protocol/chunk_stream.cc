#include "protocol/chunk_stream.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "common/fd.h"
#include "protocol/framing.h"
#include "protocol/stream.capnp.h"

namespace ferry::proto {

namespace {

ferry::ErrorCategory fromWire(proto::ErrorKind c) {
  switch (c) {
    case proto::ErrorKind::RETRYABLE: return ferry::ErrorCategory::kRetryable;
    case proto::ErrorKind::PERMANENT: return ferry::ErrorCategory::kPermanent;
    case proto::ErrorKind::INCOMPATIBLE: return ferry::ErrorCategory::kIncompatible;
    case proto::ErrorKind::INVALID_INPUT: return ferry::ErrorCategory::kInvalidInput;
  }
  return ferry::ErrorCategory::kPermanent;
}

proto::ErrorKind toWire(ferry::ErrorCategory c) {
  switch (c) {
    case ferry::ErrorCategory::kRetryable: return proto::ErrorKind::RETRYABLE;
    case ferry::ErrorCategory::kPermanent: return proto::ErrorKind::PERMANENT;
    case ferry::ErrorCategory::kIncompatible: return proto::ErrorKind::INCOMPATIBLE;
    case ferry::ErrorCategory::kInvalidInput: return proto::ErrorKind::INVALID_INPUT;
  }
  return proto::ErrorKind::PERMANENT;
}

void fillError(ErrorInfo::Builder b, const Error& e, const std::string& host) {
  b.setCategory(toWire(e.category()));
  b.setMessage(e.what());
  b.setHost(host);
}

Error toError(ErrorInfo::Reader r, const std::string& prefix) {
  std::string msg = prefix + std::string(r.getMessage().cStr());
  if (r.hasHost() && r.getHost().size() > 0) msg += " (on " + std::string(r.getHost().cStr()) + ")";
  return Error(fromWire(r.getCategory()), msg);
}

template <class Fill>
zmq::message_t message(Fill&& fill) {
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION);
  fill(m);
  return encode(mb);
}

capnp::Data::Reader dataOf(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// Compares without an early exit, so timing says nothing about the token.
bool sameToken(capnp::Data::Reader got, const std::string& want) {
  if (got.size() != want.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff |= got[i] ^ static_cast<unsigned char>(want[i]);
  return diff == 0;
}

[[noreturn]] void violation(const std::string& what) {
  throw Error(ferry::ErrorCategory::kInvalidInput, "stream protocol violation: " + what);
}

void checkVersion(StreamMessage::Reader m) {
  if (m.getVersion() != STREAM_PROTOCOL_VERSION) {
    throw Error(ferry::ErrorCategory::kIncompatible,
                "peer speaks stream protocol " + std::to_string(m.getVersion()) + ", this side " +
                    std::to_string(STREAM_PROTOCOL_VERSION));
  }
}

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

// ---- post-copy tunnel -----------------------------------------------------

// One end of the post-copy tunnel: a local TCP connection (to CRIU's page
// server on the source, from its lazy-pages daemon on the target) and the
// stream. Bytes read locally go to the peer as `tunnel` messages, at most
// kTunnelWindow unacknowledged; bytes from the peer are written locally and
// acknowledged with `tunnelCredit` once written. The local side's end goes
// to the peer as `tunnelEnd`; on the source, the peer's end shuts the local
// socket's sending half once everything before it was written.
class Tunnel {
 public:
  using Send = std::function<void(zmq::message_t&&)>;
  // `receiver`: the daemon's side. It counts the daemon's requests, and
  // does not pass the peer's end on: the page server ending before the
  // daemon had everything is a failure the caller handles (it kills the
  // container before the daemon lets go of its faults), not an EOF.
  Tunnel(Send send, size_t chunk_bytes, bool receiver)
      : send_(std::move(send)), chunk_bytes_(chunk_bytes), receiver_(receiver) {}

  void attach(int fd) { fd_ = fd; }
  bool attached() const { return fd_ >= 0; }
  bool localEnded() const { return local_ended_; }
  bool peerEnded() const { return peer_ended_; }
  // Nothing more to do locally: its end went out, and the peer's end came
  // and was passed on.
  bool finished() const { return local_ended_ && (peer_ended_ || broken_); }
  const TunnelStats& stats() const { return stats_; }

  short events() const {
    if (fd_ < 0) return 0;
    short ev = 0;
    if (!local_ended_ && credit_ > 0) ev |= ZMQ_POLLIN;
    if (!inbox_.empty()) ev |= ZMQ_POLLOUT;
    return ev;
  }

  // A message from the peer; false when it is not a tunnel message.
  bool take(StreamMessage::Reader m) {
    switch (m.which()) {
      case StreamMessage::TUNNEL: {
        if (peer_ended_) violation("tunnel bytes after the tunnel's end");
        if (inbox_.size() >= TUNNEL_WINDOW) violation("tunnel peer exceeded its credit");
        auto d = m.getTunnel();
        if (d.size() > chunk_bytes_) violation("tunnel message larger than a chunk");
        inbox_.emplace_back(reinterpret_cast<const char*>(d.begin()), d.size());
        if (!receiver_) countRequests(inbox_.back());  // the daemon's requests, at the source
        if (broken_) inbox_.clear();  // the local side is gone: dropped
        return true;
      }
      case StreamMessage::TUNNEL_CREDIT:
        credit_ = std::min<uint64_t>(uint64_t{credit_} + m.getTunnelCredit(), TUNNEL_WINDOW);
        return true;
      case StreamMessage::TUNNEL_END:
        peer_ended_ = true;
        shutIfDrained();
        return true;
      default:
        return false;
    }
  }

  void onEvents(short revents) {
    if (fd_ < 0) return;
    if ((revents & (ZMQ_POLLOUT | ZMQ_POLLERR)) && !inbox_.empty()) writeLocal();
    if ((revents & (ZMQ_POLLIN | ZMQ_POLLERR)) && !local_ended_ && credit_ > 0) readLocal();
  }

 private:
  void readLocal() {
    if (read_buf_.size() != chunk_bytes_) read_buf_.resize(chunk_bytes_);  // once: no memset per read
    ssize_t n = ::read(fd_, read_buf_.data(), read_buf_.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
      // EOF (or a reset: the same for the peer; stats_.completed tells).
      stats_.completed = n == 0;
      local_ended_ = true;
      send_(message([&](StreamMessage::Builder m) { m.setTunnelEnd(); }));
      return;
    }
    std::string_view got(read_buf_.data(), static_cast<size_t>(n));
    if (receiver_) countRequests(got);
    stats_.bytes_out += got.size();
    send_(message([&](StreamMessage::Builder m) { m.setTunnel(dataOf(got)); }));
    --credit_;
  }

  void writeLocal() {
    while (!inbox_.empty()) {
      const std::string& front = inbox_.front();
      ssize_t n = ::send(fd_, front.data() + offset_, front.size() - offset_, MSG_NOSIGNAL);
      if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
      if (n < 0) {  // the local side is gone; its end is read next
        broken_ = true;
        inbox_.clear();
        return;
      }
      offset_ += static_cast<size_t>(n);
      stats_.bytes_in += static_cast<uint64_t>(n);
      if (offset_ < front.size()) return;
      inbox_.pop_front();
      offset_ = 0;
      send_(message([&](StreamMessage::Builder m) { m.setTunnelCredit(1); }));
    }
    shutIfDrained();
  }

  void shutIfDrained() {
    if (!receiver_ && peer_ended_ && inbox_.empty() && !shut_ && fd_ >= 0) {
      ::shutdown(fd_, SHUT_WR);
      shut_ = true;
    }
  }

  // What the daemon asks CRIU's page server for: 24-byte page_server_iov
  // records {u32 cmd, u32 nr_pages, u64 vaddr, u64 dst_id} (criu/page-xfer.c,
  // stable since CRIU 3.x); PS_IOV_GET (7) asks for pages. A fault asks for
  // one page, the background fetch for 16 or more (64 KiB growing to 4 MiB).
  // Only counted, never relied on.
  void countRequests(std::string_view bytes) {
    constexpr size_t kRecord = 24;
    constexpr uint32_t kGet = 7, kCmdMask = 0xffff;
    while (!bytes.empty()) {
      size_t take = std::min(bytes.size(), kRecord - partial_.size());
      partial_.append(bytes.substr(0, take));
      bytes.remove_prefix(take);
      if (partial_.size() < kRecord) return;
      uint32_t cmd = 0, pages = 0;
      std::memcpy(&cmd, partial_.data(), 4);
      std::memcpy(&pages, partial_.data() + 4, 4);
      partial_.clear();
      if ((cmd & kCmdMask) != kGet) continue;
      if (pages == 1) {
        ++stats_.fault_requests;
        ++stats_.fault_pages;
      } else {
        ++stats_.background_requests;
        stats_.background_pages += pages;
      }
    }
  }

  Send send_;
  size_t chunk_bytes_;
  bool receiver_;
  int fd_ = -1;
  uint32_t credit_ = TUNNEL_WINDOW;
  std::deque<std::string> inbox_;
  size_t offset_ = 0;
  bool local_ended_ = false, peer_ended_ = false, shut_ = false, broken_ = false;
  std::string partial_;
  std::string read_buf_;
  TunnelStats stats_;
};

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
  sock_.send(message([&](StreamMessage::Builder m) {
    auto c = m.initChunk();
    c.setSeq(seq_);
    c.setData(dataOf(data));
    c.setXxh3(XXH3_64bits(data.data(), data.size()));
  }), zmq::send_flags::none);
  --credit_;
  ++seq_;
  bytes_ += data.size();
  XXH3_64bits_update(hash_, data.data(), data.size());
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

void ChunkSender::handle(const zmq::message_t& frame, Tunnel* tunnel, bool* restored) {
  Decoded d(frame);
  guard([&] {
    auto m = d.root<StreamMessage>();
    checkVersion(m);
    if (tunnel && tunnel->take(m)) return;
    switch (m.which()) {
      case StreamMessage::RESTORED:
        if (!restored) violation("unexpected 'restored' from the receiver");
        *restored = true;
        return;
      case StreamMessage::TUNNEL_TIMEOUT_MS:
        if (!tunnel) violation("unexpected tunnel timeout from the receiver");
        peer_timeout_ = std::chrono::milliseconds(m.getTunnelTimeoutMs());
        return;
      case StreamMessage::CREDIT:
        credit_ = std::min<uint64_t>(uint64_t{credit_} + m.getCredit(), opts_.window * 4u);
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

TunnelStats ChunkSender::finishWithTunnel(int local, const std::function<void()>& on_restored,
                                          const std::function<void(uint64_t)>& on_bytes) {
  sendEnd();
  Tunnel tunnel([&](zmq::message_t&& f) { sock_.send(f, zmq::send_flags::none); },
                opts_.chunk_bytes, /*receiver=*/false);
  tunnel.attach(local);
  bool restored = false, told = false;
  auto heard = std::chrono::steady_clock::now();
  auto reported = heard, spoke = heard;
  zmq::message_t frame;
  try {
    while (!done_) {
      // Once finished locally the socket is left out: a reset page server
      // would otherwise report POLLHUP on every poll.
      zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0},
                                 fdItem(tunnel.finished() ? -1 : local, tunnel.events())};
      pollItems(items, 2, std::chrono::milliseconds(100));
      auto now = std::chrono::steady_clock::now();
      if (!tunnel.finished()) tunnel.onEvents(items[1].revents);
      bool any = false;
      while (!done_ && sock_.recv(frame, zmq::recv_flags::dontwait)) {
        any = true;
        handle(frame, &tunnel, &restored);
      }
      if (any) heard = now;
      if (restored && !told) {
        told = true;
        if (on_restored) on_restored();
      }
      if (on_bytes && now - reported >= std::chrono::milliseconds(250)) {
        reported = now;
        on_bytes(tunnel.stats().bytes_out);
      }
      if (now - spoke >= opts_.timeout / 4) {  // the receiver counts silence too
        spoke = now;
        sock_.send(message([&](StreamMessage::Builder m) { m.setTunnelCredit(0); }),
                   zmq::send_flags::none);
      }
      if (!done_ && now - heard > opts_.timeout) {
        throw Error(ferry::ErrorCategory::kRetryable,
                    std::string("nothing from the receiver within ") +
                        std::to_string(opts_.timeout.count()) + " ms " +
                        (restored ? "during post-copy" : "while it restored"));
      }
    }
  } catch (...) {
    if (!done_) {
      // No verdict. From the end of the stream on, the receiver may have
      // restored a copy (its `restored` may never have come). The page
      // server's connection ended in order only once the daemon said it had
      // every page: then that copy may run (unknown). Short of that it waits
      // for a page that never comes, and its agent kills it once the stream
      // was silent for its own timeout (cut short).
      const bool all_pages = tunnel.localEnded() && tunnel.stats().completed;
      verdict_unknown_ = all_pages;
      cut_short_ = !all_pages;
    }
    throw;
  }
  return tunnel.stats();
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
    if (handle(identity, frame)) return;
  }
}

bool ChunkReceiver::handle(const zmq::message_t& identity, const zmq::message_t& frame) {
  std::string from(static_cast<const char*>(identity.data()), identity.size());
  if (!peer_.empty() && from != peer_) return false;  // only the accepted sender counts
  if (peer_.empty()) return admit(identity, frame);
  Decoded d(frame);
  guard([&] {
    auto m = d.root<StreamMessage>();
    checkVersion(m);
    switch (m.which()) {
      case StreamMessage::CHUNK: {
        auto c = m.getChunk();
        if (ended_) violation("chunk after the end");
        if (c.getSeq() != next_seq_) violation("chunk " + std::to_string(c.getSeq()) + " out of order");
        auto data = c.getData();
        if (data.size() > opts_.chunk_bytes) violation("chunk larger than agreed");
        if (ready_.size() >= opts_.window) violation("sender exceeded its credit");
        if (XXH3_64bits(data.begin(), data.size()) != c.getXxh3()) {
          violation("chunk " + std::to_string(next_seq_) + " fails its checksum (damaged in transit)");
        }
        ready_.emplace_back(reinterpret_cast<const char*>(data.begin()), data.size());
        XXH3_64bits_update(hash_, data.begin(), data.size());
        bytes_ += data.size();
        ++next_seq_;
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
  try {
    Decoded d(frame);
    bool ok = guard([&] {
      auto m = d.root<StreamMessage>();
      if (m.getVersion() != STREAM_PROTOCOL_VERSION || m.which() != StreamMessage::OPEN ||
          !sameToken(m.getOpen().getToken(), token_)) {
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
    fillError(r.initDone().initError(),
              Error(ferry::ErrorCategory::kInvalidInput, "stream token refused"), host_);
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
  const std::string& front = ready_.front();
  size_t take = std::min(n, front.size() - offset_);
  std::memcpy(buf, front.data() + offset_, take);
  offset_ += take;
  if (offset_ == front.size()) {
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

TunnelStats ChunkReceiver::serveTunnel(int local, const std::atomic<bool>& restored,
                                       const std::atomic<bool>& stop) {
  if (peer_.empty() || !ended_) violation("a tunnel before the stream's end");
  Tunnel tunnel([&](zmq::message_t&& f) { sendToPeer(std::move(f)); }, opts_.chunk_bytes,
                /*receiver=*/true);
  tunnel.attach(local);
  sendToPeer(message([&](StreamMessage::Builder m) {
    m.setTunnelTimeoutMs(static_cast<uint32_t>(opts_.timeout.count()));
  }));
  bool told = false;
  auto heard = std::chrono::steady_clock::now();
  auto spoke = heard;
  // The page conversation's last move: bytes from the daemon, or page
  // bytes for it. The daemon fetches until it has everything, so a whole
  // timeout without either is a page server that hangs.
  auto moved = heard;
  uint64_t asked = 0;
  std::optional<std::chrono::steady_clock::time_point> peer_end;
  while (!tunnel.localEnded()) {
    if (stop.load()) {
      throw Error(ferry::ErrorCategory::kRetryable, "post-copy stopped on " + host_);
    }
    if (restored.load() && !told) {
      told = true;
      sendToPeer(message([&](StreamMessage::Builder m) { m.setRestored(); }));
    }
    zmq::pollitem_t items[] = {{sock_.handle(), 0, ZMQ_POLLIN, 0},
                               fdItem(local, tunnel.events())};
    pollItems(items, 2, std::chrono::milliseconds(100));
    auto now = std::chrono::steady_clock::now();
    tunnel.onEvents(items[1].revents);
    if (tunnel.stats().bytes_out != asked) {
      asked = tunnel.stats().bytes_out;
      moved = now;
    }
    if (now - spoke >= opts_.timeout / 4) {  // the sender counts silence too
      spoke = now;
      sendToPeer(message([&](StreamMessage::Builder m) { m.setTunnelCredit(0); }));
    }
    zmq::message_t identity, frame;
    while (sock_.recv(identity, zmq::recv_flags::dontwait)) {
      if (!identity.more() || !sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
      std::string from(static_cast<const char*>(identity.data()), identity.size());
      if (from != peer_) continue;  // only the accepted sender counts
      Decoded d(frame);
      guard([&] {
        auto m = d.root<StreamMessage>();
        checkVersion(m);
        heard = now;  // the sender is there (it sends a keepalive when quiet)
        if (m.which() == StreamMessage::TUNNEL || m.which() == StreamMessage::TUNNEL_END) moved = now;
        if (tunnel.take(m)) return;
        if (m.which() == StreamMessage::ABORT) {
          throw toError(m.getAbort(), "the sender aborted the stream: ");
        }
        if (m.which() != StreamMessage::CREDIT) violation("unexpected message during post-copy");
      });
    }
    // The page server ends once the daemon said it is done; before that
    // (it failed, or its dump was cut short) the daemon would wait forever.
    if (tunnel.peerEnded() && !peer_end) peer_end = now;
    if (peer_end && now - *peer_end > std::min<std::chrono::milliseconds>(
                                          std::chrono::seconds(2), opts_.timeout / 2)) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "the source's page server ended before every page arrived");
    }
    if (now - heard > opts_.timeout) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "nothing from the sender within " + std::to_string(opts_.timeout.count()) +
                      " ms during post-copy (it, or the link, is gone)");
    }
    if (asked > 0 && now - moved > opts_.timeout) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "no page from the sender's page server within " +
                      std::to_string(opts_.timeout.count()) + " ms during post-copy (it hangs)");
    }
  }
  return tunnel.stats();
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
