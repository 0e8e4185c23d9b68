// Post-copy migration (issue 16) on a local cluster, through the `ferry`
// CLI: the container runs on the target right after a dump without its
// memory, and its pages follow through the migration's stream. What must
// hold: every byte of memory arrives (the workload verifies each word), the
// pause it sees is short, the copy on the source goes only once every page
// is on the target, and a target lost meanwhile leaves one copy running --
// the source's.
#include <signal.h>

#include <algorithm>

#include "tests/integration/cluster_fixture.h"

namespace ferry::testing {
namespace {

// The writes count of the last "verify ok N" line (0 when none).
unsigned long long lastVerified(Engine& e, const std::string& name) {
  auto lines = workloadLines(e, name, "verify ok ");
  return lines.empty() ? 0 : std::stoull(lines.back().substr(10));
}

// The pauses the workload saw ("gap_ms N" lines), from the `from`-th on.
std::vector<long> gapsFrom(Engine& e, const std::string& name, size_t from) {
  std::vector<long> out;
  auto lines = workloadLines(e, name, "gap_ms ");
  for (size_t i = from; i < lines.size(); ++i) out.push_back(std::stol(lines[i].substr(7)));
  return out;
}

class PostcopyMigration : public ClusterMigration {
 protected:
  // The memory workload (tools/bench/workload.c): `mem_mib` of pseudo-random
  // memory it dirties at 8 MiB/s, a heartbeat every millisecond (a pause over
  // 20 ms prints "gap_ms N"), and a check of every word every 2 s.
  void runWorkload(const std::string& h, int mem_mib) {
    CliResult r = ferry({"run", "--host", h, "--name", "mem", "counter",
                         "/usr/local/bin/bench-workload", "--mem-mib", std::to_string(mem_mib),
                         "--dirty-mib-s", "8", "--verify-every-ms", "2000"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    waitFor([&] { return lastVerified(engine(h), "mem") > 0; }, seconds(60),
            "the workload to verify its memory");
    waitFor(
        [&] {
          CliResult ps = ferry({"--json", "ps"});
          return ps.exit_code == 0 && ps.out.find("\"running\"") != std::string::npos;
        },
        seconds(20), "the coordinator to see mem running");
  }

  // mem verifies on `h` again after `before` writes, and never failed.
  void expectVerifiedOn(const std::string& h, unsigned long long before) {
    waitFor([&] { return lastVerified(engine(h), "mem") > before; }, seconds(60),
            "mem to verify its memory on " + h);
    auto failed = workloadLines(engine(h), "mem", "verify FAIL");
    EXPECT_TRUE(failed.empty()) << failed.front();
  }

  // Copies of mem running (or paused) on either host, as runc sees them.
  int copiesOfMem() {
    int n = 0;
    for (const auto& h : state_.hosts) {
      auto c = on(h.name, "mem");
      n += c && (c->status == ContainerStatus::kRunning || c->status == ContainerStatus::kPaused);
    }
    return n;
  }
};

TEST_F(PostcopyMigration, AOneGibWorkloadRunsOnAfterAShortPauseWithEveryByteIntact) {
  runWorkload("hostA", 1024);
  size_t gaps_before = workloadLines(engine("hostA"), "mem", "gap_ms ").size();
  unsigned long long verified = lastVerified(engine("hostA"), "mem");

  CliResult r = ferry({"--json", "migrate", "mem", "hostA", "hostB", "--postcopy"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json f = json::parse(r.out);
  EXPECT_EQ(f["outcome"], "committed") << f.dump();
  EXPECT_EQ(f["postcopy"], "on (asked)") << f.dump();
  // Only what is not memory crossed while frozen; the pages came after,
  // nearly all of the GiB (some on the workload's faults, the rest pushed).
  EXPECT_LT(f["final_bytes_wire"].get<uint64_t>(), uint64_t{64} << 20) << f.dump();
  uint64_t pages = f["bytes_on_demand"].get<uint64_t>() + f["bytes_pushed"].get<uint64_t>();
  EXPECT_GT(pages, uint64_t{900} << 20) << f.dump();
  EXPECT_GT(f["postcopy_ms"].get<uint64_t>(), 0u) << f.dump();
  // Committed only with every page there: the source's copy is gone.
  EXPECT_FALSE(on("hostA", "mem"));
  auto c = on("hostB", "mem");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, ContainerStatus::kRunning);

  // Every word is what the workload wrote, and it writes on.
  expectVerifiedOn("hostB", verified);
  // The pause it saw: one, short, and what the migration reported.
  std::vector<long> gaps = gapsFrom(engine("hostB"), "mem", gaps_before);
  ASSERT_FALSE(gaps.empty()) << "the workload saw no pause at all";
  long pause = *std::max_element(gaps.begin(), gaps.end());
  // Not a speed test (tools/bench measures that): the pause must not hold
  // the memory's transfer, which alone takes over 2 s for a GiB here (a
  // cold migration of this workload pauses it 3-4.6 s).
  EXPECT_LT(pause, 2000) << "the workload was paused " << pause << " ms; " << f.dump();
  long reported = f["downtime_ms"].get<long>();
  EXPECT_LE(std::abs(reported - pause), 250)
      << "reported downtime " << reported << " ms, the workload saw " << pause << " ms";
  // The images the target's daemon read are gone with the last page.
  waitFor([&] { return fs::is_empty(fs::path(host("hostB").root) / "staging"); }, seconds(20),
          "hostB's staging to be emptied");
}

// The target's agent SIGKILLed while the pages flow: its copy (short of
// pages) is killed by the guard the restore left beside CRIU's daemon, the
// source resumes from the moment it froze, and its memory is whole.
TEST_F(PostcopyMigration, TheTargetKilledDuringPostcopyLeavesOneCopyRunningOnTheSource) {
  runWorkload("hostA", 1024);
  unsigned long long verified = lastVerified(engine("hostA"), "mem");
  bool killed = false;
  std::string error;
  try {
    zmq::context_t ctx;
    proto::RpcClient cli = client(ctx);
    cli.call(
        [](proto::Message::Builder m) {
          auto mg = m.initMigrate();
          mg.setContainer("mem");
          mg.setSource("hostA");
          mg.setTarget("hostB");
          mg.setPostcopy(1);
        },
        seconds(60), [&](proto::Progress::Reader p) {
          if (!killed && std::string(p.getPhase().cStr()) == "postcopy" &&
              p.getBytesDone() > (64u << 20)) {
            ::kill(host("hostB").pid, SIGKILL);
            killed = true;
          }
        });
  } catch (const Error& e) {
    error = e.what();
  }
  ASSERT_TRUE(killed) << "post-copy never got going: " << error;
  EXPECT_NE(error.find("post-copy was cut short"), std::string::npos) << error;
  // Never two copies: the one on hostB was killed with its agent, before
  // the source ran again.
  auto b = on("hostB", "mem");
  EXPECT_TRUE(!b || (b->status != ContainerStatus::kRunning && b->status != ContainerStatus::kPaused))
      << "a copy still runs on hostB";
  EXPECT_EQ(copiesOfMem(), 1);
  auto a = on("hostA", "mem");
  ASSERT_TRUE(a);
  EXPECT_EQ(a->status, ContainerStatus::kRunning);
  expectVerifiedOn("hostA", verified);

  // hostB back: what the migration left there goes.
  extra_agents_.push_back(startAgent("hostB", {}));
  waitFor([&] { return !on("hostB", "mem"); }, seconds(60), "hostB to discard its copy");
  EXPECT_EQ(copiesOfMem(), 1);
}

// A host that cannot take part in post-copy says why; --postcopy is
// refused before anything freezes, and auto says why it did not choose it.
TEST_F(PostcopyMigration, AHostWithoutPostcopyRefusesItWithTheReasonAndAutoGoesCold) {
  ::kill(host("hostB").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostB").pid); }, seconds(20), "hostB's agent to stop");
  extra_agents_.push_back(startAgent("hostB", {"--no-postcopy"}));
  const std::string why = "turned off on this host (its agent runs with --no-postcopy)";
  waitFor(
      [&] {
        CliResult h = ferry({"--json", "hosts"});
        if (h.exit_code != 0) return false;
        for (const auto& x : json::parse(h.out)) {
          if (x["name"] == "hostB") return x["postcopy"] == false && x["postcopy_unavailable"] == why;
        }
        return false;
      },
      seconds(20), "hostB to report post-copy unavailable");
  CliResult hosts = ferry({"hosts"});
  EXPECT_NE(hosts.err.find("hostB: no post-copy: " + why), std::string::npos) << hosts.out << hosts.err;

  runDemo("hostA");
  CliResult r = ferry({"migrate", "demo", "hostA", "hostB", "--postcopy"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("post-copy cannot run here (hostB: " + why + "); migrate without --postcopy"),
            std::string::npos)
      << r.err;
  expectCountingOn("hostA", "demo");

  CliResult cold = ferry({"--json", "migrate", "demo", "hostA", "hostB"});
  ASSERT_EQ(cold.exit_code, 0) << cold.err;
  json f = json::parse(cold.out);
  EXPECT_EQ(f["postcopy"], "off (auto: hostB: " + why + ")") << f.dump();
  EXPECT_EQ(f["postcopy_ms"], 0);
  expectCountingOn("hostB", "demo");
}

}  // namespace
}  // namespace ferry::testing
