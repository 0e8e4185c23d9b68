// ferry-coordinator's command line (coordinator/command_line.h): argument
// vectors in, the options it would run with or how it would exit.
#include <gtest/gtest.h>

#include "coordinator/command_line.h"
#include "common/fs.h"

namespace ferry::coord {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

CoordinatorCommandLine parsed(std::vector<std::string> args) {
  auto r = parseCoordinatorCommandLine(args);
  if (auto* e = std::get_if<cli::ParseExit>(&r)) {
    ADD_FAILURE() << "exit " << e->code << ": " << e->err;
    return {};
  }
  return std::get<CoordinatorCommandLine>(r);
}

cli::ParseExit exitOf(std::vector<std::string> args) {
  auto r = parseCoordinatorCommandLine(args);
  if (auto* e = std::get_if<cli::ParseExit>(&r)) return *e;
  ADD_FAILURE() << "parsed, but should not have";
  return {};
}

TEST(CoordinatorCommandLine, DefaultsAndEveryOptionByItsName) {
  CoordinatorCommandLine d = parsed({});
  // Without keys, a unix socket for root (issue 14, hole 7); with, TCP.
  EXPECT_EQ(d.opts.listen, "ipc:///run/ferry/coordinator.sock");
  EXPECT_EQ(parsed({"--keys", "/k"}).opts.listen, "tcp://127.0.0.1:7000");
  CoordinatorCommandLine two = parsed({"--listen", "ipc:///s", "--listen", "tcp://127.0.0.1:1",
                                       "--agent-address", "hostA=127.0.0.2"});
  EXPECT_EQ(two.opts.listen, "ipc:///s");
  EXPECT_EQ(two.opts.also_listen, std::vector<std::string>{"tcp://127.0.0.1:1"});
  EXPECT_EQ(two.opts.access.agent_addresses.at("127.0.0.2"), "hostA");
  EXPECT_EQ(exitOf({"--agent-address", "hostA"}).code, 2);
  EXPECT_EQ(d.opts.state_dir, "/var/lib/ferry/coordinator");
  EXPECT_EQ(d.opts.heartbeat, seconds(1));
  EXPECT_EQ(d.opts.missed_heartbeats, 5);
  EXPECT_EQ(d.opts.rebalance_every, milliseconds(0));
  EXPECT_EQ(d.opts.rebalance.high_percent, 80);
  EXPECT_EQ(d.opts.rebalance.low_percent, 50);
  EXPECT_EQ(d.opts.rebalance.max_moves, 10);

  CoordinatorCommandLine a =
      parsed({"--listen", "tcp://127.0.0.1:7393", "--state", "/s", "--keys", "/k", "--heartbeat",
              "200", "--missed", "3", "--rebalance-every", "1", "--rebalance-high", "25",
              "--rebalance-low", "10", "--rebalance-max-moves", "4"});
  EXPECT_EQ(a.opts.listen, "tcp://127.0.0.1:7393");
  EXPECT_EQ(a.opts.state_dir, "/s");
  EXPECT_EQ(a.keys_dir, "/k");
  EXPECT_EQ(a.opts.heartbeat, milliseconds(200));  // a bare number: milliseconds, as always
  EXPECT_EQ(a.opts.missed_heartbeats, 3);
  EXPECT_EQ(a.opts.rebalance_every, seconds(1));  // a bare number: seconds, as always
  EXPECT_EQ(a.opts.rebalance.high_percent, 25);
  EXPECT_EQ(a.opts.rebalance.low_percent, 10);
  EXPECT_EQ(a.opts.rebalance.max_moves, 4);

  EXPECT_EQ(parsed({"--heartbeat", "1s"}).opts.heartbeat, milliseconds(1000));
  EXPECT_EQ(parsed({"--heartbeat", "500ms"}).opts.heartbeat, milliseconds(500));
  EXPECT_EQ(parsed({"--rebalance-every", "2m"}).opts.rebalance_every, seconds(120));
  EXPECT_EQ(parsed({"--rebalance-every", "0"}).opts.rebalance_every, milliseconds(0));
  // Given twice, the last counts (`ferry cluster up --coordinator-arg`).
  EXPECT_EQ(parsed({"--missed", "5", "--missed", "2"}).opts.missed_heartbeats, 2);
}

TEST(CoordinatorCommandLine, HelpExitsZeroWithTheUsage) {
  cli::ParseExit e = exitOf({"--help"});
  EXPECT_EQ(e.code, 0);
  EXPECT_NE(e.out.find("Usage: ferry-coordinator"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("--rebalance-every"), std::string::npos);
}

TEST(CoordinatorCommandLine, VersionExitsZeroWithTheProjectsVersion) {
  cli::ParseExit e = exitOf({"--version"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out, std::string(FERRY_VERSION) + "\n");
}

TEST(CoordinatorCommandLine, ABadValueIsAUsageErrorNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  for (const Case& c : std::vector<Case>{
           {{"--heartbeat", "1x"}, "--heartbeat"},
           {{"--missed", "0"}, "--missed"},
           {{"--missed", "5x"}, "--missed"},
           {{"--rebalance-every", "-1"}, "--rebalance-every"},
           {{"--rebalance-high", "80%"}, "--rebalance-high"},
           {{"--rebalance-max-moves", "0"}, "--rebalance-max-moves"},
           {{"--rebalance-low", "90"}, "--rebalance-low"},  // above the high mark
           {{"--state"}, "--state"},
       }) {
    cli::ParseExit e = exitOf(c.args);
    EXPECT_EQ(e.code, 2) << c.option;
    EXPECT_NE(e.err.find(c.option), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("ferry-coordinator --help"), std::string::npos) << e.err;
  }
}

TEST(CoordinatorCommandLine, AConfigFileTakesARepeatedOptionAsAList) {
  TempDir dir;
  fs::path conf = dir.path() / "coordinator.conf";
  writeFileAtomic(conf,
            "listen = [\"tcp://10.0.0.1:7000\", \"ipc:///run/ferry/coordinator.sock\"]\n"
            "keys = \"/etc/ferry/keys\"\n"
            "history-keep = 500\n");
  CoordinatorCommandLine c = parsed({"--config", conf.string()});
  EXPECT_EQ(c.opts.listen, "tcp://10.0.0.1:7000");
  EXPECT_EQ(c.opts.also_listen, std::vector<std::string>{"ipc:///run/ferry/coordinator.sock"});
  EXPECT_EQ(c.keys_dir, "/etc/ferry/keys");
  EXPECT_EQ(c.opts.history_keep, 500);
  EXPECT_EQ(parsed({}).opts.history_keep, 10000);
  writeFileAtomic(conf, "listen = \"tcp://10.0.0.1:7000\"\nstate-dir = \"/s\"\n");
  cli::ParseExit e = exitOf({"--config", conf.string()});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("'state-dir' is not an option of ferry-coordinator"), std::string::npos)
      << e.err;
}

}  // namespace
}  // namespace ferry::coord
