// Request and reply over the control plane: a DEALER client and a ROUTER
// server exchanging control.capnp Messages, matched by request id. Replies
// may be preceded by progress messages with the same id.
//
// Thread-safety: each object is used by one thread. Blocking: call() blocks
// up to its timeout; next() up to its timeout.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "common/error.h"
#include <sys/types.h>

#include <vector>

#include "protocol/connection_limit.h"
#include "protocol/control.capnp.h"
#include "protocol/curve.h"
#include "protocol/framing.h"

namespace ferry::proto {

using Fill = std::function<void(Message::Builder)>;

// Where a coordinator listens unless told: without keys, a unix socket that
// admits root (and the `ferry` group) only; with keys, loopback TCP.
inline constexpr const char* kDefaultCoordinatorSocket = "ipc:///run/ferry/coordinator.sock";
inline constexpr const char* kDefaultCoordinatorTcp = "tcp://127.0.0.1:7000";

// For an ipc:// endpoint, whether this process may connect to its socket
// file: throws Error saying why not, and what to do, when it may not
// (libzmq would retry in silence). Nothing for other endpoints.
void checkCanConnect(const std::string& endpoint);

// The control plane's socket options, on both ends: ZeroMQ heartbeats (a
// peer that stops answering them -- its host gone, its process stopped --
// is dropped within kPeerTimeout instead of holding its connection for
// ever), and a handshake that must end within kHandshakeTimeout (a
// connection that never speaks ZMTP goes).
inline constexpr std::chrono::milliseconds kPeerHeartbeat{2000};
inline constexpr std::chrono::milliseconds kPeerTimeout{10000};
inline constexpr std::chrono::milliseconds kHandshakeTimeout{10000};
void applyControlSocketOptions(zmq::socket_t& s);

struct CurveClientKeys {
  KeyPair own;
  std::string server_public;
};

class RpcClient {
 public:
  RpcClient(zmq::context_t& ctx, const std::string& endpoint,
            std::optional<CurveClientKeys> curve = std::nullopt);

  // Sends a request (fill sets the body; version and id are set here) and
  // returns its final reply. Progress replies go to on_progress. An error
  // reply is thrown as Error with its category and host; no reply within
  // `timeout` (since the last message of this request) is kRetryable.
  // Replies to requests that already timed out are discarded.
  std::unique_ptr<Decoded> call(const Fill& fill, std::chrono::milliseconds timeout,
                                const std::function<void(Progress::Reader)>& on_progress = {});

 private:
  zmq::socket_t sock_;
  std::string endpoint_;
  uint64_t next_id_ = 1;
};

struct ServerOptions {
  std::vector<std::string> binds;  // endpoints: tcp://, ipc://
  std::optional<KeyPair> curve;
  // Connections held at once at most (ConnectionLimit); 0: no cap.
  size_t max_connections = 0;
  // An ipc:// endpoint's socket file: made with this mode (and group, when
  // not -1), never more open in between. Its directory is made (0755) when
  // missing.
  mode_t ipc_mode = 0600;
  gid_t ipc_group = static_cast<gid_t>(-1);
};

class RpcServer {
 public:
  RpcServer(zmq::context_t& ctx, const std::string& bind,
            std::optional<KeyPair> curve = std::nullopt);
  // Every peer goes through the ZAP handler of `ctx`, when there is one
  // (ZAP domain "ferry", also without CURVE), which names it: Request::user.
  RpcServer(zmq::context_t& ctx, const ServerOptions& opts);
  std::string endpoint() const;  // the first bound

  struct Request {
    std::string peer;                 // the sender's routing id
    std::string user;                 // its connection's ZAP User-Id ("": none)
    uint64_t id = 0;
    std::unique_ptr<Decoded> frame;   // owns what msg reads
    Message::Reader msg;
  };
  // The next well-formed request, or nullopt after `timeout`. A frame that
  // is not a Message of this version is answered with an error when it has
  // a readable id, else dropped; either way counted in malformed().
  std::optional<Request> next(std::chrono::milliseconds timeout);
  // Replies and messages return false when the peer is not connected (or
  // not keeping up): ROUTER_MANDATORY, nothing is silently dropped.
  bool reply(const Request& to, const Fill& fill);
  bool replyError(const Request& to, const Error& e, const std::string& host);
  // A message to a peer outside request/reply (progress, commands to agents).
  bool sendTo(const std::string& peer, uint64_t id, const Fill& fill);
  // Relays a message received from one peer to another under a new id.
  bool relay(const std::string& peer, uint64_t id, Message::Reader m);

  // Readable from any thread.
  uint64_t malformed() const { return malformed_.load(); }
  // Connections shut down for the cap so far (0 without one).
  uint64_t connectionsShed() const { return limit_ ? limit_->shed() : 0; }
  size_t maxConnections() const { return limit_ ? limit_->max() : 0; }

 private:
  void bestEffortReply(const Request& r, const Error& e);
  bool sendFrame(const std::string& peer, zmq::message_t frame);
  void bind(const std::string& endpoint, const ServerOptions& opts);
  bool pollIn(std::chrono::milliseconds timeout);

  zmq::socket_t sock_;
  std::unique_ptr<ConnectionLimit> limit_;
  std::string first_endpoint_;
  std::atomic<uint64_t> malformed_{0};
};

// One control message (version and id set, fill sets the body) as a frame.
zmq::message_t buildMessage(uint64_t id, const Fill& fill);

// Error <-> ErrorInfo, shared by both ends.
void fillErrorInfo(ErrorInfo::Builder b, const Error& e, const std::string& host);
Error errorFrom(ErrorInfo::Reader r);

}  // namespace ferry::proto
