// The coordinator with two real agents and a client on the control
// protocol: hosts register and report, a silent host is marked down, and
// comes back up when it reports again.
#include <gtest/gtest.h>

#include "agent/agent.h"
#include "coordinator/coordinator.h"
#include "common/time_util.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;
using CoordinatorIntegration = TwoHostTest;

TEST_F(CoordinatorIntegration, HostsRegisterReportAndAreMarkedDownWhenSilent) {
  zmq::context_t ctx;
  coord::Coordinator coordinator(
      {.listen = "ipc://" + (dirs_->state / "coordinator.sock").string(),
       .state_dir = dirs_->state / "coordinator",
       .heartbeat = milliseconds(200), .missed_heartbeats = 5},
      ctx, [] { return unixMillis(); });
  std::string endpoint = coordinator.endpoint();
  Running c([&](const std::atomic<bool>& stop) { coordinator.run(stop); });
  auto agentFor = [&](Engine& e, const std::string& name, const std::string& addr) {
    return std::make_unique<agent::Agent>(
        agent::AgentOptions{.name = name, .coordinator = endpoint, .data_address = addr,
                            .heartbeat = milliseconds(200)},
        e, ctx);
  };
  auto agent_a = agentFor(a(), "hostA", "127.0.0.2");
  auto agent_b = agentFor(b(), "hostB", "127.0.0.3");
  auto run_a = std::make_unique<Running>([&](const std::atomic<bool>& s) { agent_a->run(s); });
  Running run_b([&](const std::atomic<bool>& s) { agent_b->run(s); });

  proto::RpcClient cli(ctx, endpoint);
  waitFor([&] { auto up = hostsUp(cli); return up["hostA"] && up["hostB"]; }, seconds(20),
          "both hosts to register");
  runCounterOnA("web", 1);
  waitFor([&] {
    auto r = cli.call([](proto::Message::Builder m) { m.setListContainers("hostA"); }, seconds(5));
    for (auto ct : r->root<proto::Message>().getContainers()) {
      if (std::string(ct.getName().cStr()) == "web" && std::string(ct.getStatus().cStr()) == "running") {
        return true;
      }
    }
    return false;
  }, seconds(20), "hostA's heartbeat to report web running");

  run_a.reset();  // hostA's agent stops: its heartbeats stop
  waitFor([&] { return !hostsUp(cli)["hostA"]; }, seconds(20), "silent hostA to be marked down");
  EXPECT_TRUE(hostsUp(cli)["hostB"]);
  run_a = std::make_unique<Running>([&](const std::atomic<bool>& s) { agent_a->run(s); });
  waitFor([&] { return hostsUp(cli)["hostA"]; }, seconds(20), "hostA to be up again");
  run_a.reset();
  // A command for a container on a host that is down is a clear error at
  // once, not silence.
  waitFor([&] { return !hostsUp(cli)["hostA"]; }, seconds(20), "hostA to be down again");
  try {
    cli.call([](proto::Message::Builder m) { m.setStop("web"); }, seconds(5));
    FAIL() << "stopping a container on a down host succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
    EXPECT_NE(std::string(e.what()).find("hostA is down"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace ferry::testing
