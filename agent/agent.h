// ferry-agent's core: registers with the coordinator, heartbeats its
// containers and load, and carries out the coordinator's commands on the
// engine -- migration steps included, on worker threads so heartbeats go on
// during a transfer.
//
// Thread-safety: run() owns the control socket; workers hand their replies
// back through a queue. The engine is shared and serialises mutations
// itself (agent_engine.h).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>
#include <zmq.hpp>

#include "agent/agent_network.h"
#include "agent/agent_options.h"
#include "agent/busy_containers.h"
#include "agent/commands.h"
#include "agent/drain_policy.h"
#include "agent/host_metrics.h"
#include "agent/transfer.h"
#include "agent/worker_pool.h"
#include "engine/agent_engine.h"
#include "protocol/chunk_stream.h"
#include "protocol/rpc.h"

namespace ferry::agent {

// Where the agent's control socket connects: the coordinator's endpoint,
// from this host's data address when it is TCP without keys.
std::string coordinatorConnectEndpoint(const AgentOptions& o);

class Agent {
 public:
  // `pressure`: where the drain conditions are read (empty: this host's
  // /proc/pressure/memory and the state root's file system).
  Agent(AgentOptions opts, AgentEngine& engine, zmq::context_t& ctx, PressureSource pressure = {});
  ~Agent();

  // Registers, heartbeats and serves commands until `stop` is set; then
  // waits for running workers. A coordinator that restarts is found again
  // (the socket reconnects; hello is sent again when it asks or after
  // silence). `each_turn` runs once a turn of the loop, at least every 50 ms
  // while it turns (the service manager's watchdog).
  void run(const std::atomic<bool>& stop, const std::function<void()>& each_turn = {});
  // The host's container network, which the coordinator's replies
  // configure (none: the agent ignores them).
  void setNetwork(AgentNetwork* n) {
    network_ = n;
    commands_.setNetwork(n);
  }
  // Its series (metrics/agent_metrics.h), for a metrics::MetricsServer; set
  // by run() each heartbeat, scraped from any thread.
  const std::shared_ptr<prometheus::Registry>& metricsRegistry() const {
    return metrics_.registry();
  }

 private:
  void hello();
  void heartbeat();
  // The gauges, from what this heartbeat reports.
  void setGauges(const HostLoad& load, const std::vector<ContainerInfo>& all);
  // Once stopped with drain_on_stop: asks for the drain (first call) and
  // says whether to keep serving (the drain goes on and time is left).
  bool drainingBeforeStop();
  // Checks the drain conditions (each heartbeat); asks for a drain when one
  // has held long enough.
  void checkDrainConditions();
  void requestDrain(uint64_t id, const std::string& why);
  std::set<uint64_t> drain_requests_;  // ours, answered with a placement
  void serve(std::unique_ptr<proto::Decoded> frame);
  uint64_t hello_id_ = 0;       // the last hello's id: its answer is logged
  uint64_t drain_request_ = 0;  // the drainHost request's id, once sent
  bool drain_answered_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  void reply(uint64_t id, const proto::Fill& fill);
  void replyError(uint64_t id, const Error& e);
  // Runs `work` on a worker; its result (a Fill) is sent as the reply.
  // Throws Error kRetryable, `work` dropped unrun, when every worker is busy.
  void spawn(uint64_t id, std::function<proto::Fill()> work);
  void spawnQuiet(std::function<void()> work);  // a worker without a reply
  // Queues an interim message (progress) for request `id`; from any thread.
  void post(uint64_t id, proto::Fill fill);
  void drainWorkerReplies();

  void onNetwork(proto::ClusterNetwork::Reader n);
  AgentNetwork* network_ = nullptr;
  AgentOptions opts_;
  AgentEngine& engine_;
  metrics::AgentMetrics metrics_{opts_.name};  // before commands_, which counts its streams
  PressureSource pressure_;
  DrainPolicy drain_policy_;
  zmq::socket_t sock_;
  uint64_t next_id_ = 1ull << 63;  // the agent's own messages, apart from the coordinator's ids
  std::mutex mu_;
  std::deque<std::pair<uint64_t, proto::Fill>> done_;  // guarded by mu_
  BusyContainers busy_;
  Commands commands_;  // after opts_, engine_ and busy_, which it refers to
  // Last: destroyed first, it joins the workers while what they use lives.
  WorkerPool pool_{opts_.max_workers};
};

}  // namespace ferry::agent
