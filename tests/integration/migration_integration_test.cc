// Live migration end to end: a real coordinator and two real agents (the
// local cluster of `ferry cluster up`), real containers under runc, CRIU
// checkpoints streamed over ZeroMQ between 127.0.0.2 and 127.0.0.3, driven
// through the real `ferry` CLI. Each test proves what happened to the
// container's state: the counter went on (or was never broken), the volume
// and rootfs changes came along, and no second copy is left anywhere.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <thread>

#include "common/fs.h"
#include "common/log.h"
#include "common/sha256.h"
#include "engine/engine.h"
#include "engine/runtime/process.h"
#include "protocol/rpc.h"
#include "tests/integration/cluster_fixture.h"
#include "tests/integration/test_host.h"
#include "tests/support/oci_layout.h"
#include "tools/cluster.h"

namespace ferry::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

// The CRIU log directories root/logs/NAME-KIND-MILLIS of a host, each with
// whether its operation was marked as ended well (log_retention.h).
std::vector<std::pair<std::string, bool>> criuLogs(const fs::path& root, const std::string& prefix) {
  std::vector<std::pair<std::string, bool>> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root / "logs", ec)) {
    std::string f = e.path().filename().string();
    if (f.rfind(prefix, 0) == 0) out.emplace_back(f, pathExists(e.path() / ".done"));
  }
  return out;
}




TEST_F(ClusterMigration, CounterMigratesAToBToAWithItsVolumeAndRootfsChanges) {
  runDemo("hostA");
  const unsigned long first_value = counterValues(engine("hostA"), "demo").front();
  for (auto [src, dst] : {std::pair{"hostA", "hostB"}, std::pair{"hostB", "hostA"}}) {
    // The source's last value before the freeze, watched while the
    // migration runs (its log goes with the commit).
    std::atomic<bool> done{false};
    std::atomic<unsigned long> before{counterValues(engine(src), "demo").back()};
    std::thread watch([&, src = std::string(src)] {
      LocalCommandRunner r;
      EngineConfig cfg = engine(src).config();
      Engine e(cfg, r);
      while (!done) {
        try {
          auto v = counterValues(e, "demo");
          if (!v.empty() && v.back() > before) before = v.back();
        } catch (const std::exception&) {
          // Gone with the commit.
        }
        std::this_thread::sleep_for(milliseconds(10));
      }
    });
    CliResult r = ferry({"migrate", "demo", src, dst, "--json"});
    done = true;
    watch.join();
    ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
    json f = json::parse(r.out);
    EXPECT_EQ(f["outcome"], "committed");
    EXPECT_EQ(f["source"], src);
    EXPECT_EQ(f["target"], dst);
    EXPECT_GT(f["downtime_ms"].get<uint64_t>(), 0u);
    EXPECT_GE(f["total_ms"].get<uint64_t>(), f["downtime_ms"].get<uint64_t>());
    EXPECT_GT(f["bytes_raw"].get<uint64_t>(), 0u);
    EXPECT_GT(f["bytes_wire"].get<uint64_t>(), 0u);
    std::set<std::string> phases;
    for (const auto& p : f["phase_ms"]) phases.insert(p["phase"].get<std::string>());
    for (const char* p : {"plan", "prepare", "dump", "transfer", "restore", "commit"}) {
      EXPECT_TRUE(phases.count(p)) << "no time for phase " << p << " in " << f.dump();
    }
    // Every agent of this cluster is on this machine: the source sends raw
    // and says why, naming the target's address.
    EXPECT_EQ(f["compression"], "none (the target, " + host(dst).address +
                                    ", is an address of this machine: no wire to save, and "
                                    "compressing would only add downtime)");

    // No copy remains on the source: no container, no runc state, no volume.
    EXPECT_FALSE(on(src, "demo")) << "a copy remained on " << src;
    EXPECT_FALSE(runcHasContainers(engine(src).config()));
    EXPECT_FALSE(engine(src).volumes().exists("data")) << "the volume stayed behind on " << src;
    auto c = on(dst, "demo");
    ASSERT_TRUE(c);
    EXPECT_EQ(c->status, ContainerStatus::kRunning);

    // The counter went on from where it was: its output and its volume.
    waitFor([&] { return valuesAfter(counterValues(engine(dst), "demo"), before).size() >= 5; },
            seconds(20), "demo to count on " + std::string(dst));
    std::vector<unsigned long> after = valuesAfter(counterValues(engine(dst), "demo"), before);
    EXPECT_GT(after.front(), before) << "the counter reset";
    EXPECT_LE(after.front(), before + 1) << "the counter skipped";
    // Its output came along: the log on dst holds every value since the
    // first run, without a gap, across both moves.
    std::vector<unsigned long> whole = counterValues(engine(dst), "demo");
    EXPECT_EQ(whole.front(), first_value) << "the earlier output did not come along";
    expectUnbroken(whole);
    unsigned long in_volume = volumeCounter(engine(dst));
    EXPECT_GE(in_volume, after.front());

    // The rootfs changes came along (seen through the container's rootfs).
    fs::path rootfs = fs::path(host(dst).root) / "containers" / "demo" / "rootfs";
    EXPECT_EQ(readFile(rootfs / "opt/app/a"), "changed\n");
    EXPECT_FALSE(pathExists(rootfs / "opt/app/b"));
    EXPECT_EQ(readFile(rootfs / "opt/app/c"), "new\n");
  }

  // ps shows it where it is now, with its memory (from its cgroup).
  waitFor(
      [&] {
        CliResult ps = ferry({"--json", "ps"});
        if (ps.exit_code != 0) return false;
        json list = json::parse(ps.out);
        return list.size() == 1 && list[0]["host"] == "hostA" &&
               list[0]["memory_bytes"].get<uint64_t>() > 0;
      },
      seconds(20), "ps to show demo on hostA with its memory");

  // history shows both, newest first.
  CliResult h = ferry({"history", "--json"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  json hist = json::parse(h.out);
  ASSERT_EQ(hist.size(), 2u);
  EXPECT_EQ(hist[0]["source"], "hostB");
  EXPECT_EQ(hist[1]["source"], "hostA");
  EXPECT_EQ(hist[0]["outcome"], "committed");
  // The same record as migrate --json printed, read back from the store.
  EXPECT_EQ(hist[0]["compression"], "none (the target, " + host("hostA").address +
                                        ", is an address of this machine: no wire to save, and "
                                        "compressing would only add downtime)");
  EXPECT_GT(hist[1]["bytes_wire"].get<uint64_t>(), 0u);
  EXPECT_FALSE(hist[1]["phase_ms"].empty());

  // Each host dumped once and restored once, and said both ended well: the
  // logs of successes are the ones the retention may remove.
  for (const char* h : {"hostA", "hostB"}) {
    for (const char* kind : {"demo-checkpoint-", "demo-restore-"}) {
      auto logs = criuLogs(host(h).root, kind);
      ASSERT_EQ(logs.size(), 1u) << h << " " << kind;
      EXPECT_TRUE(logs[0].second) << h << ": " << logs[0].first << " not marked done";
    }
  }
}

TEST_F(ClusterMigration, BadMigrateRequestsAreRefusedAndChangeNothing) {
  runDemo("hostA");
  // Exit 2: the command line is wrong, nothing was asked of the cluster.
  // Exit 1: the coordinator refused the migration.
  struct Case {
    std::vector<std::string> args;
    int exit_code;
    std::string says;
  };
  std::vector<Case> cases = {
      {{"migrate", "nosuch", "hostA", "hostB"}, 1, "no container 'nosuch'"},
      {{"migrate", "demo", "hostB", "hostA"}, 1, "not on hostB but on hostA"},
      {{"migrate", "demo", "hostA", "hostZ"}, 1, "unknown target host 'hostZ'"},
      {{"migrate", "demo", "hostA", "hostA"}, 1, "same host"},
      // The coordinator knows which checks there are (compat/), not the CLI.
      {{"migrate", "demo", "hostA", "hostB", "--ignore", "nosuchcheck"}, 1, "nosuchcheck"},
      {{"migrate", "demo", "hostA"}, 2, "migrate needs N SRC DST"},
      {{"migrate", "demo", "hostA", "hostB", "hostC"}, 2, "hostC"},
      {{"migrate", "demo", "hostA", "hostB", "--nosuch"}, 2, "--nosuch"},
      {{"migrate", "demo", "hostA", "hostB", "--precopy", "3x"},
       2,
       "--precopy takes auto, off or a number of rounds"},
  };
  for (const auto& c : cases) {
    CliResult r = ferry(c.args);
    std::string cmd;
    for (const auto& a : c.args) cmd += " " + a;
    EXPECT_EQ(r.exit_code, c.exit_code) << "ferry" << cmd << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << "ferry" << cmd << "\nstderr: " << r.err;
  }

  // A target that already has a container of that name: one made there
  // behind the coordinator's back, with the engine on hostB's own root (the
  // CLI refuses a second name in the cluster, so this is how it happens).
  ContainerSpec other = counterSpec("demo", "otherdata");
  engine("hostB").run(other);
  waitFor(
      [&] {
        CliResult ps = ferry({"--json", "ps", "--host", "hostB"});
        return ps.exit_code == 0 && ps.out.find("\"demo\"") != std::string::npos;
      },
      seconds(20), "the coordinator to see hostB's own demo");
  CliResult taken = ferry({"migrate", "demo", "hostA", "hostB"});
  EXPECT_EQ(taken.exit_code, 1) << taken.err;
  EXPECT_NE(taken.err.find("hostB already has a container named demo; remove it there first"),
            std::string::npos)
      << taken.err;
  auto theirs = on("hostB", "demo");
  ASSERT_TRUE(theirs);
  EXPECT_EQ(theirs->status, ContainerStatus::kRunning) << "hostB's own demo was touched";
  EXPECT_TRUE(engine("hostB").volumes().exists("otherdata"));
  engine("hostB").remove("demo", true);
  engine("hostB").removeVolume("otherdata");

  // A target that is down.
  kill(host("hostB").pid, SIGTERM);
  waitFor(
      [&] {
        CliResult hs = ferry({"--json", "hosts"});
        return hs.exit_code == 0 && json::parse(hs.out)[1]["up"] == false;
      },
      seconds(20), "hostB to be marked down");
  CliResult down = ferry({"migrate", "demo", "hostA", "hostB"});
  EXPECT_EQ(down.exit_code, 1);
  EXPECT_NE(down.err.find("hostB is down"), std::string::npos) << down.err;

  // Nothing changed: still running on hostA, counting, and no migration recorded.
  auto c = on("hostA", "demo");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, ContainerStatus::kRunning);
  expectUnbroken(counterValues(engine("hostA"), "demo"));
  CliResult h = ferry({"history", "--json"});
  EXPECT_EQ(json::parse(h.out).size(), 0u);
}

// The target's agent SIGKILLed while bytes flow: during the frozen transfer
// (the source resumes at once: the stream broke before its end) or during
// pre-copy (the source never froze).
class TargetKilled : public ClusterMigration, public ::testing::WithParamInterface<const char*> {};

TEST_P(TargetKilled, LeavesTheSourceRunningAndNothingOnTheTarget) {
  const std::string phase = GetParam();
  runDemo("hostA", {"--mem-mib", "768"});
  // The CLI's progress is what tells the test that bytes are flowing.
  bool killed = false;
  try {
    migrateDemoWatching(
        seconds(60),
        [&](proto::Progress::Reader p) {
          if (!killed && std::string(p.getPhase().cStr()) == phase &&
              p.getBytesDone() > (16u << 20)) {
            ::kill(host("hostB").pid, SIGKILL);
            killed = true;
          }
        },
        phase == "precopy" ? 3 : 0);
    FAIL() << "the migration succeeded although its target was killed";
  } catch (const Error& e) {
    EXPECT_TRUE(killed) << "the " << phase << " ended before the target could be killed: " << e.what();
    EXPECT_NE(std::string(e.what()).find("runs on hostA again"), std::string::npos) << e.what();
  }
  // Still running on the source, its counter unbroken.
  expectCountingOn("hostA", "demo");

  // The target agent restarts: nothing of demo is left there.
  extra_agents_.push_back(startAgent("hostB", {}));
  waitFor(
      [&] {
        return !on("hostB", "demo") && !engine("hostB").volumes().exists("data") &&
               (!pathExists(fs::path(host("hostB").root) / "staging") ||
                fs::is_empty(fs::path(host("hostB").root) / "staging"));
      },
      seconds(20), "hostB to hold nothing of demo");
  EXPECT_FALSE(runcHasContainers(engine("hostB").config()));
  EXPECT_FALSE(anyMountBelow(fs::path(host("hostB").root) / "containers"));
  CliResult h = ferry({"history", "--json"});
  EXPECT_EQ(json::parse(h.out)[0]["outcome"], "rolled-back");
}

INSTANTIATE_TEST_SUITE_P(Migration, TargetKilled, ::testing::Values("transfer", "precopy"),
                         [](const auto& info) { return std::string(info.param); });

// Fault: the target dies after the last byte, before its verdict, so
// whether it restored demo is unknown. Promise: demo stays frozen on the
// source (never two copies), `ferry pending` says what waits for what, and
// on the operator's word (the target is gone) it runs on from where it
// froze; the target still discards its copy once it is back.
TEST_F(ClusterMigration, ASourceFrozenForALostTargetResumesOnTheOperatorsWord) {
  runDemo("hostA", {"--mem-mib", "256"});
  bool killed = false;
  try {
    migrateDemoWatching(seconds(60), [&](proto::Progress::Reader p) {
      if (!killed && std::string(p.getPhase().cStr()) == "restore") {
        ::kill(host("hostB").pid, SIGKILL);
        killed = true;
      }
    });
    FAIL() << "the migration succeeded although its target was killed before its verdict";
  } catch (const Error& e) {
    ASSERT_TRUE(killed) << e.what();
    EXPECT_NE(std::string(e.what()).find("stays frozen on hostA until hostB is back"), std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("--target-lost"), std::string::npos) << e.what();
  }
  EXPECT_EQ(on("hostA", "demo")->status, ContainerStatus::kPaused);
  unsigned long frozen_at = counterValues(engine("hostA"), "demo").back();

  auto pending = [&] {
    CliResult r = ferry({"--json", "pending"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    return json::parse(r.out);
  };
  json owed = pending();
  ASSERT_EQ(owed.size(), 2u) << owed.dump();
  std::string id = std::to_string(owed[0]["migration"].get<uint64_t>());
  std::map<std::string, std::string> by_host;
  for (const auto& o : owed) by_host[o["host"]] = o["action"];
  EXPECT_EQ(by_host["hostA"], "resume-after-discard");
  EXPECT_EQ(by_host["hostB"], "discard");

  // Not without the operator saying the target is lost; not a wrong id.
  CliResult no = ferry({"resume-source", id});
  EXPECT_EQ(no.exit_code, 2);
  EXPECT_NE(no.err.find("--target-lost"), std::string::npos) << no.err;
  CliResult wrong = ferry({"resume-source", "999", "--target-lost"});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_EQ(on("hostA", "demo")->status, ContainerStatus::kPaused);

  // Once the coordinator sees hostB down, the override resumes demo.
  waitForHostDown("hostB");
  CliResult yes = ferry({"resume-source", id, "--target-lost"});
  ASSERT_EQ(yes.exit_code, 0) << yes.err;
  EXPECT_EQ(on("hostA", "demo")->status, ContainerStatus::kRunning);
  waitFor([&] { return counterValues(engine("hostA"), "demo").back() > frozen_at + 3; }, seconds(20),
          "demo to count on on hostA");
  std::vector<unsigned long> v = counterValues(engine("hostA"), "demo");
  expectUnbroken(v);
  owed = pending();
  ASSERT_EQ(owed.size(), 1u) << owed.dump();
  EXPECT_EQ(owed[0]["host"], "hostB");

  // hostB is back: whatever it restored is discarded; one copy runs.
  extra_agents_.push_back(startAgent("hostB", {}));
  waitFor([&] { return pending().empty() && !on("hostB", "demo"); }, seconds(30),
          "hostB to discard its copy");
  EXPECT_EQ(runningCopies(), 1);
  EXPECT_FALSE(runcHasContainers(engine("hostB").config()));
}

TEST_F(ClusterMigration, RestoreFailingOnTheTargetShowsItsErrorAndLeavesTheSourceRunning) {
  // A fault we cannot cause otherwise on a healthy machine: hostB's CRIU
  // fails every restore, as a corrupted image would make it. A wrapper says
  // so and exits 1 when runc starts it as a worker (`criu swrk`, how runc
  // runs every restore -- hostB only restores here); `--version` and
  // `check` go to the real CRIU, so hostB still registers as compatible.
  fs::path wrapper = writeBrokenCriu();
  ::kill(host("hostB").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostB").pid); }, seconds(20), "hostB's agent to stop");
  extra_agents_.push_back(startAgent("hostB", {"--criu", wrapper.string()}));
  runDemo("hostA");

  CliResult r = ferry({"migrate", "demo", "hostA", "hostB"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("hostB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("restor"), std::string::npos)
      << "the target's error is not shown: " << r.err;
  EXPECT_NE(r.err.find("runs on hostA again"), std::string::npos) << r.err;

  expectCountingOn("hostA", "demo");
  EXPECT_FALSE(on("hostB", "demo"));
  EXPECT_FALSE(runcHasContainers(engine("hostB").config()));
  EXPECT_FALSE(engine("hostB").volumes().exists("data"));
  // The page server ended well and says so; the restore did not, and a
  // log it left would stay unmarked: kept before any success's. (Here runc
  // fails before CRIU writes one.)
  auto served = criuLogs(host("hostB").root, "demo-page-server-");
  ASSERT_EQ(served.size(), 1u);
  EXPECT_TRUE(served[0].second) << served[0].first;
  for (const auto& [f, done] : criuLogs(host("hostB").root, "demo-restore-")) {
    EXPECT_FALSE(done) << f << " marked done after a failed restore";
  }
}

// Fault: hostB's CRIU reports an older version (a wrapper that says 3.0 to
// --version and runs the real one otherwise: a host we cannot have here).
// Promise: the migration is refused at plan time, changing nothing; with
// --ignore criu-version the operator's override reaches the target's own
// check before its restore, and the container moves.
TEST_F(ClusterMigration, IgnoreOverridesARefusalAllTheWayThroughTheTargetsRestore) {
  fs::path wrapper = fs::path(dir_) / "old-criu";
  writeFileAtomic(wrapper,
                  "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'Version: 3.0'; exit 0; fi\nexec " +
                      defaultCriuPath() + " \"$@\"\n",
                  0755);
  ::kill(host("hostB").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostB").pid); }, seconds(20), "hostB's agent to stop");
  extra_agents_.push_back(startAgent("hostB", {"--criu", wrapper.string()}));
  waitFor(
      [&] {
        CliResult h = ferry({"--json", "hosts"});
        if (h.exit_code != 0) return false;
        for (const json& x : json::parse(h.out)) {
          if (x["name"] == "hostB" && x["up"] == true && x.dump().find("\"3.0\"") != std::string::npos) {
            return true;
          }
        }
        return false;
      },
      seconds(20), "hostB to report CRIU 3.0");
  runDemo("hostA");

  CliResult refused = ferry({"migrate", "demo", "hostA", "hostB"});
  EXPECT_EQ(refused.exit_code, 1) << refused.err;
  EXPECT_NE(refused.err.find("criu-version"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find("CRIU 3.0"), std::string::npos) << refused.err;
  auto c = on("hostA", "demo");
  ASSERT_TRUE(c) << "a refused migration moved or removed demo";
  EXPECT_EQ(c->status, ContainerStatus::kRunning);
  EXPECT_FALSE(on("hostB", "demo"));

  CliResult moved = ferry({"--json", "migrate", "demo", "hostA", "hostB", "--ignore", "criu-version"});
  ASSERT_EQ(moved.exit_code, 0) << moved.err;
  EXPECT_EQ(json::parse(moved.out)["outcome"], "committed") << moved.out;
  auto there = on("hostB", "demo");
  ASSERT_TRUE(there);
  EXPECT_EQ(there->status, ContainerStatus::kRunning);
  EXPECT_FALSE(on("hostA", "demo"));
  size_t n = counterValues(engine("hostB"), "demo").size();
  waitFor([&] { return counterValues(engine("hostB"), "demo").size() > n + 3; }, seconds(20),
          "demo to count on hostB");
  expectUnbroken(counterValues(engine("hostB"), "demo"));
}

// The coordinator killed at a chosen phase of a migration (by the progress
// event it sends, never by a sleep), then restarted on the same state: the
// one right outcome for that phase, with exactly one copy counting on.
class CoordinatorKilled : public ClusterMigration {
 protected:
  // Starts `demo`'s migration hostA -> hostB and kills the coordinator when
  // it reports `phase` (with bytes moving, for "transfer").
  void killAt(const std::string& phase) {
    runDemo("hostA", {"--mem-mib", "768"});
    ASSERT_TRUE(killCoordinatorDuring(
        [](proto::Message::Builder m) {
          auto mg = m.initMigrate();
          mg.setContainer("demo");
          mg.setSource("hostA");
          mg.setTarget("hostB");
          mg.setPrecopy(0);
        },
        [phase](proto::Progress::Reader p) {
          return std::string(p.getPhase().cStr()) == phase &&
                 (phase != "transfer" || p.getBytesDone() > 0);
        }))
        << "the migration never reported phase " << phase;
  }

  // After the restart: history resolves to `outcome`, and demo runs on
  // `where` only, its counter unbroken.
  void expectResolvedTo(const std::string& outcome, const std::string& where) {
    restartCoordinator();
    waitFor(
        [&] {
          CliResult h = ferry({"history", "--json"});
          if (h.exit_code != 0) return false;  // the new coordinator is still starting
          json hist = json::parse(h.out);
          return hist.size() == 1 && hist[0]["outcome"].get<std::string>().rfind("in progress", 0) != 0;
        },
        seconds(60), "the restarted coordinator to resolve the migration");
    CliResult h = ferry({"history", "--json"});
    ASSERT_EQ(h.exit_code, 0) << h.err;
    EXPECT_EQ(json::parse(h.out)[0]["outcome"], outcome) << h.out;
    std::string other = where == "hostA" ? "hostB" : "hostA";
    waitFor(
        [&] {
          auto here = on(where, "demo");
          return here && here->status == ContainerStatus::kRunning && !on(other, "demo");
        },
        seconds(30), "demo running on " + where + " only");
    size_t n = counterValues(engine(where), "demo").size();
    waitFor([&] { return counterValues(engine(where), "demo").size() > n + 3; }, seconds(20),
            "demo to count on " + where);
    expectUnbroken(counterValues(engine(where), "demo"));
  }
};

// Killed while the checkpoint streams: the agents finish what they were
// told (the target restores, the source waits frozen for a verdict), but no
// verdict was persisted, so the restarted coordinator rolls back: the source
// resumes, the target's copy is discarded.
TEST_F(CoordinatorKilled, DuringTheTransfer_RollsBackToTheSource) {
  killAt("transfer");
  waitFor(
      [&] {
        auto source = on("hostA", "demo");
        return on("hostB", "demo") && source && source->status == ContainerStatus::kPaused;
      },
      seconds(60), "the target to restore demo while the source waits frozen");
  expectResolvedTo("rolled-back", "hostA");
}

// Killed once the target's copy was recorded running (commit under way): the
// restarted coordinator carries on to commit from there.
TEST_F(CoordinatorKilled, AfterTheRestoreWasRecorded_CarriesOnToCommit) {
  killAt("commit");
  expectResolvedTo("committed", "hostB");
}

TEST_F(ClusterMigration, CheckpointExportAndRestoreImportGoBetweenTheCliAndTheAgents) {
  runDemo("hostA");
  fs::path file = fs::path(dir_) / "demo.ferry";
  // An unwritable destination fails before anything happens to demo.
  CliResult bad = ferry({"checkpoint", "demo", "--export", "/nonexistent-dir/demo.ferry"});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("/nonexistent-dir/demo.ferry"), std::string::npos) << bad.err;
  ASSERT_TRUE(on("hostA", "demo"));
  EXPECT_EQ(on("hostA", "demo")->status, ContainerStatus::kRunning);
  CliResult none = ferry({"checkpoint", "nosuch", "--export", file.string()});
  EXPECT_EQ(none.exit_code, 1);
  EXPECT_NE(none.err.find("no container 'nosuch'"), std::string::npos) << none.err;
  EXPECT_FALSE(pathExists(file));

  CliResult ck = ferry({"--json", "checkpoint", "demo", "--export", file.string()});
  ASSERT_EQ(ck.exit_code, 0) << ck.err;
  EXPECT_GT(json::parse(ck.out)["bytes_wire"].get<uint64_t>(), 0u);
  EXPECT_TRUE(pathExists(file));
  EXPECT_FALSE(pathExists(file.string() + ".partial"));
  EXPECT_FALSE(on("hostA", "demo")) << "without --leave-running the container leaves its host";

  // A truncated bundle is refused, nothing left on the host.
  fs::path cut = fs::path(dir_) / "cut.ferry";
  std::string bytes = readFile(file);
  writeFileAtomic(cut, bytes.substr(0, bytes.size() / 2), 0600);
  CliResult trunc = ferry({"restore", "--import", cut.string(), "--host", "hostB"});
  EXPECT_EQ(trunc.exit_code, 1);
  EXPECT_NE(trunc.err.find("hostB"), std::string::npos) << trunc.err;
  EXPECT_FALSE(on("hostB", "demo"));

  CliResult rs = ferry({"restore", "--import", file.string(), "--host", "hostB", "--name", "copy"});
  ASSERT_EQ(rs.exit_code, 0) << rs.err;
  auto c = on("hostB", "copy");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, ContainerStatus::kRunning);
  // Its log came in the bundle and goes on: a counter that started over
  // would show a gap (back to 1).
  size_t carried = counterValues(engine("hostB"), "copy").size();
  EXPECT_GT(carried, 5u) << "the log did not come with the bundle";
  waitFor([&] { return counterValues(engine("hostB"), "copy").size() >= carried + 3; }, seconds(20),
          "copy to count");
  std::vector<unsigned long> v = counterValues(engine("hostB"), "copy");
  expectUnbroken(v);
  // The volume came along and went on being written.
  EXPECT_GE(volumeCounter(engine("hostB")), v[carried - 1]);
}

TEST(FerryCli, KeysAreGeneratedOnceAndUsageErrorsExit2) {
  LocalCommandRunner r;
  fs::path dir = fs::path("/var/tmp") / ("ferry-test-keys-" + std::to_string(::getpid()));
  removeTree(dir);
  ProcessResult gen =
      r.run({FERRY_BIN, "keys", "generate", dir.string(), "--hosts", "hostA,hostB"}, {});
  ASSERT_TRUE(gen.ok()) << gen.err;
  for (const char* n : {"coordinator", "hostA", "hostB", "client"}) {
    struct stat st {};
    ASSERT_EQ(::stat((dir / (std::string(n) + ".key")).c_str(), &st), 0) << n;
    EXPECT_EQ(st.st_mode & 0077, 0u) << n << ".key is readable by others";
    EXPECT_TRUE(pathExists(dir / (std::string(n) + ".pub"))) << n;
  }
  std::string before = readFile(dir / "hostA.key");
  ProcessResult again = r.run({FERRY_BIN, "keys", "generate", dir.string()}, {});
  EXPECT_EQ(again.exit_code, 1);
  EXPECT_NE(again.err.find("never overwritten"), std::string::npos) << again.err;
  EXPECT_EQ(readFile(dir / "hostA.key"), before);

  // A host joins later: `keys add` makes its pair and keeps the others, and
  // says which; run again, it adds nothing (what Ansible runs every time).
  ProcessResult add = r.run(
      {FERRY_BIN, "--json", "keys", "add", dir.string(), "--hosts", "hostA,hostC", "--clients",
       "client-ops"},
      {});
  ASSERT_TRUE(add.ok()) << add.err;
  json added = json::parse(add.out);
  ASSERT_EQ(added["added"].size(), 2u) << add.out;
  EXPECT_EQ(added["added"][0]["name"], "hostC");
  EXPECT_EQ(added["added"][1]["name"], "client-ops");
  EXPECT_EQ(added["kept"], json::array({"hostA"}));
  EXPECT_EQ(readFile(dir / "hostA.key"), before);
  struct stat st {};
  ASSERT_EQ(::stat((dir / "hostC.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0077, 0u);
  ProcessResult twice =
      r.run({FERRY_BIN, "--json", "keys", "add", dir.string(), "--hosts", "hostA,hostC"}, {});
  ASSERT_TRUE(twice.ok()) << twice.err;
  EXPECT_TRUE(json::parse(twice.out)["added"].empty()) << twice.out;
  ProcessResult client_as_host =
      r.run({FERRY_BIN, "keys", "add", dir.string(), "--hosts", "client-x"}, {});
  EXPECT_EQ(client_as_host.exit_code, 1);
  // Half a pair is refused before anything is written.
  fs::remove(dir / "hostC.pub");
  ProcessResult half =
      r.run({FERRY_BIN, "keys", "add", dir.string(), "--hosts", "hostD,hostC"}, {});
  EXPECT_EQ(half.exit_code, 1);
  EXPECT_NE(half.err.find("half a key pair for hostC"), std::string::npos) << half.err;
  EXPECT_FALSE(pathExists(dir / "hostD.key"));
  removeTree(dir);
  ProcessResult no_cluster = r.run({FERRY_BIN, "keys", "add", dir.string(), "--hosts", "hostC"}, {});
  EXPECT_EQ(no_cluster.exit_code, 1);
  EXPECT_NE(no_cluster.err.find("ferry keys generate"), std::string::npos) << no_cluster.err;
  EXPECT_FALSE(pathExists(dir));

  EXPECT_EQ(r.run({FERRY_BIN, "--help"}, {}).exit_code, 0);
  ProcessResult unknown = r.run({FERRY_BIN, "frobnicate"}, {});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("unknown command 'frobnicate'"), std::string::npos) << unknown.err;
  for (const char* bad : {"0x3", "21", "-1", "sometimes"}) {
    ProcessResult p = r.run({FERRY_BIN, "migrate", "c", "hostA", "hostB", "--precopy", bad}, {});
    EXPECT_EQ(p.exit_code, 2) << bad;
    EXPECT_NE(p.err.find("--precopy takes auto, off or a number of rounds"), std::string::npos)
        << p.err;
  }
  for (std::vector<std::string> bad :
       {std::vector<std::string>{"drain"}, {"drain", "hostA", "--parallel", "0"},
        {"drain", "hostA", "--deadline", "5x"}, {"drain", "hostA", "hostB"},
        {"rebalance", "--high", "120"}, {"rebalance", "--max-moves", "-1"}, {"cordon"}}) {
    bad.insert(bad.begin(), FERRY_BIN);
    ProcessResult p = r.run(bad, {});
    EXPECT_EQ(p.exit_code, 2) << bad[1] << " " << (bad.size() > 2 ? bad[2] : "") << ": " << p.err;
  }
  // No coordinator there: a clear error and exit 1, not a hang.
  ProcessResult nobody =
      r.run({FERRY_BIN, "--coordinator", "tcp://127.0.0.1:7399", "--timeout", "1", "hosts"}, {});
  EXPECT_EQ(nobody.exit_code, 1);
  EXPECT_NE(nobody.err.find("is it running?"), std::string::npos) << nobody.err;
}

// CurveZMQ end to end: keys from `ferry keys generate`, a cluster that uses
// them everywhere, a migration whose stream is encrypted to the target's
// key, and a client without keys that gets nothing.
TEST(ClusterWithKeys, MigratesOverCurveAndIgnoresClientsWithoutKeys) {
  FERRY_REQUIRE_PREREQUISITES();
  LocalCommandRunner r;
  fs::path dir = fs::path("/var/tmp") / ("ferry-test-curve-" + std::to_string(::getpid()));
  removeTree(dir);
  ASSERT_TRUE(
      r.run({FERRY_BIN, "keys", "generate", (dir / "keys").string(), "--hosts", "hostA,hostB"}, {})
          .ok());
  cluster::ClusterOptions o;
  o.dir = dir / "cluster";
  o.port = 7394;
  o.heartbeat = milliseconds(200);
  o.bin_dir = fs::path(FERRY_AGENT_BIN).parent_path();
  o.keys_dir = dir / "keys";
  cluster::ClusterState s = cluster::up(o);
  struct Down {
    fs::path dir, all;
    ~Down() {
      bestEffort("taking the test cluster down", [&] { cluster::down(dir); });
      bestEffort("removing the test dir", [&] { removeTree(all); });
    }
  } down{o.dir, dir};
  auto ferry = [&](std::vector<std::string> args, bool keys = true) {
    std::vector<std::string> argv = {FERRY_BIN, "--coordinator", s.coordinator_endpoint};
    if (keys) argv.insert(argv.end(), {"--keys", (dir / "keys").string()});
    argv.insert(argv.end(), args.begin(), args.end());
    return r.run(argv, {});
  };
  ProcessResult imp = ferry({"image", "import", "counter", FERRY_TEST_IMAGE, "--all"});
  ASSERT_TRUE(imp.ok()) << imp.err;
  ProcessResult run =
      ferry({"run", "--host", "hostA", "--name", "sealed", "counter", "/usr/local/bin/counter"});
  ASSERT_TRUE(run.ok()) << run.err;
  waitFor(
      [&] {
        ProcessResult h = ferry({"--json", "hosts"});
        if (!h.ok()) return false;
        json hosts = json::parse(h.out);
        return hosts.size() == 2 && hosts[1]["images"].size() == 1 && hosts[0]["containers"] == 1 &&
               hosts[0]["memory_used_bytes"].get<uint64_t>() > 0;
      },
      seconds(20), "the hosts to report the image, the container and their load");
  ProcessResult mig = ferry({"--json", "migrate", "sealed", "hostA", "hostB"});
  ASSERT_TRUE(mig.ok()) << mig.err;
  EXPECT_EQ(json::parse(mig.out)["outcome"], "committed");

  ProcessResult plain = ferry({"--timeout", "2", "hosts"}, /*keys=*/false);
  EXPECT_EQ(plain.exit_code, 1);
  EXPECT_NE(plain.err.find("--keys DIR"), std::string::npos) << plain.err;
}

// `ferry logs -f NAME`, its stdout and stderr to `out`.
Child followLogs(const std::string& coordinator, const std::string& name, const fs::path& out) {
  return spawnChild({FERRY_BIN, "--coordinator", coordinator, "logs", "-f", name}, out.string());
}

TEST_F(ClusterMigration, LogsFollowAContainerAcrossAMigrationUntilItIsGone) {
  // Right after `ferry run` the coordinator knows the container (no wait
  // for a heartbeat), so following starts at once.
  CliResult r = ferry({"run", "--host", "hostA", "--name", "demo", "counter",
                       "/usr/local/bin/counter", "--interval-ms", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::path out = fs::path(dir_) / "follow.out";
  Child follow = followLogs(state_.coordinator_endpoint, "demo", out);
  waitFor([&] { return readFile(out).find("counter 5\n") != std::string::npos; }, seconds(20),
          "logs -f to show the counter");
  CliResult m = ferry({"migrate", "demo", "hostA", "hostB"});
  ASSERT_EQ(m.exit_code, 0) << m.err;
  waitFor([&] { return !counterValues(engine("hostB"), "demo").empty(); }, seconds(20),
          "demo on hostB");
  unsigned long on_b = counterValues(engine("hostB"), "demo").back() + 3;  // printed on hostB
  waitFor(
      [&] {
        return readFile(out).find("counter " + std::to_string(on_b) + "\n") != std::string::npos;
      },
      seconds(20), "logs -f to follow demo to hostB");
  ASSERT_EQ(ferry({"rm", "-f", "demo"}).exit_code, 0);
  int status = follow.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "logs -f did not end cleanly: " << status;
  // In order across both hosts: every value once, none missed (hostA's
  // log came along with the checkpoint), never a reset.
  std::vector<unsigned long> seen;
  std::istringstream lines(readFile(out));
  for (std::string l; std::getline(lines, l);) {
    if (l.rfind("counter ", 0) == 0) seen.push_back(std::stoul(l.substr(8)));
  }
  ASSERT_FALSE(seen.empty());
  expectUnbroken(seen);
  EXPECT_GE(seen.back(), on_b);
}

TEST_F(ClusterMigration, LogsFollowShowsEveryLineOnceInOrderAndEndsWhenTheContainerStops) {
  // Fast enough that polls land mid-stream and often find a line half
  // written, which must wait for the next poll rather than show twice.
  CliResult r = ferry({"run", "--host", "hostA", "--name", "demo", "counter",
                       "/usr/local/bin/counter", "--interval-ms", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  fs::path out = fs::path(dir_) / "follow.out";
  Child follow = followLogs(state_.coordinator_endpoint, "demo", out);
  waitFor([&] { return readFile(out).find("counter 1000\n") != std::string::npos; }, seconds(30),
          "logs -f to show counter 1000");
  ASSERT_EQ(ferry({"stop", "demo"}).exit_code, 0);
  // Not interrupted, not removed: it ends by itself once the container has
  // exited and all it printed is shown.
  std::optional<int> ended;
  waitFor([&] { return (ended = follow.poll()).has_value(); }, seconds(20),
          "logs -f to end by itself once demo stopped");
  int status = *ended;
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
      << "logs -f did not end cleanly: " << status;
  std::string followed = readFile(out);
  std::vector<std::string> lines;
  std::istringstream in(followed);
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  ASSERT_GE(lines.size(), 1001u) << followed;
  // Its very last line too, printed as it exited.
  std::vector<unsigned long> seen;
  for (size_t i = 0; i + 1 < lines.size(); ++i) {
    ASSERT_EQ(lines[i].rfind("counter ", 0), 0u) << "not a line the counter printed: " << lines[i];
    seen.push_back(std::stoul(lines[i].substr(8)));
  }
  EXPECT_EQ(seen.front(), 1u);
  expectUnbroken(seen);
  EXPECT_EQ(lines.back(), "stopping at " + std::to_string(seen.back()));
  // Everything the container printed, up to its last line.
  CliResult all = ferry({"logs", "demo"});
  ASSERT_EQ(all.exit_code, 0) << all.err;
  EXPECT_EQ(followed, all.out);
}

TEST_F(ClusterMigration, AnImageTheTargetLacksIsSentFirst) {
  std::string id = engine("hostA").images().resolve("counter").id;
  engine("hostB").images().remove("counter");
  waitFor([&] { return !imagesOn("hostB"); }, seconds(20),
          "the coordinator to see hostB without images");
  runDemo("hostA");
  CliResult r = ferry({"--json", "migrate", "demo", "hostA", "hostB"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  json f = json::parse(r.out);
  bool image_phase = false;
  for (const auto& p : f["phase_ms"]) image_phase = image_phase || p["phase"] == "image";
  EXPECT_TRUE(image_phase) << f.dump();
  // The same image (same id) is there now, and demo runs on it.
  auto img = engine("hostB").images().find("counter");
  ASSERT_TRUE(img);
  EXPECT_EQ(img->id, id);
  auto c = on("hostB", "demo");
  ASSERT_TRUE(c);
  EXPECT_EQ(c->status, ContainerStatus::kRunning);
  size_t carried = counterValues(engine("hostB"), "demo").size();
  waitFor([&] { return counterValues(engine("hostB"), "demo").size() >= carried + 3; }, seconds(20),
          "demo to count on hostB");
  expectUnbroken(counterValues(engine("hostB"), "demo"));  // went on, never started over
}

// An image the target lacks is sent from the file it was imported from; one
// imported from a directory has no such file, so the migration is refused
// before anything freezes, with the import to run on the target.
TEST_F(ClusterMigration, AnImageImportedFromADirectoryIsRefusedWithTheImportToRun) {
  // The counter image as an OCI layout directory, imported on hostA only
  // with the engine on hostA's root (what `ferry-engine image import` on
  // hostA does: the cluster's CLI sends files, never directories).
  fs::path layout = fs::path(dir_) / "counter-layout";
  OciLayoutWriter oci(layout);
  json layer = oci.blob(readFile(FERRY_TEST_IMAGE), "application/vnd.oci.image.layer.v1.tar+zstd");
  oci.index({oci.manifest(oci.config(json::object()), {layer})});
  ImageRecord img = engine("hostA").importImage("dircounter", layout);
  ASSERT_FALSE(engine("hostA").imageSourceFile(img.id)) << "kept a file to send after all";
  waitFor(
      [&] {
        return ferry({"image", "ls"}).out.find("dircounter") != std::string::npos;
      },
      seconds(20), "the coordinator to see dircounter on hostA");
  CliResult run = ferry({"run", "--host", "hostA", "--name", "demo", "dircounter",
                         "/usr/local/bin/counter", "--interval-ms", "50"});
  ASSERT_EQ(run.exit_code, 0) << run.err;
  waitFor([&] { return counterValues(engine("hostA"), "demo").size() >= 5; }, seconds(20),
          "demo to count");

  CliResult r = ferry({"migrate", "demo", "hostA", "hostB"});
  EXPECT_EQ(r.exit_code, 1) << r.out;
  EXPECT_NE(r.err.find("image dircounter was imported on hostA from a directory, so it cannot be "
                       "sent"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("ferry image import dircounter FILE --host hostB)"), std::string::npos) << r.err;
  // Nothing changed: demo counts on, unbroken, on hostA; hostB has neither
  // demo nor the image.
  expectCountingOn("hostA", "demo");
  EXPECT_FALSE(on("hostB", "demo"));
  EXPECT_FALSE(engine("hostB").images().find("dircounter"));
}

// --- pre-copy ------------------------------------------------------------------


// The writes count of the last "verify ok N" line (0 when none).
unsigned long long lastVerified(Engine& e, const std::string& name) {
  auto lines = workloadLines(e, name, "verify ok ");
  return lines.empty() ? 0 : std::stoull(lines.back().substr(10));
}

// A file the shell loop appended to holds exactly 1..N, nothing torn.
void expectSequence(const fs::path& file) {
  std::istringstream in(readFile(file));
  std::string line;
  unsigned long want = 1;
  while (std::getline(in, line)) {
    ASSERT_EQ(line, std::to_string(want)) << file << " line " << want;
    ++want;
  }
  EXPECT_GT(want, 10u) << file << " barely grew";
}

class PrecopyMigration : public ClusterMigration {
 protected:
  // The memory workload (tools/bench/workload.c) verifying its own memory
  // every 250 ms, beside a shell loop appending a sequence (1, 2, 3, ...) to a
  // file in its rootfs and one in its volume every 20 ms, so pre-copy reads
  // memory and files while they change. Static random files in both must
  // arrive byte for byte.
  // `big_bytes`: the size of the random file in its rootfs.
  void runWorkload(const std::string& h, int mem_mib, int dirty_mib_s,
                   int big_bytes = 3'000'000) {
    CliResult r = ferry(
        {"run", "--host", h, "--name", "mem", "-v", "memvol:/data", "counter", "/bin/sh", "-c",
         "head -c " + std::to_string(big_bytes) + " /dev/urandom > /opt/app/big && rm /opt/app/b && "
         "head -c 2000000 /dev/urandom > /data/blob || exit 1; "
         // Not `&&` up to the loop's `&`: that put the whole list in the
         // background, and the workload could verify (and the test read
         // the blob) before the files were written.
         "(i=0; while :; do i=$((i+1)); echo $i >> /opt/seq; echo $i >> /data/seq; "
         "usleep 20000; done) & "
         "exec /usr/local/bin/bench-workload --mem-mib " + std::to_string(mem_mib) +
             " --dirty-mib-s " + std::to_string(dirty_mib_s) + " --verify-every-ms 250"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    waitFor([&] { return lastVerified(engine(h), "mem") > 0; }, seconds(30),
            "the workload to verify its memory");
  }

  fs::path rootfsOf(const std::string& h) {
    return fs::path(host(h).root) / "containers" / "mem" / "rootfs";
  }

  // Migrates mem with `precopy`, then proves its state survived exactly.
  json migrateAndCheck(const std::string& src, const std::string& dst, const std::string& precopy) {
    std::string big = sha256Hex(readFile(rootfsOf(src) / "opt/app/big"));
    std::string blob = sha256Hex(readFile(engine(src).volumes().path("memvol") / "blob"));
    unsigned long long verified_before = lastVerified(engine(src), "mem");
    CliResult r = ferry({"--json", "migrate", "mem", src, dst, "--precopy", precopy});
    EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
    if (r.exit_code != 0) return json::object();
    json f = json::parse(r.out);
    EXPECT_EQ(f["outcome"], "committed");
    EXPECT_FALSE(on(src, "mem")) << "a copy remained on " << src;
    EXPECT_FALSE(engine(src).volumes().exists("memvol"));

    // Memory: the workload checks every word after the restore, and its
    // count of writes goes on from where it was.
    waitFor([&] { return workloadLines(engine(dst), "mem", "verify ").size() >= 2; }, seconds(30),
            "the workload to verify its memory on " + dst);
    EXPECT_TRUE(workloadLines(engine(dst), "mem", "verify FAIL").empty())
        << workloadLines(engine(dst), "mem", "verify FAIL").front();
    EXPECT_GE(lastVerified(engine(dst), "mem"), verified_before);
    // Files: the static ones byte for byte; the growing ones whole, 1..N,
    // and still growing.
    EXPECT_EQ(sha256Hex(readFile(rootfsOf(dst) / "opt/app/big")), big);
    EXPECT_FALSE(pathExists(rootfsOf(dst) / "opt/app/b"));
    fs::path vol = engine(dst).volumes().path("memvol");
    EXPECT_EQ(sha256Hex(readFile(vol / "blob")), blob);
    expectSequence(rootfsOf(dst) / "opt/seq");
    expectSequence(vol / "seq");
    size_t lines = readFile(vol / "seq").size();
    waitFor([&] { return readFile(vol / "seq").size() > lines; }, seconds(10),
            "the sequence to grow on " + dst);
    return f;
  }
};

TEST_F(PrecopyMigration, PrecopiedMigrationCarriesMemoryRootfsAndVolumesExactly) {
  runWorkload("hostA", 64, 2);
  json f = migrateAndCheck("hostA", "hostB", "3");
  ASSERT_TRUE(f.contains("precopy_rounds")) << f.dump();
  const json& rounds = f["precopy_rounds"];
  ASSERT_GE(rounds.size(), 1u) << f.dump();
  ASSERT_LE(rounds.size(), 3u) << f.dump();
  // Round 1 read all the memory while the container ran.
  EXPECT_GE(rounds[0]["read_bytes"].get<uint64_t>(), uint64_t{64} << 20);
  EXPECT_GE(rounds[0]["sent_bytes"].get<uint64_t>(), uint64_t{60} << 20);
  // At a low dirty rate the frozen part carries a small fraction, the rest
  // rebuilt on the target from what it kept.
  EXPECT_LT(f["final_bytes_wire"].get<uint64_t>() * 4, f["bytes_wire"].get<uint64_t>()) << f.dump();
  EXPECT_GT(f["bytes_referenced"].get<uint64_t>(), uint64_t{50} << 20);
  bool phase = false;
  for (const auto& p : f["phase_ms"]) phase = phase || p["phase"] == "precopy";
  EXPECT_TRUE(phase) << f.dump();

  // And back with auto, which does not pre-copy over loopback and says so:
  // the cold path still carries it all.
  json back = migrateAndCheck("hostB", "hostA", "auto");
  EXPECT_TRUE(back["precopy_rounds"].empty());
  EXPECT_NE(back["precopy"].get<std::string>().find("loopback"), std::string::npos) << back.dump();
  EXPECT_EQ(back["final_bytes_wire"], back["bytes_wire"]);
  EXPECT_EQ(back["bytes_referenced"], 0);
  // Both ways the memory crossed as CRIU dumped it (the "pages" stream:
  // relayed on the source, written by the target's page server), and the
  // workload's memory checked out exact on arrival (migrateAndCheck).
  for (const char* h : {"hostA", "hostB"}) {
    std::string log = readFile(fs::path(dir_) / "logs" / (std::string(h) + ".log"));
    EXPECT_NE(log.find("streamed as CRIU dumped them"), std::string::npos) << h;
    EXPECT_NE(log.find("written by CRIU's page server"), std::string::npos) << h;
  }
}

// Auto weighs all that would cross while frozen: 4 MiB of memory beside a
// 48 MB file in the rootfs is pre-copied, over loopback too, and the frozen
// part carries what changed.
TEST_F(PrecopyMigration, AutoPrecopiesALargeRootfsDiffBesideLittleMemory) {
  runWorkload("hostA", 4, 1, 48'000'000);
  json f = migrateAndCheck("hostA", "hostB", "auto");
  ASSERT_TRUE(f.contains("precopy_rounds")) << f.dump();
  ASSERT_GE(f["precopy_rounds"].size(), 1u) << f.dump();
  EXPECT_EQ(f["precopy"].get<std::string>().find("off"), std::string::npos) << f.dump();
  EXPECT_GT(f["bytes_referenced"].get<uint64_t>(), uint64_t{40'000'000}) << f.dump();
  EXPECT_LT(f["final_bytes_wire"].get<uint64_t>(), uint64_t{16} << 20) << f.dump();
}

// Which of pre-copy's stop rules (agent/transfer.h; their thresholds are
// unit-tested in precopy_stop_test) holds after round i of what a migration
// reported: the text its result gives for it, or "" when none does.
std::string stopRuleAfter(const json& rounds, size_t i) {
  uint64_t read = rounds[i]["read_bytes"], sent = rounds[i]["sent_bytes"];
  if (sent <= std::max<uint64_t>(uint64_t{8} << 20, read / 50)) return "within the goal";
  if (i > 0 && sent * 10 > rounds[i - 1]["sent_bytes"].get<uint64_t>() * 8) {
    return "the delta stopped shrinking";
  }
  return "";
}

TEST_F(PrecopyMigration, AWorkloadDirtyingEverythingStillEndsAndMigratesExactly) {
  // Asked to dirty 4 GiB/s over 32 MiB: as fast as this machine can, so
  // rounds hardly shrink. How much each round sends depends on the machine;
  // what must hold anywhere is that the rounds end by the rule that applies
  // to what they measured, and that the container still arrives exactly.
  runWorkload("hostA", 32, 4000);
  json f = migrateAndCheck("hostA", "hostB", "4");
  ASSERT_TRUE(f.contains("precopy_rounds")) << f.dump();
  const json& rounds = f["precopy_rounds"];
  ASSERT_GE(rounds.size(), 1u) << f.dump();
  ASSERT_LE(rounds.size(), 4u) << f.dump();
  // The first round reads all of it and sends all of it (the target has
  // nothing yet): never within the goal, so there is a second round.
  EXPECT_GE(rounds[0]["read_bytes"].get<uint64_t>(), uint64_t{32} << 20) << f.dump();
  EXPECT_GT(rounds[0]["sent_bytes"].get<uint64_t>(), uint64_t{8} << 20) << f.dump();
  EXPECT_GE(rounds.size(), 2u) << f.dump();
  // Every round before the last was one no rule ended...
  for (size_t i = 0; i + 1 < rounds.size(); ++i) {
    EXPECT_EQ(stopRuleAfter(rounds, i), "")
        << "round " << i + 1 << " should have been the last: " << f.dump();
  }
  // ...and the last ended by the rule that held, or by the cap of 4.
  std::string rule = stopRuleAfter(rounds, rounds.size() - 1);
  if (rule.empty()) {
    EXPECT_EQ(rounds.size(), 4u) << f.dump();
    rule = "the round cap of 4 was reached";
  }
  EXPECT_NE(f["precopy"].get<std::string>().find("stopped: " + rule), std::string::npos)
      << "expected: " << rule << "\n"
      << f.dump();
}

// --- drain and rebalance, three real agents ---------------------------------------

// Three hosts offering 1 GiB each to containers (what the planners weigh).
class ThreeHosts : public PrecopyMigration {
 protected:
  int hostCount() const override { return 3; }
  std::vector<std::string> extraAgentArgs() const override {
    return {"--memory-capacity", "1024"};
  }

  // Until the coordinator sees more than `bytes` used by h's containers.
  void waitForLoad(const std::string& h, uint64_t bytes) {
    waitFor(
        [&] {
          CliResult ps = ferry({"--json", "ps", "--host", h});
          uint64_t total = 0;
          for (const auto& c : json::parse(ps.out)) total += c["memory_bytes"].get<uint64_t>();
          return total > bytes;
        },
        seconds(60), "the coordinator to see " + h + "'s load");
  }

  // A plain counter on `h` (demo, from runDemo, is the one with a volume).
  void runCounter(const std::string& h, const std::string& name) {
    CliResult r = ferry({"run", "--host", h, "--name", name, "counter", "/usr/local/bin/counter",
                         "--interval-ms", "50"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    waitFor([&] { return counterValues(engine(h), name).size() >= 3; }, seconds(20),
            name + " to count");
  }

  std::string hostOf(const std::string& name) {
    for (const auto& h : state_.hosts) {
      auto c = on(h.name, name);
      if (c && c->status == ContainerStatus::kRunning) return h.name;
    }
    return "";
  }

  bool cordoned(const std::string& h) {
    CliResult r = ferry({"--json", "hosts"});
    for (const auto& x : json::parse(r.out)) {
      if (x["name"] == h) return x["cordoned"].get<bool>();
    }
    return false;
  }

  // The counter of `name` went on where it runs now, from where it was.
  void expectCounting(const std::string& name, unsigned long last_before) {
    std::string h = hostOf(name);
    ASSERT_FALSE(h.empty()) << name << " runs nowhere";
    // Its log came along: the values after last_before are the new ones,
    // and the whole log has no gap (a reset would restart at 1).
    waitFor([&] { return valuesAfter(counterValues(engine(h), name), last_before).size() >= 3; },
            seconds(20), name + " to count on " + h);
    expectUnbroken(counterValues(engine(h), name));
  }
};

TEST_F(ThreeHosts, DrainMovesEveryContainerOffWithCountersUnbrokenAndTheVolumeIntact) {
  runDemo("hostA");  // with volume "data"
  runCounter("hostA", "c2");
  runCounter("hostA", "c3");
  waitFor([&] { return ferry({"ps", "--host", "hostA"}).out.find("c3") != std::string::npos; },
          seconds(20), "the coordinator to see all three");
  std::map<std::string, unsigned long> before;
  for (const char* n : {"demo", "c2", "c3"}) before[n] = counterValues(engine("hostA"), n).back();

  CliResult r = ferry({"--json", "drain", "hostA", "--parallel", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  json p = json::parse(r.out);
  ASSERT_EQ(p["moves"].size(), 3u) << p.dump();
  std::set<std::string> targets;
  for (const auto& m : p["moves"]) {
    EXPECT_EQ(m["outcome"], "moved") << m.dump();
    EXPECT_NE(m["target"], "hostA");
    EXPECT_GT(m["migration"].get<uint64_t>(), 0u);
    targets.insert(m["target"].get<std::string>());
    EXPECT_EQ(hostOf(m["container"]), m["target"]) << m.dump();
  }
  EXPECT_EQ(targets.size(), 2u) << "not spread over both hosts: " << p.dump();
  // hostA is empty (as runc sees it) and cordoned.
  for (const char* n : {"demo", "c2", "c3"}) EXPECT_FALSE(on("hostA", n)) << n;
  EXPECT_FALSE(runcHasContainers(engine("hostA").config()));
  EXPECT_TRUE(cordoned("hostA"));
  for (const char* n : {"demo", "c2", "c3"}) expectCounting(n, before[n]);
  // The volume came with demo, and is gone from hostA.
  std::string h = hostOf("demo");
  EXPECT_GE(volumeCounter(engine(h)), before["demo"]);
  EXPECT_FALSE(engine("hostA").volumes().exists("data"));

  // A cordoned host takes no migration; uncordoned, it does again.
  CliResult refused = ferry({"migrate", "c2", hostOf("c2"), "hostA"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_NE(refused.err.find("cordoned"), std::string::npos) << refused.err;
  ASSERT_EQ(ferry({"uncordon", "hostA"}).exit_code, 0);
  EXPECT_FALSE(cordoned("hostA"));
}

TEST_F(ThreeHosts, RebalanceReportsItsPlanBeforeTheFirstMoveAndCarriesItOut) {
  // hostB: three 200 MiB workloads, 600 MiB of its 1 GiB (59 %); the others
  // idle. Above 50 %: one of them moves to hostA or hostC.
  for (const char* n : {"m1", "m2", "m3"}) {
    CliResult r = ferry({"run", "--host", "hostB", "--name", n, "counter",
                         "/usr/local/bin/bench-workload", "--mem-mib", "200", "--verify-every-ms",
                         "500"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  waitForLoad("hostB", uint64_t{580} << 20);

  // A dry run plans and changes nothing.
  CliResult dry = ferry({"--json", "rebalance", "--dry-run", "--high", "50", "--low", "30"});
  ASSERT_EQ(dry.exit_code, 0) << dry.err;
  json plan = json::parse(dry.out);
  ASSERT_EQ(plan["moves"].size(), 1u) << plan.dump();
  EXPECT_EQ(hostOf(plan["moves"][0]["container"]), "hostB");

  // The real one, watched: the plan arrives before any migration's progress.
  zmq::context_t ctx;
  proto::RpcClient cli(ctx, state_.coordinator_endpoint);
  std::vector<std::string> seen;
  json planned;
  auto reply = cli.call(
      [](proto::Message::Builder m) {
        auto r = m.initRebalance();
        r.setHighPercent(50);
        r.setLowPercent(30);
      },
      seconds(120),
      [&](proto::Progress::Reader p) {
        seen.push_back(p.getPhase().cStr());
        if (seen.back() == "plan" && p.hasPlan()) {
          for (auto mv : p.getPlan().getMoves()) {
            planned[mv.getContainer().cStr()] = std::string(mv.getTarget().cStr());
          }
        }
      });
  ASSERT_FALSE(seen.empty());
  EXPECT_EQ(seen.front(), "plan") << "the first thing the client heard was not the plan";
  ASSERT_EQ(planned.size(), 1u);
  auto result = reply->root<proto::Message>().getPlacement();
  ASSERT_EQ(result.getMoves().size(), 1u);
  auto mv = result.getMoves()[0];
  EXPECT_EQ(std::string(mv.getOutcome().cStr()), "moved") << mv.getError().cStr();
  std::string moved = mv.getContainer().cStr(), target = mv.getTarget().cStr();
  EXPECT_EQ(planned.value(moved, ""), target) << "carried out other than planned";
  EXPECT_NE(target, "hostB");
  EXPECT_EQ(hostOf(moved), target);
  // Its memory came exactly (the workload verifies every word).
  waitFor([&] { return workloadLines(engine(target), moved, "verify ").size() >= 2; }, seconds(30),
          moved + " to verify its memory on " + target);
  EXPECT_TRUE(workloadLines(engine(target), moved, "verify FAIL").empty());

  // Now nothing is above the mark, and the moved one is in its cool-down.
  CliResult again = ferry({"--json", "rebalance", "--dry-run", "--high", "50", "--low", "30"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(json::parse(again.out)["moves"].empty()) << again.out;
}

// ferry-coordinator --rebalance-every: nobody asks, the load moves anyway,
// once, and then stays (below the mark, and the moved one cools down).
TEST_F(ThreeHosts, ACoordinatorRebalancingEverySecondMovesLoadByItself) {
  for (const char* n : {"r1", "r2"}) {
    CliResult r = ferry({"run", "--host", "hostB", "--name", n, "counter",
                         "/usr/local/bin/bench-workload", "--mem-mib", "150", "--verify-every-ms",
                         "500"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  waitForLoad("hostB", uint64_t{280} << 20);
  // A failing CLI is an error, never an empty history (an assertion that
  // nothing moved would then pass on any failure).
  auto history = [&] {
    CliResult h = ferry({"--json", "history"});
    if (h.exit_code != 0) throw std::runtime_error("ferry history failed: " + h.err);
    return json::parse(h.out);
  };
  ASSERT_TRUE(history().empty());
  // hostB is at about 29 % of 1 GiB; the marks are 25 and 10.
  ::kill(state_.coordinator_pid, SIGTERM);
  waitFor([&] { return !processAlive(state_.coordinator_pid); }, seconds(20), "the coordinator to stop");
  restartCoordinator({"--rebalance-every", "1", "--rebalance-high", "25", "--rebalance-low", "10"});
  waitFor(
      [&] {
        try {
          json h = history();
          return !h.empty() && h[0]["outcome"].get<std::string>().rfind("in progress", 0) != 0;
        } catch (const std::runtime_error&) {
          return false;  // the restarted coordinator is not answering yet
        }
      },
      seconds(90), "the coordinator to rebalance by itself");
  json h = history();
  ASSERT_EQ(h.size(), 1u) << h.dump();
  EXPECT_EQ(h[0]["outcome"], "committed") << h.dump();
  EXPECT_EQ(h[0]["source"], "hostB");
  std::string moved = h[0]["container"], target = h[0]["target"];
  EXPECT_EQ(hostOf(moved), target);
  waitFor([&] { return workloadLines(engine(target), moved, "verify ").size() >= 2; }, seconds(30),
          moved + " to verify its memory on " + target);
  EXPECT_TRUE(workloadLines(engine(target), moved, "verify FAIL").empty());
  fs::path log = fs::path(dir_) / "logs" / "coordinator-restarted.log";
  EXPECT_NE(readFile(log).find("rebalance (periodic): 1 move(s)"), std::string::npos);
  // Then it stays: each period after the move plans again and finds
  // nothing to move (the coordinator logs every period's decision), and
  // after three such periods history still holds the one move.
  const std::string nothing =
      "periodic rebalance: nothing to move (no host is above 25 % memory load";
  auto periods = [&] {
    std::string text = readFile(log);
    size_t n = 0;
    for (size_t at = text.find(nothing); at != std::string::npos; at = text.find(nothing, at + 1))
      ++n;
    return n;
  };
  size_t before = periods();
  waitFor([&] { return periods() >= before + 3; }, seconds(30),
          "three periods after the move that found nothing to move");
  EXPECT_EQ(history().size(), 1u) << history().dump();
}

TEST_F(ThreeHosts, ADrainWhoseTargetFailsLeavesThatContainerRunningOnTheDrainedHost) {
  // hostC's CRIU fails every restore (the fake of the restore-failure test:
  // a fault we cannot cause otherwise).
  fs::path wrapper = writeBrokenCriu();
  ::kill(host("hostC").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostC").pid); }, seconds(20), "hostC's agent to stop");
  extra_agents_.push_back(startAgent("hostC", {"--criu", wrapper.string()}));
  for (const char* n : {"c1", "c2", "c3"}) runCounter("hostA", n);
  waitFor([&] { return ferry({"ps", "--host", "hostA"}).out.find("c3") != std::string::npos; },
          seconds(20), "the coordinator to see all three");

  CliResult r = ferry({"--json", "drain", "hostA"});
  EXPECT_EQ(r.exit_code, 1) << "a drain that left containers behind exited 0: " << r.out;
  json p = json::parse(r.out);
  ASSERT_EQ(p["moves"].size(), 3u) << p.dump();
  int to_c = 0;
  for (const auto& m : p["moves"]) {
    std::string name = m["container"];
    if (m["target"] == "hostC") {
      ++to_c;
      EXPECT_EQ(m["outcome"], "failed") << m.dump();
      EXPECT_FALSE(m["error"].get<std::string>().empty());
      // Still running on hostA, counting on, nothing of it on hostC.
      EXPECT_EQ(hostOf(name), "hostA");
      size_t n = counterValues(engine("hostA"), name).size();
      waitFor([&] { return counterValues(engine("hostA"), name).size() > n + 2; }, seconds(20),
              name + " to go on counting on hostA");
      expectUnbroken(counterValues(engine("hostA"), name));
      EXPECT_FALSE(on("hostC", name));
    } else {
      EXPECT_EQ(m["outcome"], "moved") << m.dump();
      EXPECT_EQ(hostOf(name), m["target"]);
    }
  }
  EXPECT_GE(to_c, 1) << "the plan sent nothing to the failing host: " << p.dump();
  EXPECT_TRUE(cordoned("hostA"));
  EXPECT_FALSE(runcHasContainers(engine("hostC").config()));
}

TEST_F(ThreeHosts, AnAgentStoppedWithDrainOnStopMovesItsContainersOffFirst) {
  ::kill(host("hostA").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostA").pid); }, seconds(20), "hostA's agent to stop");
  extra_agents_.push_back(startAgent("hostA", {"--drain-on-stop", "60"}));
  runCounter("hostA", "c1");
  runCounter("hostA", "c2");
  waitFor([&] { return ferry({"ps", "--host", "hostA"}).out.find("c2") != std::string::npos; },
          seconds(20), "the coordinator to see both");
  unsigned long b1 = counterValues(engine("hostA"), "c1").back();
  unsigned long b2 = counterValues(engine("hostA"), "c2").back();

  // As systemd stops it: SIGTERM, then the agent waits for its drain.
  Child& agent = extra_agents_.back();
  agent.kill(SIGTERM);
  int status = agent.wait();
  EXPECT_EQ(status, 0);
  EXPECT_FALSE(on("hostA", "c1"));
  EXPECT_FALSE(on("hostA", "c2"));
  EXPECT_NE(hostOf("c1"), "");
  EXPECT_NE(hostOf("c2"), "");
  expectCounting("c1", b1);
  expectCounting("c2", b2);
  EXPECT_TRUE(cordoned("hostA"));
}

TEST_F(ThreeHosts, ACoordinatorKilledMidDrainCarriesTheDrainOnAfterItsRestart) {
  for (const char* n : {"c1", "c2", "c3"}) runCounter("hostA", n);
  waitFor([&] { return ferry({"ps", "--host", "hostA"}).out.find("c3") != std::string::npos; },
          seconds(20), "the coordinator to see all three");
  // One at a time; the coordinator dies as soon as the first move is done.
  ASSERT_TRUE(killCoordinatorDuring(
      [](proto::Message::Builder m) {
        auto d = m.initDrain();
        d.setHost("hostA");
        d.setParallel(1);
      },
      [](proto::Progress::Reader p) { return std::string(p.getPhase().cStr()) == "drain"; }));
  size_t left = 0;
  for (const char* n : {"c1", "c2", "c3"}) left += on("hostA", n).has_value();
  EXPECT_GE(left, 1u) << "the drain was over before the coordinator died";
  restartCoordinator();
  // The restarted coordinator plans again for what is left, and moves it.
  waitFor(
      [&] {
        for (const char* n : {"c1", "c2", "c3"}) {
          if (on("hostA", n) || hostOf(n).empty()) return false;
        }
        return true;
      },
      seconds(60), "the drain to be carried on after the restart");
  EXPECT_TRUE(cordoned("hostA"));
  for (const char* n : {"c1", "c2", "c3"}) {
    std::string h = hostOf(n);
    size_t k = counterValues(engine(h), n).size();
    waitFor([&] { return counterValues(engine(h), n).size() > k + 2; }, seconds(20),
            std::string(n) + " to count on " + h);
    expectUnbroken(counterValues(engine(h), n));
  }
}

TEST_F(ThreeHosts, AHostConditionTheAgentWatchesTriggersADrain) {
  runCounter("hostA", "c1");
  runCounter("hostA", "c2");
  waitFor([&] { return ferry({"ps", "--host", "hostA"}).out.find("c2") != std::string::npos; },
          seconds(20), "the coordinator to see both");
  unsigned long b1 = counterValues(engine("hostA"), "c1").back();
  // "Less than 100 % free" always holds: the condition is met from the first
  // heartbeat (memory pressure cannot be caused at will; the disk check runs
  // the same path).
  ::kill(host("hostA").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostA").pid); }, seconds(20), "hostA's agent to stop");
  extra_agents_.push_back(startAgent("hostA", {"--drain-on-disk-free", "100"}));
  waitFor([&] { return !on("hostA", "c1") && !on("hostA", "c2"); }, seconds(60),
          "the condition's drain to empty hostA");
  EXPECT_TRUE(cordoned("hostA"));
  expectCounting("c1", b1);
  EXPECT_NE(hostOf("c2"), "");
  std::string log = readFile(fs::path(dir_) / "logs" / "hostA-restarted.log");
  EXPECT_NE(log.find("free, below 100"), std::string::npos) << log;
}

// drain --deadline: no move starts after it. Two containers, one move at
// a time; the first move's restore is held (writeHeldCriu) until the
// deadline has passed, so the second cannot start: the drain says so,
// exits 1, and the second runs on where it was.
TEST_F(ClusterMigration, ADrainPastItsDeadlineStartsNoMoreMovesAndSaysWhatItLeft) {
  fs::path entered = fs::path(dir_) / "restore-entered",
           release = fs::path(dir_) / "restore-release";
  fs::path criu = writeHeldCriu(entered, release);
  ::kill(host("hostB").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostB").pid); }, seconds(20), "hostB's agent to stop");
  extra_agents_.push_back(startAgent("hostB", {"--criu", criu.string()}));
  for (const char* n : {"d1", "d2"}) {
    CliResult r = ferry({"run", "--host", "hostA", "--name", n, "counter", "/usr/local/bin/counter",
                         "--interval-ms", "50"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
  }
  waitFor(
      [&] {
        CliResult ps = ferry({"--json", "ps", "--host", "hostA"});
        return ps.exit_code == 0 && json::parse(ps.out).size() == 2;
      },
      seconds(20), "the coordinator to see d1 and d2 on hostA");

  constexpr auto kDeadline = seconds(3);
  CliResult drained;
  std::thread drain([&] {
    drained = ferry({"--json", "drain", "hostA", "--parallel", "1", "--deadline", "3s"});
  });
  // Whatever happens below, the restore is let go and the drain waited for.
  struct Release {
    std::thread& drain;
    fs::path file;
    ~Release() {
      if (!drain.joinable()) return;
      bestEffort("releasing the held restore", [&] { writeFileAtomic(file, ""); });
      drain.join();
    }
  } release_at_end{drain, release};
  // The coordinator received the drain before the first move's restore
  // began, so the deadline has passed once kDeadline has gone by since.
  waitFor([&] { return pathExists(entered); }, seconds(60), "the first move's restore on hostB");
  auto restoring = std::chrono::steady_clock::now();
  waitFor([&] { return std::chrono::steady_clock::now() > restoring + kDeadline; }, kDeadline * 2,
          "the drain's deadline to pass");
  writeFileAtomic(release, "");
  drain.join();

  EXPECT_EQ(drained.exit_code, 1) << "a drain that left a container behind exited 0: "
                                  << drained.out << drained.err;
  json p = json::parse(drained.out);
  ASSERT_EQ(p["moves"].size(), 2u) << p.dump();
  const json& first = p["moves"][0];
  const json& second = p["moves"][1];
  EXPECT_EQ(first["outcome"], "moved") << p.dump();
  EXPECT_EQ(second["outcome"], "not started") << p.dump();
  EXPECT_EQ(second["error"], "the deadline passed before it could start") << p.dump();
  std::string moved = first["container"], left = second["container"];
  EXPECT_TRUE(on("hostB", moved));
  // What it did not move runs on, on hostA, its counter unbroken; nothing of
  // it is on hostB, and no migration of it was tried.
  expectCountingOn("hostA", left);
  EXPECT_FALSE(on("hostB", left));
  CliResult h = ferry({"--json", "history"});
  ASSERT_EQ(h.exit_code, 0) << h.err;
  json hist = json::parse(h.out);
  ASSERT_EQ(hist.size(), 1u) << hist.dump();
  EXPECT_EQ(hist[0]["container"], moved);
}

}  // namespace
}  // namespace ferry::testing
