// ferry-agent's command line (agent/command_line.h): argument vectors in,
// the options it would run with or how it would exit.
#include <gtest/gtest.h>

#include "agent/command_line.h"
#include "common/fs.h"

namespace ferry::agent {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

AgentCommandLine parsed(std::vector<std::string> args) {
  auto r = parseAgentCommandLine(args);
  if (auto* e = std::get_if<cli::ParseExit>(&r)) {
    ADD_FAILURE() << "exit " << e->code << ": " << e->err;
    return {};
  }
  return std::get<AgentCommandLine>(r);
}

cli::ParseExit exitOf(std::vector<std::string> args) {
  auto r = parseAgentCommandLine(args);
  if (auto* e = std::get_if<cli::ParseExit>(&r)) return *e;
  ADD_FAILURE() << "parsed, but should not have";
  return {};
}

TEST(AgentCommandLine, DefaultsAndEveryOptionByItsName) {
  AgentCommandLine d = parsed({"--name", "hostA"});
  EXPECT_EQ(d.opts.name, "hostA");
  EXPECT_EQ(d.engine.host_name, "hostA");
  EXPECT_EQ(d.opts.coordinator, "tcp://127.0.0.1:7000");
  EXPECT_EQ(d.opts.data_address, "127.0.0.1");
  EXPECT_EQ(d.opts.heartbeat, seconds(1));
  EXPECT_EQ(d.opts.stream_timeout, seconds(60));
  EXPECT_EQ(d.opts.drain_on_stop, seconds(0));
  EXPECT_EQ(d.opts.memory_capacity, 0u);
  EXPECT_TRUE(d.keys_dir.empty());

  AgentCommandLine a = parsed({"--name",
                               "hostB",
                               "--coordinator",
                               "tcp://10.0.0.1:7000",
                               "--listen",
                               "127.0.0.3",
                               "--root",
                               "/r",
                               "--run-dir",
                               "/run/x",
                               "--cgroup-parent",
                               "/c",
                               "--keys",
                               "/k",
                               "--criu",
                               "/usr/sbin/criu",
                               "--memory-capacity",
                               "1024",
                               "--drain-on-memory-pressure",
                               "12.5",
                               "--drain-on-disk-free=10"});
  EXPECT_EQ(a.opts.coordinator, "tcp://10.0.0.1:7000");
  EXPECT_EQ(a.opts.data_address, "127.0.0.3");
  EXPECT_EQ(a.engine.root, "/r");
  EXPECT_EQ(a.engine.run_dir, "/run/x");
  EXPECT_EQ(a.engine.cgroup_parent, "/c");
  EXPECT_EQ(a.keys_dir, "/k");
  EXPECT_EQ(a.engine.tools.criu, "/usr/sbin/criu");
  EXPECT_EQ(a.opts.memory_capacity, uint64_t{1024} << 20);
  EXPECT_EQ(a.opts.drain_on_memory_pressure, 12.5);
  EXPECT_EQ(a.opts.drain_on_disk_free, 10);
}

TEST(AgentCommandLine, DurationsTakeUnitsAndABareNumberKeepsItsOldUnit) {
  EXPECT_EQ(parsed({"--name", "h", "--heartbeat", "1s"}).opts.heartbeat, milliseconds(1000));
  EXPECT_EQ(parsed({"--name", "h", "--heartbeat", "500ms"}).opts.heartbeat, milliseconds(500));
  EXPECT_EQ(parsed({"--name", "h", "--heartbeat", "200"}).opts.heartbeat, milliseconds(200));
  EXPECT_EQ(parsed({"--name", "h", "--stream-timeout", "8000"}).opts.stream_timeout,
            milliseconds(8000));
  EXPECT_EQ(parsed({"--name", "h", "--stream-timeout", "2m"}).opts.stream_timeout, seconds(120));
  EXPECT_EQ(parsed({"--name", "h", "--drain-on-stop", "60"}).opts.drain_on_stop, seconds(60));
  EXPECT_EQ(parsed({"--name", "h", "--drain-on-stop", "2m"}).opts.drain_on_stop, seconds(120));
  EXPECT_EQ(parsed({"--name", "h", "--drain-on-stop", "1500ms"}).opts.drain_on_stop, seconds(2))
      << "never less than asked";
  EXPECT_EQ(parsed({"--name", "h", "--drain-on-stop", "0"}).opts.drain_on_stop, seconds(0));
}

TEST(AgentCommandLine, AnOptionGivenTwiceTakesTheLastValue) {
  // `ferry cluster up` passes its own --heartbeat, then the operator's.
  AgentCommandLine a = parsed({"--name", "h", "--heartbeat", "1000", "--listen", "127.0.0.2",
                               "--heartbeat", "200", "--name", "h2"});
  EXPECT_EQ(a.opts.heartbeat, milliseconds(200));
  EXPECT_EQ(a.opts.name, "h2");
}

TEST(AgentCommandLine, HelpExitsZeroWithTheUsage) {
  cli::ParseExit e = exitOf({"--help"});
  EXPECT_EQ(e.code, 0);
  EXPECT_NE(e.out.find("Usage: ferry-agent"), std::string::npos) << e.out;
  EXPECT_NE(e.out.find("--drain-on-stop"), std::string::npos);
  EXPECT_TRUE(e.err.empty());
}

// --version needs no --name (man pages and packagers ask for it alone).
TEST(AgentCommandLine, VersionExitsZeroWithTheProjectsVersion) {
  cli::ParseExit e = exitOf({"--version"});
  EXPECT_EQ(e.code, 0) << e.err;
  EXPECT_EQ(e.out, std::string(FERRY_VERSION) + "\n");
}

TEST(AgentCommandLine, ABadValueIsAUsageErrorNamingTheOption) {
  struct Case {
    std::vector<std::string> args;
    std::string option;
  };
  for (const Case& c : std::vector<Case>{
           {{"--name", "h", "--heartbeat", "5x"}, "--heartbeat"},
           {{"--name", "h", "--heartbeat", "0"}, "--heartbeat"},
           {{"--name", "h", "--stream-timeout", "-1"}, "--stream-timeout"},
           {{"--name", "h", "--drain-on-stop", "1d"}, "--drain-on-stop"},
           {{"--name", "h", "--memory-capacity", "1G"}, "--memory-capacity"},
           {{"--name", "h", "--drain-on-memory-pressure", "nan"}, "--drain-on-memory-pressure"},
           {{"--name", "h", "--drain-on-disk-free", "101"}, "--drain-on-disk-free"},
           {{"--name", "../etc"}, "--name"},
           {{"--name"}, "--name"},
           {{"--listen", "127.0.0.2"}, "--name"},  // required
       }) {
    cli::ParseExit e = exitOf(c.args);
    EXPECT_EQ(e.code, 2) << c.option;
    EXPECT_NE(e.err.find(c.option), std::string::npos) << e.err;
    EXPECT_NE(e.err.find("ferry-agent --help"), std::string::npos) << e.err;
  }
  cli::ParseExit unknown = exitOf({"--name", "h", "--heartbeats", "1s"});
  EXPECT_EQ(unknown.code, 2);
  EXPECT_NE(unknown.err.find("--heartbeats"), std::string::npos) << unknown.err;
}

// What a systemd unit runs: `ferry-agent --config /etc/ferry/agent.conf`.
TEST(AgentCommandLine, AConfigFileSetsOptionsAndTheCommandLineWins) {
  TempDir dir;
  fs::path conf = dir.path() / "agent.conf";
  writeFileAtomic(conf,
            "# written by the agent role\n"
            "name = \"hostA\"\n"
            "coordinator = \"tcp://10.0.0.1:7000\"\n"
            "heartbeat = \"2s\"\n"
            "drain-on-stop = \"120s\"\n"
            "postcopy = true\n");
  AgentCommandLine c = parsed({"--config", conf.string()});
  EXPECT_EQ(c.opts.name, "hostA");
  EXPECT_EQ(c.opts.coordinator, "tcp://10.0.0.1:7000");
  EXPECT_EQ(c.opts.heartbeat, seconds(2));
  EXPECT_EQ(c.opts.drain_on_stop, seconds(120));
  EXPECT_TRUE(c.engine.postcopy);
  AgentCommandLine over = parsed({"--config", conf.string(), "--name", "hostB"});
  EXPECT_EQ(over.opts.name, "hostB");
  EXPECT_EQ(over.engine.host_name, "hostB");
  EXPECT_EQ(over.opts.heartbeat, seconds(2));
}

TEST(AgentCommandLine, AConfigFileWithAnUnknownKeyOrABadValueOrMissingIsRefused) {
  TempDir dir;
  fs::path typo = dir.path() / "typo.conf";
  writeFileAtomic(typo, "name = \"hostA\"\nheartbeats = \"1s\"\n");
  cli::ParseExit e = exitOf({"--config", typo.string()});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("config file " + typo.string()), std::string::npos) << e.err;
  EXPECT_NE(e.err.find("'heartbeats' is not an option of ferry-agent"), std::string::npos) << e.err;

  fs::path bad = dir.path() / "bad.conf";
  writeFileAtomic(bad, "name = \"hostA\"\nheartbeat = \"5x\"\n");
  cli::ParseExit b = exitOf({"--config", bad.string()});
  EXPECT_EQ(b.code, 2);
  EXPECT_NE(b.err.find("--heartbeat"), std::string::npos) << b.err;

  cli::ParseExit missing = exitOf({"--config", (dir.path() / "none.conf").string()});
  EXPECT_EQ(missing.code, 2);
  EXPECT_NE(missing.err.find("none.conf"), std::string::npos) << missing.err;
}

}  // namespace
}  // namespace ferry::agent
