// ferry-coordinator's core: one ROUTER for agents and the CLI. It records
// what agents report (hello, heartbeats) in the StateStore, marks hosts that
// miss heartbeats as down, and answers the CLI's queries. (Migrations,
// drains and rebalancing are driven from here as the cluster issue goes on.)
//
// Thread-safety: run() owns the socket and the store; one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "coordinator/state_store.h"
#include "protocol/rpc.h"

namespace ferry::coord {

struct CoordinatorOptions {
  std::string listen = "tcp://127.0.0.1:7000";
  std::filesystem::path state_dir;
  std::chrono::milliseconds heartbeat{1000};  // what agents are told to keep
  int missed_heartbeats = 5;                  // then a host is down
  std::optional<proto::KeyPair> keys;
};

class Coordinator {
 public:
  using Clock = std::function<int64_t()>;  // ms since the epoch
  Coordinator(CoordinatorOptions opts, zmq::context_t& ctx, Clock clock);

  std::string endpoint() const { return server_.endpoint(); }
  void run(const std::atomic<bool>& stop);

 private:
  void handle(proto::RpcServer::Request& r);
  void onHello(proto::Message::Hello::Reader h);
  void onHeartbeat(proto::Message::Heartbeat::Reader h);
  void markSilentHostsDown();

  CoordinatorOptions opts_;
  proto::RpcServer server_;
  StateStore store_;
  Clock clock_;
};

}  // namespace ferry::coord
