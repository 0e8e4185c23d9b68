#include "protocol/rpc.h"

namespace ferry::proto {

namespace {

bool pollIn(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  return zmq::poll(&item, 1, timeout) > 0;
}

}  // namespace

zmq::message_t buildMessage(uint64_t id, const Fill& fill) {
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<Message>();
  m.setVersion(CONTROL_PROTOCOL_VERSION);
  m.setId(id);
  fill(m);
  return encode(mb);
}

void fillErrorInfo(ErrorInfo::Builder b, const Error& e, const std::string& host) {
  switch (e.category()) {
    case ferry::ErrorCategory::kRetryable: b.setCategory(ErrorKind::RETRYABLE); break;
    case ferry::ErrorCategory::kPermanent: b.setCategory(ErrorKind::PERMANENT); break;
    case ferry::ErrorCategory::kIncompatible: b.setCategory(ErrorKind::INCOMPATIBLE); break;
    case ferry::ErrorCategory::kInvalidInput: b.setCategory(ErrorKind::INVALID_INPUT); break;
  }
  b.setMessage(e.what());
  b.setHost(host);
}

Error errorFrom(ErrorInfo::Reader r) {
  ferry::ErrorCategory c = ferry::ErrorCategory::kPermanent;
  switch (r.getCategory()) {
    case ErrorKind::RETRYABLE: c = ferry::ErrorCategory::kRetryable; break;
    case ErrorKind::PERMANENT: c = ferry::ErrorCategory::kPermanent; break;
    case ErrorKind::INCOMPATIBLE: c = ferry::ErrorCategory::kIncompatible; break;
    case ErrorKind::INVALID_INPUT: c = ferry::ErrorCategory::kInvalidInput; break;
  }
  std::string msg = r.getMessage().cStr();
  if (r.getHost().size() > 0) msg = std::string(r.getHost().cStr()) + ": " + msg;
  return Error(c, msg);
}

RpcClient::RpcClient(zmq::context_t& ctx, const std::string& endpoint,
                     std::optional<CurveClientKeys> curve)
    : sock_(ctx, zmq::socket_type::dealer), endpoint_(endpoint) {
  applySocketLimits(sock_);
  if (curve) makeCurveClient(sock_, curve->own, curve->server_public);
  sock_.connect(endpoint);
}

std::unique_ptr<Decoded> RpcClient::call(const Fill& fill, std::chrono::milliseconds timeout,
                                         const std::function<void(Progress::Reader)>& on_progress) {
  uint64_t id = next_id_++;
  sock_.send(buildMessage(id, fill), zmq::send_flags::none);
  for (;;) {
    if (!pollIn(sock_, timeout)) {
      throw Error(ferry::ErrorCategory::kRetryable,
                  "no answer from " + endpoint_ + " within " + std::to_string(timeout.count()) +
                      " ms (is it running? is the endpoint right?)");
    }
    zmq::message_t frame;
    if (!sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
    auto d = std::make_unique<Decoded>(frame);
    bool final = guard([&] {
      auto m = d->root<Message>();
      if (m.getVersion() != CONTROL_PROTOCOL_VERSION) {
        throw Error(ferry::ErrorCategory::kIncompatible,
                    endpoint_ + " speaks control protocol " + std::to_string(m.getVersion()) +
                        ", this side " + std::to_string(CONTROL_PROTOCOL_VERSION));
      }
      if (m.getId() != id) return false;  // a late reply to an earlier call
      if (m.isProgress()) {
        if (on_progress) on_progress(m.getProgress());
        return false;
      }
      if (m.isError()) throw errorFrom(m.getError());
      return true;
    });
    if (final) return d;
  }
}

RpcServer::RpcServer(zmq::context_t& ctx, const std::string& bind, std::optional<KeyPair> curve)
    : sock_(ctx, zmq::socket_type::router) {
  applySocketLimits(sock_);
  sock_.set(zmq::sockopt::router_mandatory, true);
  // A peer that reconnects under the same routing id (an agent restarted
  // while its old connection is still half-open) takes the id over.
  sock_.set(zmq::sockopt::router_handover, true);
  if (curve) makeCurveServer(sock_, *curve);
  sock_.bind(bind);
}

std::string RpcServer::endpoint() const { return sock_.get(zmq::sockopt::last_endpoint); }

std::optional<RpcServer::Request> RpcServer::next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0 || !pollIn(sock_, left)) return std::nullopt;
    zmq::message_t peer, frame;
    if (!sock_.recv(peer, zmq::recv_flags::dontwait) || !peer.more()) continue;
    if (!sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
    while (frame.more()) {  // a DEALER sends one frame; drop extras
      zmq::message_t extra;
      if (!sock_.recv(extra, zmq::recv_flags::dontwait)) break;
    }
    Request r;
    r.peer.assign(static_cast<const char*>(peer.data()), peer.size());
    try {
      r.frame = std::make_unique<Decoded>(frame);
      r.msg = r.frame->root<Message>();
      r.id = guard([&] { return r.msg.getId(); });
      if (guard([&] { return r.msg.getVersion(); }) != CONTROL_PROTOCOL_VERSION) {
        ++malformed_;
        replyError(r, Error(ferry::ErrorCategory::kIncompatible,
                            "this coordinator speaks control protocol " +
                                std::to_string(CONTROL_PROTOCOL_VERSION)),
                   "");
        continue;
      }
      guard([&] { return r.msg.which(); });  // an unknown union member throws here
      return r;
    } catch (const Error& e) {
      ++malformed_;
      if (r.frame) {
        bestEffortReply(r, e);
      }
    }
  }
}

void RpcServer::bestEffortReply(const Request& r, const Error& e) {
  try {
    replyError(r, e, "");
  } catch (...) {
    // The frame had no readable id: nothing sensible to answer.
  }
}

bool RpcServer::reply(const Request& to, const Fill& fill) { return sendTo(to.peer, to.id, fill); }

bool RpcServer::replyError(const Request& to, const Error& e, const std::string& host) {
  return sendTo(to.peer, to.id, [&](Message::Builder m) { fillErrorInfo(m.initError(), e, host); });
}

bool RpcServer::sendTo(const std::string& peer, uint64_t id, const Fill& fill) {
  return sendFrame(peer, buildMessage(id, fill));
}

bool RpcServer::relay(const std::string& peer, uint64_t id, Message::Reader m) {
  capnp::MallocMessageBuilder mb;
  mb.setRoot(m);
  auto copy = mb.getRoot<Message>();
  copy.setVersion(CONTROL_PROTOCOL_VERSION);
  copy.setId(id);
  return sendFrame(peer, encode(mb));
}

bool RpcServer::sendFrame(const std::string& peer, zmq::message_t frame) {
  zmq::message_t p(peer.data(), peer.size());
  try {
    // With ROUTER_MANDATORY an unknown peer fails the first part at once
    // (EHOSTUNREACH); a peer that does not keep up fails it with EAGAIN.
    if (!sock_.send(p, zmq::send_flags::sndmore | zmq::send_flags::dontwait)) return false;
  } catch (const zmq::error_t& e) {
    if (e.num() == EHOSTUNREACH) return false;
    throw;
  }
  sock_.send(frame, zmq::send_flags::none);
  return true;
}

}  // namespace ferry::proto
