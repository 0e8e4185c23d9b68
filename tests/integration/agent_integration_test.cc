// Two real agents (hostA on 127.0.0.2, hostB on 127.0.0.3) under a test
// that plays the coordinator over the real control protocol: they register,
// heartbeat, run a container on command, and carry out a migration's steps.
// (The coordinator's own state machine arrives with the cluster issue.)
#include <sys/wait.h>

#include <future>
#include <map>

#include <gtest/gtest.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/fs.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using AgentIntegration = TwoHostTest;

// The coordinator's side, as little as the test needs.
class FakeCoordinator {
 public:
  explicit FakeCoordinator(zmq::context_t& ctx) : server_(ctx, "tcp://127.0.0.1:0") {}
  std::string endpoint() const { return server_.endpoint(); }

  // Serves hellos and heartbeats until pred() holds (or the deadline).
  void until(const std::function<bool()>& pred, seconds timeout, const std::string& what) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("timed out waiting for " + what);
      }
      pump(nullptr, 0);
    }
  }

  // Sends a command to `host` and returns its reply (errors thrown as Error).
  std::unique_ptr<proto::Decoded> command(const std::string& host, const proto::Fill& fill,
                                          seconds timeout = seconds(20)) {
    uint64_t id = next_id_++;
    server_.sendTo(host, id, fill);
    std::unique_ptr<proto::Decoded> reply;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pump(&reply, id)) {
      if (std::chrono::steady_clock::now() > deadline) {
        throw std::runtime_error("timed out waiting for a reply from " + host);
      }
    }
    auto m = reply->root<proto::Message>();
    if (m.isError()) throw proto::errorFrom(m.getError());
    return reply;
  }

  std::map<std::string, bool> hello;                                   // by host
  std::map<std::string, std::map<std::string, std::string>> statuses;  // host -> container -> status

 private:
  // One message: hellos and heartbeats are recorded and answered; a reply
  // with `want` is handed out. Returns whether it was that reply.
  bool pump(std::unique_ptr<proto::Decoded>* out, uint64_t want) {
    auto r = server_.next(milliseconds(50));
    if (!r) return false;
    auto m = r->msg;
    if (m.isHello()) {
      hello[m.getHello().getName().cStr()] = true;
      server_.reply(*r, [](proto::Message::Builder b) { b.setOk(); });
    } else if (m.isHeartbeat()) {
      auto& s = statuses[m.getHeartbeat().getName().cStr()];
      s.clear();
      for (auto c : m.getHeartbeat().getContainers()) s[c.getName().cStr()] = c.getStatus().cStr();
      server_.reply(*r, [](proto::Message::Builder b) { b.setOk(); });
    } else if (out && r->id == want && !m.isProgress()) {
      *out = std::move(r->frame);
      return true;
    }
    return false;
  }

  proto::RpcServer server_;
  uint64_t next_id_ = 1;
};

capnp::Data::Reader dataOf(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

TEST_F(AgentIntegration, AgentsRegisterHeartbeatRunAndMigrateOnCommand) {
  zmq::context_t ctx;
  FakeCoordinator coord(ctx);
  std::atomic<bool> stop{false};
  agent::Agent agent_a({.name = "hostA", .coordinator = coord.endpoint(), .data_address = "127.0.0.2",
                        .heartbeat = milliseconds(200)},
                       a(), ctx);
  agent::Agent agent_b({.name = "hostB", .coordinator = coord.endpoint(), .data_address = "127.0.0.3",
                        .heartbeat = milliseconds(200)},
                       b(), ctx);
  std::thread ta([&] { agent_a.run(stop); });
  std::thread tb([&] { agent_b.run(stop); });
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread &a, &b;
    ~Joiner() {
      stop = true;
      a.join();
      b.join();
    }
  } joiner{stop, ta, tb};

  coord.until([&] { return coord.hello.count("hostA") && coord.hello.count("hostB"); }, seconds(20),
              "both agents to say hello");

  // Run on hostA by command; hostA's heartbeat then reports it running.
  auto started = coord.command("hostA", [](proto::Message::Builder m) {
    auto s = m.initStartContainer();
    s.setName("mig");
    s.setImage("counter");
    auto args = s.initArgs(5);
    const char* argv[] = {"/usr/local/bin/counter", "--file", "/data/counter", "--interval-ms", "100"};
    for (unsigned i = 0; i < 5; ++i) args.set(i, argv[i]);
    s.initVolumes(1).set(0, "data:/data");
  });
  EXPECT_EQ(std::string(started->root<proto::Message>().getContainer().getStatus().cStr()), "running");
  coord.until([&] { return coord.statuses["hostA"]["mig"] == "running"; }, seconds(20),
              "hostA's heartbeat to report mig running");
  waitFor([&] { return counterValues(a(), "mig").size() >= 5; }, seconds(20), "mig to count");

  // The migration's steps: the target binds a stream, the source sends,
  // the source commits.
  std::string token = "one-time-token-for-this-stream";
  auto ticket = coord.command("hostB", [&](proto::Message::Builder m) {
    auto p = m.initPrepareReceive();
    p.setMigration(1);
    p.setContainer("mig");
    p.setToken(dataOf(token));
  });
  std::string endpoint = ticket->root<proto::Message>().getStreamTicket().getEndpoint().cStr();
  EXPECT_EQ(endpoint.rfind("tcp://127.0.0.3:", 0), 0u) << endpoint;
  auto sent = coord.command("hostA", [&](proto::Message::Builder m) {
    auto s = m.initSendCheckpoint();
    s.setMigration(1);
    s.setContainer("mig");
    s.setEndpoint(endpoint);
    s.setToken(dataOf(token));
  });
  EXPECT_GT(sent->root<proto::Message>().getMigration().getBytesWire(), 0u);
  unsigned long last = counterValues(a(), "mig").back();
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kPaused) << "the source must wait frozen";
  coord.command("hostA", [](proto::Message::Builder m) { m.setCommitSource("mig"); });

  coord.until([&] { return coord.statuses["hostB"]["mig"] == "running" && !coord.statuses["hostA"].count("mig"); },
              seconds(20), "heartbeats to show mig on hostB only");
  waitFor([&] { return valuesAfter(counterValues(b(), "mig"), last).size() >= 3; }, seconds(20),
          "mig to count on hostB");
  EXPECT_EQ(valuesAfter(counterValues(b(), "mig"), last).front(), last + 1) << "the counter did not go on";

  // A command an agent cannot carry out comes back as an error naming it.
  try {
    coord.command("hostB", [](proto::Message::Builder m) { m.setStopContainer("nope"); });
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("hostB: "), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("no container 'nope'"), std::string::npos) << e.what();
  }
}

// The real ferry-agent process: SIGTERM stops it and leaves its containers
// running; a restarted agent reports (adopts) them again.
TEST_F(AgentIntegration, TheAgentProcessStopsOnSigtermAndARestartAdoptsItsContainers) {
  runCounterOnA("kept", 2);
  pid_t pid = a().inspect("kept").pid;
  zmq::context_t ctx;
  FakeCoordinator coord(ctx);
  const EngineConfig& cfg = a().config();
  auto start = [&] {
    return spawnChild({FERRY_AGENT_BIN, "--name", "hostA", "--coordinator", coord.endpoint(),
                       "--listen", "127.0.0.2", "--root", cfg.root.string(), "--run-dir",
                       cfg.run_dir.string(), "--heartbeat", "200"},
                      (dirs_->state / "agent.log").string());
  };
  Child agent = start();
  coord.until([&] { return coord.hello.count("hostA") && coord.statuses["hostA"]["kept"] == "running"; },
              seconds(20), "the agent to register and report kept");
  agent.kill(SIGTERM);
  int status = agent.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << "; agent log: " << readFile(dirs_->state / "agent.log");
  EXPECT_EQ(a().inspect("kept").status, ContainerStatus::kRunning);
  EXPECT_EQ(a().inspect("kept").pid, pid) << "the container was restarted";

  coord.hello.clear();
  coord.statuses.clear();
  Child again = start();
  coord.until([&] { return coord.statuses["hostA"]["kept"] == "running"; }, seconds(20),
              "the restarted agent to adopt kept");
  again.kill(SIGTERM);
  again.wait();
}

}  // namespace
}  // namespace ferry::testing
