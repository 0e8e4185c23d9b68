#include "protocol/rpc.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <filesystem>

#include "common/fd.h"
#include "common/fs.h"

namespace ferry::proto {

namespace {

bool pollIn(zmq::socket_t& s, std::chrono::milliseconds timeout) {
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  return zmq::poll(&item, 1, timeout) > 0;
}

}  // namespace

void checkCanConnect(const std::string& endpoint) {
  if (endpoint.rfind("ipc://", 0) != 0) return;
  std::string path = endpoint.substr(6);
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof sa.sun_path) {
    throw Error(ferry::ErrorCategory::kInvalidInput, "bad unix socket endpoint " + endpoint);
  }
  std::memcpy(sa.sun_path, path.c_str(), path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket");
  if (retryEintr([&] {
        return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa);
      }) == 0) {
    return;  // closed at once; libzmq connects on its own
  }
  int err = errno;
  if (err == EACCES || err == EPERM) {
    throw Error(ferry::ErrorCategory::kInvalidInput,
                "permission denied on the coordinator's socket " + path +
                    ": without keys it admits root (and the ferry group, when it exists) only; "
                    "run as root, join group ferry, or use a client key (--keys DIR)");
  }
  if (err == ENOENT || err == ECONNREFUSED) {
    throw Error(ferry::ErrorCategory::kRetryable,
                "no coordinator listens on " + path +
                    " (is ferry-coordinator running? is the endpoint right? --coordinator or "
                    "FERRY_COORDINATOR)");
  }
  throwErrno("connecting to " + path, err);
}

void applyControlSocketOptions(zmq::socket_t& s) {
  applySocketLimits(s);
  s.set(zmq::sockopt::heartbeat_ivl, static_cast<int>(kPeerHeartbeat.count()));
  s.set(zmq::sockopt::heartbeat_timeout, static_cast<int>(kPeerTimeout.count()));
  // Asks the other end to drop this one after as long without a word.
  s.set(zmq::sockopt::heartbeat_ttl, static_cast<int>(kPeerTimeout.count()));
  s.set(zmq::sockopt::handshake_ivl, static_cast<int>(kHandshakeTimeout.count()));
}

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
  applyControlSocketOptions(sock_);
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
    : RpcServer(ctx, ServerOptions{.binds = {bind}, .curve = std::move(curve)}) {}

RpcServer::RpcServer(zmq::context_t& ctx, const ServerOptions& opts)
    : sock_(ctx, zmq::socket_type::router) {
  applyControlSocketOptions(sock_);
  sock_.set(zmq::sockopt::router_mandatory, true);
  // No handover: a peer claiming the routing id of a connected one is
  // ignored rather than given its messages. (Routing ids are the peers'
  // choice, so the coordinator never trusts one for who a peer is.)
  sock_.set(zmq::sockopt::router_handover, false);
  if (opts.curve) makeCurveServer(sock_, *opts.curve);
  // ZAP for every peer, also without CURVE: the handler then sees its
  // address and names it (a NULL peer goes through ZAP only with a domain).
  sock_.set(zmq::sockopt::zap_domain, "ferry");
  if (opts.max_connections > 0) {
    limit_ = std::make_unique<ConnectionLimit>(ctx, sock_, opts.max_connections);
  }
  if (opts.binds.empty()) throw Error(ferry::ErrorCategory::kInvalidInput, "nothing to listen on");
  for (const auto& b : opts.binds) bind(b, opts);
}

void RpcServer::bind(const std::string& endpoint, const ServerOptions& opts) {
  if (endpoint.rfind("ipc://", 0) != 0) {
    sock_.bind(endpoint);
  } else {
    // The socket file is created by bind(2) with the umask's mode: a
    // tight umask around it, then the group and mode asked for, so that it
    // is never more open than that.
    std::filesystem::path file = endpoint.substr(6);
    if (file.has_parent_path() && !pathExists(file.parent_path())) makeDirs(file.parent_path());
    mode_t old = ::umask(0177);
    try {
      sock_.bind(endpoint);
    } catch (...) {
      ::umask(old);
      throw;
    }
    ::umask(old);
    if (opts.ipc_group != static_cast<gid_t>(-1) &&
        ::chown(file.c_str(), static_cast<uid_t>(-1), opts.ipc_group) != 0) {
      throwErrno("chgrp " + file.string());
    }
    if (::chmod(file.c_str(), opts.ipc_mode) != 0) throwErrno("chmod " + file.string());
  }
  if (first_endpoint_.empty()) first_endpoint_ = sock_.get(zmq::sockopt::last_endpoint);
}

std::string RpcServer::endpoint() const { return first_endpoint_; }

bool RpcServer::pollIn(std::chrono::milliseconds timeout) { return proto::pollIn(sock_, timeout); }

std::optional<RpcServer::Request> RpcServer::next(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0 || !pollIn(left)) return std::nullopt;
    zmq::message_t peer, frame;
    if (!sock_.recv(peer, zmq::recv_flags::dontwait) || !peer.more()) continue;
    if (!sock_.recv(frame, zmq::recv_flags::dontwait)) continue;
    while (frame.more()) {  // a DEALER sends one frame; drop extras
      zmq::message_t extra;
      if (!sock_.recv(extra, zmq::recv_flags::dontwait)) break;
    }
    Request r;
    r.peer.assign(static_cast<const char*>(peer.data()), peer.size());
    r.user = peerUserId(frame);
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
