// Two real agents (hostA on 127.0.0.2, hostB on 127.0.0.3) under the real
// coordinator (in-process), driven as the CLI drives it: they register,
// heartbeat, run a container and migrate it; the ferry-agent process stops
// on SIGTERM and adopts its containers when restarted.
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "agent/agent.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/time_util.h"
#include "coordinator/coordinator.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using AgentIntegration = TwoHostTest;

std::unique_ptr<coord::Coordinator> startCoordinator(zmq::context_t& ctx, const fs::path& dir) {
  return std::make_unique<coord::Coordinator>(
      coord::CoordinatorOptions{.listen = "ipc://" + (dir / "coordinator.sock").string(), .state_dir = dir,
                                .heartbeat = milliseconds(200), .missed_heartbeats = 5},
      ctx, [] { return unixMillis(); });
}

TEST_F(AgentIntegration, AgentsRegisterHeartbeatRunAndMigrateThroughTheCoordinator) {
  zmq::context_t ctx;
  auto coordinator = startCoordinator(ctx, dirs_->state / "coordinator");
  Running c([&](const std::atomic<bool>& stop) { coordinator->run(stop); });
  auto agentFor = [&](Engine& e, const std::string& name, const std::string& addr) {
    return std::make_unique<agent::Agent>(
        agent::AgentOptions{.name = name, .coordinator = coordinator->endpoint(),
                            .data_address = addr, .heartbeat = milliseconds(200)},
        e, ctx);
  };
  auto agent_a = agentFor(a(), "hostA", "127.0.0.2");
  auto agent_b = agentFor(b(), "hostB", "127.0.0.3");
  Running run_a([&](const std::atomic<bool>& s) { agent_a->run(s); });
  Running run_b([&](const std::atomic<bool>& s) { agent_b->run(s); });
  proto::RpcClient cli(ctx, coordinator->endpoint());
  waitFor([&] { auto up = hostsUp(cli); return up["hostA"] && up["hostB"]; }, seconds(20),
          "both agents to register");

  // Run on hostA; hostA's heartbeat then reports it running.
  auto started = cli.call([](proto::Message::Builder m) {
    auto r = m.initRun();
    r.setHost("hostA");
    auto s = r.initSpec();
    s.setName("mig");
    s.setImage("counter");
    auto args = s.initArgs(5);
    const char* argv[] = {"/usr/local/bin/counter", "--file", "/data/counter", "--interval-ms", "100"};
    for (unsigned i = 0; i < 5; ++i) args.set(i, argv[i]);
    s.initVolumes(1).set(0, "data:/data");
  }, seconds(30));
  EXPECT_EQ(std::string(started->root<proto::Message>().getContainer().getStatus().cStr()), "running");
  waitFor([&] { return containersOn(cli, "hostA")["mig"] == "running"; }, seconds(20),
          "hostA's heartbeat to report mig running");
  waitFor([&] { return counterValues(a(), "mig").size() >= 5; }, seconds(20), "mig to count");

  // The migration, as `ferry migrate mig hostA hostB` asks for it.
  auto done = cli.call([](proto::Message::Builder m) {
    auto g = m.initMigrate();
    g.setContainer("mig");
    g.setSource("hostA");
    g.setTarget("hostB");
  }, seconds(60));
  auto figures = done->root<proto::Message>().getMigration();
  EXPECT_EQ(std::string(figures.getOutcome().cStr()), "committed");
  EXPECT_GT(figures.getBytesWire(), 0u);
  // hostB's data endpoint is on this machine (127.0.0.3): sent raw, and said so.
  EXPECT_EQ(std::string(figures.getCompression().cStr()),
            "none (the target, 127.0.0.3, is an address of this machine: no wire to save, and "
            "compressing would only add downtime)");
  waitFor([&] {
    return containersOn(cli, "hostB")["mig"] == "running" && !containersOn(cli, "hostA").count("mig");
  }, seconds(20), "heartbeats to show mig on hostB only");
  EXPECT_THROW(a().inspect("mig"), Error) << "hostA still has a copy";
  // The counter went on from where it was: its volume carried the last value
  // and the log on hostB continues without a restart.
  std::vector<unsigned long> values = counterValues(b(), "mig");
  waitFor([&] { values = counterValues(b(), "mig"); return values.size() >= 8; }, seconds(20),
          "mig to count on hostB");
  for (size_t i = 1; i < values.size(); ++i) {
    ASSERT_EQ(values[i], values[i - 1] + 1) << "the counter restarted or skipped at line " << i;
  }
}

// The real ferry-agent process: SIGTERM stops it and leaves its containers
// running; a restarted agent reports (adopts) them again.
TEST_F(AgentIntegration, TheAgentProcessStopsOnSigtermAndARestartAdoptsItsContainers) {
  runCounterOnA("kept", 2);
  pid_t pid = a().inspect("kept").pid;
  zmq::context_t ctx;
  auto coordinator = startCoordinator(ctx, dirs_->state / "coordinator");
  Running c([&](const std::atomic<bool>& stop) { coordinator->run(stop); });
  proto::RpcClient cli(ctx, coordinator->endpoint());
  const EngineConfig& cfg = a().config();
  auto start = [&] {
    return spawnChild({FERRY_AGENT_BIN, "--name", "hostA", "--coordinator", coordinator->endpoint(),
                       "--listen", "127.0.0.2", "--root", cfg.root.string(), "--run-dir",
                       cfg.run_dir.string(), "--heartbeat", "200"},
                      (dirs_->state / "agent.log").string());
  };
  Child agent = start();
  waitFor([&] { return hostsUp(cli)["hostA"] && containersOn(cli, "hostA")["kept"] == "running"; },
          seconds(20), "the agent to register and report kept");
  agent.kill(SIGTERM);
  int status = agent.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "status " << status << "; agent log: " << readFile(dirs_->state / "agent.log");
  EXPECT_EQ(a().inspect("kept").status, ContainerStatus::kRunning);
  EXPECT_EQ(a().inspect("kept").pid, pid) << "the container was restarted";

  waitFor([&] { return !hostsUp(cli)["hostA"]; }, seconds(20), "the stopped agent's host to be down");
  Child again = start();
  waitFor([&] { return hostsUp(cli)["hostA"] && containersOn(cli, "hostA")["kept"] == "running"; },
          seconds(20), "the restarted agent to adopt kept");
  EXPECT_EQ(a().inspect("kept").pid, pid) << "the restart restarted the container";
  again.kill(SIGTERM);
  again.wait();
}

}  // namespace
}  // namespace ferry::testing
