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

#include "agent/transfer.h"
#include "engine/agent_engine.h"
#include "protocol/chunk_stream.h"
#include "protocol/rpc.h"

namespace ferry::agent {

struct AgentOptions {
  std::string name;
  std::string coordinator;   // e.g. tcp://127.0.0.1:7000
  std::string data_address;  // this host's address for streams, e.g. 127.0.0.2
  std::chrono::milliseconds heartbeat{1000};
  std::optional<proto::KeyPair> keys;  // CURVE, once configured
  std::string coordinator_key;
  // A peer silent this long fails a stream (and its migration rolls back).
  std::chrono::milliseconds stream_timeout{60000};
  // How long commit, rollback and discard wait for a transfer of the same
  // container still in progress here to end.
  std::chrono::milliseconds busy_wait{90000};  // > stream_timeout
  // Memory offered to containers, reported for the planners (0: the host's).
  uint64_t memory_capacity = 0;
  // When stopped: ask for this host to be drained and wait this long for it
  // (0: stop at once).
  std::chrono::seconds drain_on_stop{0};
  // Host conditions that ask for this host to be drained (0: off): memory
  // pressure (PSI "some" avg10 of /proc/pressure/memory, percent) above,
  // or free space of the state root's file system (percent) below, for three
  // heartbeats in a row. Asked once per episode: the host is cordoned by the
  // drain, and a new request waits until the condition has cleared.
  double drain_on_memory_pressure = 0;
  double drain_on_disk_free = 0;
};

class Agent {
 public:
  Agent(AgentOptions opts, AgentEngine& engine, zmq::context_t& ctx);
  ~Agent();

  // Registers, heartbeats and serves commands until `stop` is set; then
  // waits for running workers. A coordinator that restarts is found again
  // (the socket reconnects; hello is sent again when it asks or after
  // silence).
  void run(const std::atomic<bool>& stop);

 private:
  void hello();
  void heartbeat();
  // Once stopped with drain_on_stop: asks for the drain (first call) and
  // says whether to keep serving (the drain goes on and time is left).
  bool drainingBeforeStop();
  // Checks the drain conditions (each heartbeat); asks for a drain when one
  // has held long enough.
  void checkDrainConditions();
  void requestDrain(uint64_t id, const std::string& why);
  int condition_streak_ = 0;
  bool condition_drain_asked_ = false;
  std::set<uint64_t> drain_requests_;  // ours, answered with a placement
  void serve(std::unique_ptr<proto::Decoded> frame);
  uint64_t hello_id_ = 0;       // the last hello's id: its answer is logged
  uint64_t drain_request_ = 0;  // the drainHost request's id, once sent
  bool drain_answered_ = false;
  std::chrono::steady_clock::time_point drain_deadline_;
  void reply(uint64_t id, const proto::Fill& fill);
  void replyError(uint64_t id, const Error& e);
  // Runs `work` on a worker thread; its result (a Fill) is sent as the reply.
  void spawn(uint64_t id, std::function<proto::Fill()> work);
  void spawnQuiet(std::function<void()> work);  // a worker without a reply
  ContainerInfo awaitReady(uint64_t id, const std::string& name);
  proto::Fill secretCommand(proto::Message::Secret::Reader s);
  // Queues an interim message (progress) for request `id`; from any thread.
  void post(uint64_t id, proto::Fill fill);
  void drainWorkerReplies();
  void reapWorkers();
  // A container with a transfer in progress here: commit, rollback and
  // discard of it wait until the transfer has ended.
  void markBusy(const std::string& container);
  // markBusy, refused (Error kRetryable) when a transfer of it is under way.
  void claimForTransfer(const std::string& container);
  void markIdle(const std::string& container);
  void awaitIdle(const std::string& container);
  void prepareReceive(uint64_t id, proto::Message::PrepareReceive::Reader r);
  void sendCheckpointCommand(uint64_t id, proto::Message::SendCheckpoint::Reader r);
  void prepareImport(uint64_t id, proto::Message::ImportFile::Reader r);
  void exportCheckpointCommand(uint64_t id, proto::Message::ExportTo::Reader r);
  proto::StreamOptions streamOptions() const;
  // A reply carrying `c`, as this host reports it.
  proto::Fill containerReply(const ContainerInfo& c) const;
  // A send's options: the stream (with the receiver's CURVE key) and
  // progress for request `id`, its "restore" phase shown as `restore_phase`.
  TransferOptions transferOptions(uint64_t id, const std::string& container,
                                  const std::string& server_key, const std::string& restore_phase);
  // Ends a claimForTransfer when it goes out of scope.
  struct BusyRelease {
    Agent* agent;
    std::string container;
    ~BusyRelease() { agent->markIdle(container); }
  };

  AgentOptions opts_;
  AgentEngine& engine_;
  zmq::context_t& ctx_;
  zmq::socket_t sock_;
  uint64_t next_id_ = 1ull << 63;  // the agent's own messages, apart from the coordinator's ids
  std::mutex mu_;
  std::condition_variable idle_cv_;
  std::deque<std::pair<uint64_t, proto::Fill>> done_;  // guarded by mu_
  std::map<std::string, int> busy_;                    // guarded by mu_
  struct Worker {
    std::thread thread;
    std::shared_ptr<std::atomic<bool>> finished;
  };
  std::vector<Worker> workers_;  // main thread only
};

}  // namespace ferry::agent
