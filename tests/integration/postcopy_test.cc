// Post-copy migration (issue 16) on a local cluster, through the `ferry`
// CLI: the container runs on the target right after a dump without its
// memory, and its pages follow through the migration's stream. What must
// hold: every byte of memory arrives (the workload verifies each word), the
// pause it sees is short, the copy on the source goes only once every page
// is on the target, and a target lost meanwhile leaves one copy running --
// the source's.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <thread>

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

// Watches both hosts (runc's state, every 20 ms, through engines of its
// own) until stopped, and remembers whether mem ever ran on both at once,
// and a timeline of mem's state on each host (for the failure message).
class TwoCopiesWatch {
 public:
  TwoCopiesWatch(const cluster::ClusterState& st, CommandRunner& runner) {
    for (const auto& h : st.hosts) {
      EngineConfig cfg;
      cfg.host_name = h.name;
      cfg.root = h.root;
      cfg.run_dir = h.run_dir;
      cfg.cgroup_parent = h.cgroup_parent;
      engines_.push_back(std::make_unique<Engine>(cfg, runner));
    }
    thread_ = std::thread([this] { watch(); });
  }
  ~TwoCopiesWatch() { stop(); }
  // Whether two ran at once (stops watching).
  bool sawTwo() {
    stop();
    return both_;
  }
  // What each host held, each time that changed (call after sawTwo).
  const std::string& timeline() const { return timeline_; }

 private:
  void watch() {
    const auto t0 = std::chrono::steady_clock::now();
    std::string last;
    while (!stop_) {
      int running = 0;
      std::string now;
      for (auto& e : engines_) {
        std::string state = "none";
        try {
          for (auto& c : e->list()) {
            if (c.name() != "mem") continue;
            state = std::string(statusName(c.status));
            running += c.status == ContainerStatus::kRunning;
          }
        } catch (const std::exception&) {
          state = "?";  // a container going away under the listing
        }
        now += " " + e->config().host_name + "=" + state;
      }
      if (now != last) {
        auto ms = std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - t0);
        timeline_ += "  at " + std::to_string(ms.count()) + " ms:" + now + "\n";
        last = now;
      }
      if (running > 1) both_ = true;
      std::this_thread::sleep_for(milliseconds(20));
    }
  }
  void stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::unique_ptr<Engine>> engines_;
  std::atomic<bool> stop_{false}, both_{false};
  std::string timeline_;  // written by the thread until stop() joins it
  std::thread thread_;
};

// Agents that take part in post-copy (--postcopy: opt-in).
class PostcopyMigration : public ClusterMigration {
 protected:
  std::vector<std::string> extraAgentArgs() const override { return {"--postcopy"}; }

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

  // Migrates mem hostA -> hostB with post-copy, SIGKILLing `victim` at the
  // first post-copy progress past 64 MiB (sets `killed`). Returns the
  // migration's error ("" when it succeeded).
  std::string migrateKillingDuringPostcopy(pid_t victim, std::atomic<bool>& killed) {
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
            mg.setPrecopy(0);  // post-copy alone: every page is still to come
          },
          seconds(90), [&](proto::Progress::Reader p) {
            if (!killed && std::string(p.getPhase().cStr()) == "postcopy" &&
                p.getBytesDone() > (64u << 20)) {
              ::kill(victim, SIGKILL);
              killed = true;
            }
          });
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }

  json migrateMem(const std::string& precopy);

  // Copies of mem running (or paused, with `paused`) on either host, as
  // runc sees them.
  int copiesOfMem(bool paused = true) {
    int n = 0;
    for (const auto& h : state_.hosts) {
      auto c = on(h.name, "mem");
      n += c && (c->status == ContainerStatus::kRunning ||
                 (paused && c->status == ContainerStatus::kPaused));
    }
    return n;
  }
};

// mem (a GiB, on hostA) migrated to hostB with post-copy and `precopy`
// rounds first; checks what every post-copy migration must hold -- committed
// only with every page there (the source's copy gone), every word what the
// workload wrote, one short pause, the one reported -- and returns the result.
json PostcopyMigration::migrateMem(const std::string& precopy) {
  runWorkload("hostA", 1024);
  size_t gaps_before = workloadLines(engine("hostA"), "mem", "gap_ms ").size();
  unsigned long long verified = lastVerified(engine("hostA"), "mem");
  CliResult r =
      ferry({"--json", "migrate", "mem", "hostA", "hostB", "--postcopy", "--precopy", precopy});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  json f = json::parse(r.out);
  EXPECT_EQ(f["outcome"], "committed") << f.dump();
  EXPECT_EQ(f["postcopy"], "on (asked)") << f.dump();
  EXPECT_GT(f["postcopy_ms"].get<uint64_t>(), 0u) << f.dump();
  EXPECT_FALSE(on("hostA", "mem"));
  auto c = on("hostB", "mem");
  EXPECT_TRUE(c && c->status == ContainerStatus::kRunning);
  // Every word is what the workload wrote, and it writes on.
  expectVerifiedOn("hostB", verified);
  // The pause it saw: one, short, and what the migration reported. The
  // workload prints it once it runs again, and the line reaches its log
  // through conmon, possibly after the migration's answer. (A freeze in the
  // middle of its check of every word was invisible to it until the check
  // beat as it went: the hybrid, frozen right after its rounds, often hit
  // that.)
  std::vector<long> gaps;
  try {
    waitFor([&] { return !(gaps = gapsFrom(engine("hostB"), "mem", gaps_before)).empty(); },
            seconds(10), "the workload to report its pause");
  } catch (const std::exception&) {
    // Said below, with what the migration reported.
  }
  EXPECT_FALSE(gaps.empty()) << "the workload saw no pause at all (" << gaps_before
                             << " pauses on hostA before the migration, "
                             << workloadLines(engine("hostB"), "mem", "gap_ms ").size()
                             << " on hostB after it)";
  long pause = gaps.empty() ? 0 : *std::max_element(gaps.begin(), gaps.end());
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
  return f;
}

TEST_F(PostcopyMigration, AOneGibWorkloadRunsOnAfterAShortPauseWithEveryByteIntact) {
  json f = migrateMem("off");  // post-copy alone
  EXPECT_EQ(f["bytes_held"], 0) << f.dump();
  // Only what is not memory crossed while frozen; the pages came after,
  // nearly all of the GiB (some on the workload's faults, the rest pushed).
  EXPECT_LT(f["final_bytes_wire"].get<uint64_t>(), uint64_t{64} << 20) << f.dump();
  uint64_t pages = f["bytes_on_demand"].get<uint64_t>() + f["bytes_pushed"].get<uint64_t>();
  EXPECT_GT(pages, uint64_t{900} << 20) << f.dump();
}

// The hybrid: pre-copy rounds while it runs, then post-copy, whose pages
// the target holds from the rounds are served there -- what crosses after
// the freeze is what the workload changed since the last round.
TEST_F(PostcopyMigration, AHybridFetchesFromTheSourceOnlyWhatChangedSinceTheLastRound) {
  json f = migrateMem("2");
  ASSERT_GE(f["precopy_rounds"].size(), 1u) << f.dump();
  const uint64_t fetched =
      f["bytes_on_demand"].get<uint64_t>() + f["bytes_pushed"].get<uint64_t>();
  const uint64_t held = f["bytes_held"].get<uint64_t>();
  // Every page of the GiB reached the target, nearly all from its own
  // pre-copied blocks.
  EXPECT_GT(held + fetched, uint64_t{1000} << 20) << f.dump();
  EXPECT_GT(held, uint64_t{800} << 20) << f.dump();
  // What crossed is what changed: it dirties 8 MiB/s, and the freeze came
  // within seconds of the last round's read (a round reads the GiB in about
  // 2 s here). Something did change: it never stops writing.
  EXPECT_GT(fetched, 0u) << f.dump();
  EXPECT_LT(fetched, uint64_t{160} << 20) << f.dump();
}

// The target's agent SIGKILLed while the pages flow: its copy (short of
// pages) is killed by the guard the restore left beside CRIU's daemon, the
// source resumes from the moment it froze, and its memory is whole.
TEST_F(PostcopyMigration, TheTargetKilledDuringPostcopyLeavesOneCopyRunningOnTheSource) {
  runWorkload("hostA", 1024);
  unsigned long long verified = lastVerified(engine("hostA"), "mem");
  TwoCopiesWatch watch(state_, runner_);
  std::atomic<bool> killed{false};
  std::string error = migrateKillingDuringPostcopy(host("hostB").pid, killed);
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
  EXPECT_FALSE(watch.sawTwo()) << "mem ran on both hosts at once:\n" << watch.timeline();
  // The copy on hostB never read a page that did not come (as zeros).
  if (on("hostB", "mem")) {
    auto failed = workloadLines(engine("hostB"), "mem", "verify FAIL");
    EXPECT_TRUE(failed.empty()) << failed.front();
  }

  // hostB back: what the migration left there goes.
  extra_agents_.push_back(startAgent("hostB", {}));
  waitFor([&] { return !on("hostB", "mem"); }, seconds(60), "hostB to discard its copy");
  EXPECT_EQ(copiesOfMem(), 1);
}

// The source's agent SIGKILLed while the pages flow: CRIU on the source
// sees its page connection end and lets the container go, still frozen
// with all its memory; the target kills its copy once the stream is silent;
// the migration rolls back, and with the agent back the container runs on
// the source from the moment it froze, its memory whole.
TEST_F(PostcopyMigration, TheSourceAgentKilledDuringPostcopyRollsBackOnceItIsBack) {
  runWorkload("hostA", 1024);
  unsigned long long verified = lastVerified(engine("hostA"), "mem");
  const pid_t source_agent = host("hostA").pid;
  TwoCopiesWatch watch(state_, runner_);
  std::atomic<bool> killed{false};
  // The outcome is read from the history below, not from the call.
  std::thread mover([&] { migrateKillingDuringPostcopy(source_agent, killed); });
  waitFor([&] { return killed.load(); }, seconds(90), "post-copy to get going");
  waitFor([&] { return !processAlive(source_agent); }, seconds(10), "hostA's agent to die");
  // hostB's copy lacks pages: it is killed once its stream is silent, while
  // the source's agent is still gone (mem stays paused on hostA).
  waitFor(
      [&] {
        auto b = on("hostB", "mem");
        return !b || (b->status != ContainerStatus::kRunning && b->status != ContainerStatus::kPaused);
      },
      seconds(60), "hostB's copy to be killed");
  extra_agents_.push_back(startAgent("hostA", {}));
  mover.join();
  json last = resolvedMigration();
  EXPECT_EQ(last["outcome"], "rolled-back") << last.dump();
  waitFor(
      [&] {
        auto a = on("hostA", "mem");
        return copiesOfMem() == 1 && a && a->status == ContainerStatus::kRunning;
      },
      seconds(60), "mem to run on hostA again");
  expectVerifiedOn("hostA", verified);
  waitFor([&] { return !on("hostB", "mem"); }, seconds(30), "hostB to hold no copy");
  EXPECT_FALSE(watch.sawTwo()) << "mem ran on both hosts at once:\n" << watch.timeline();
}

// The source's machine lost during post-copy: its agent dies, and the
// frozen copy with it (its tasks are killed here, as a dead machine's
// memory is gone). hostB's copy, short of pages, is killed; once hostA is
// back (a fresh agent, as after a reboot) the migration says mem is lost,
// in the CLI's answer and in the history, and no copy runs anywhere.
TEST_F(PostcopyMigration, TheSourceMachineLostDuringPostcopyLosesTheContainerAndSaysSo) {
  runWorkload("hostA", 1024);
  const pid_t source_agent = host("hostA").pid;
  TwoCopiesWatch watch(state_, runner_);
  std::atomic<bool> killed{false};
  std::string error;
  std::thread mover([&] { error = migrateKillingDuringPostcopy(source_agent, killed); });
  struct Joined {
    std::thread& t;
    ~Joined() {
      if (t.joinable()) t.join();
    }
  } joined{mover};
  waitFor([&] { return killed.load(); }, seconds(90), "post-copy to get going");
  waitFor([&] { return !processAlive(source_agent); }, seconds(10), "hostA's agent to die");
  // CRIU lets mem go, frozen, when the agent's page connection ends; then
  // its memory goes: SIGKILL, which lands once it is thawed.
  waitFor(
      [&] {
        auto a = on("hostA", "mem");
        return a && a->status == ContainerStatus::kPaused;
      },
      seconds(30), "CRIU on hostA to let mem go");
  // Up to here one copy at most ran. (Killing a task wakes it to die: the
  // watch would count that as running.)
  EXPECT_FALSE(watch.sawTwo()) << "mem ran on both hosts at once:\n" << watch.timeline();
  engine("hostA").kill("mem", SIGKILL);
  // Frozen in its cgroup: thawed, so the kill lands. Again while it lives:
  // "paused" may show before CRIU has let go, and CRIU freezes the cgroup
  // again as it leaves (it found it frozen), a thaw before that undone
  // (seen once in a full run: the tasks lived on, frozen, the kill pending).
  waitFor(
      [&] {
        auto a = on("hostA", "mem");
        if (a && a->status == ContainerStatus::kPaused) {
          try {
            engine("hostA").resume("mem");
          } catch (const Error&) {
            // Not frozen (CRIU left it stopped for tracing only): the kill lands.
          }
          return false;
        }
        return a && a->status != ContainerStatus::kRunning;
      },
      seconds(30), "mem's tasks on hostA to die");
  waitFor(
      [&] {
        auto b = on("hostB", "mem");
        return !b || (b->status != ContainerStatus::kRunning && b->status != ContainerStatus::kPaused);
      },
      seconds(60), "hostB's copy to be killed");
  // The migration ends while hostA is away: its resume is owed, and the
  // answer says what hangs on it.
  mover.join();
  EXPECT_NE(error.find("if hostA's machine is lost, so is mem"), std::string::npos) << error;
  extra_agents_.push_back(startAgent("hostA", {}));
  // hostA is back without mem's frozen copy: the history says mem is lost.
  json last = resolvedMigration("lost");
  EXPECT_NE(last["error"].get<std::string>().find("mem is lost"), std::string::npos)
      << last.dump();
  EXPECT_NE(last["error"].get<std::string>().find("its copy did not survive"), std::string::npos)
      << last.dump();
  // Nothing half-restored is left on hostB, and nothing runs on hostA.
  waitFor([&] { return !on("hostB", "mem"); }, seconds(30), "hostB to hold no copy");
  EXPECT_EQ(copiesOfMem(), 0);
}

// Agents started without --postcopy: each says why it cannot take part;
// --postcopy is refused before anything freezes, with the reasons, and auto
// says why it did not choose it.
class NoPostcopy : public ClusterMigration {};

TEST_F(NoPostcopy, HostsSayWhyMigrateRefusesPostcopyWithTheReasonAndAutoGoesCold) {
  const std::string why = "not enabled on this host (start its agent with --postcopy)";
  waitFor(
      [&] {
        CliResult h = ferry({"--json", "hosts"});
        if (h.exit_code != 0) return false;
        json hosts = json::parse(h.out);
        if (hosts.size() != 2) return false;
        for (const auto& x : hosts) {
          if (x["postcopy"] != false || x["postcopy_unavailable"] != why) return false;
        }
        return true;
      },
      seconds(20), "both hosts to report post-copy unavailable");
  CliResult hosts = ferry({"hosts"});
  EXPECT_NE(hosts.err.find("hostB: no post-copy: " + why), std::string::npos) << hosts.out << hosts.err;

  runDemo("hostA");
  CliResult r = ferry({"migrate", "demo", "hostA", "hostB", "--postcopy"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("post-copy cannot run here (hostA: " + why + "; hostB: " + why +
                       "); migrate without --postcopy"),
            std::string::npos)
      << r.err;
  expectCountingOn("hostA", "demo");

  CliResult cold = ferry({"--json", "migrate", "demo", "hostA", "hostB"});
  ASSERT_EQ(cold.exit_code, 0) << cold.err;
  json f = json::parse(cold.out);
  EXPECT_EQ(f["postcopy"], "off (auto: hostA: " + why + "; hostB: " + why + ")") << f.dump();
  EXPECT_EQ(f["postcopy_ms"], 0);
  expectCountingOn("hostB", "demo");
}

}  // namespace
}  // namespace ferry::testing
