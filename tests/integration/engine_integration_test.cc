// The engine end to end with real runc, conmon and CRIU: two hosts on this
// machine, each with its own state root, runc root and cgroup parent.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"
#include "engine/runtime/process.h"
#include "engine/runtime/runtime.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;
using EngineIntegration = TwoHostTest;

// The promise of the whole engine: a running container checkpointed on one
// host goes on, on another, from exactly where it stopped.
TEST_F(EngineIntegration, CheckpointOnHostARestoreOnHostBContinuesTheCounter) {
  runCounterOnA("demo", 10);
  ASSERT_EQ(a().inspect("demo").status, ContainerStatus::kRunning);

  CheckpointResult ck = a().checkpoint("demo", checkpointDir("1"), {});
  ASSERT_TRUE(ck.criu) << "CRIU's dump statistics were not kept";
  // Not asked for nftables: CRIU's default lock (iptables), which any
  // host's CRIU lifts, and the checkpoint says so.
  EXPECT_EQ(nlohmann::json::parse(readFile(checkpointDir("1") / "checkpoint.json"))["host"]
                                 ["nftables_lock"],
            false);
  EXPECT_GT(ck.criu->pages_written, 0u);
  EXPECT_GT(ck.memory_bytes, 0u);
  // The dump ended the process: "checkpointed", never "exited (137)".
  ContainerInfo after = a().inspect("demo");
  EXPECT_EQ(after.status, ContainerStatus::kCheckpointed);
  EXPECT_FALSE(after.exit_code);
  std::vector<unsigned long> before = counterValues(a(), "demo");
  unsigned long last = before.back();
  EXPECT_EQ(volumeCounter(a()), last);

  RestoreResult r = b().restore(checkpointDir("1"), {});
  EXPECT_EQ(r.container.status, ContainerStatus::kRunning);
  EXPECT_NE(r.container.record.restored_from.find("hostA:"), std::string::npos);
  waitFor([&] { return valuesAfter(counterValues(b(), "demo"), last).size() >= 5; }, seconds(20),
          "the restored counter to print 5 values on hostB");

  // No reset, no gap: B's log is A's (it came with the checkpoint), and
  // goes on with the value after A's last.
  std::vector<unsigned long> on_b = counterValues(b(), "demo");
  EXPECT_EQ(on_b.front(), before.front()) << "A's output did not come along";
  EXPECT_EQ(valuesAfter(on_b, last).front(), last + 1) << "the counter did not continue where it stopped";
  for (size_t i = 1; i < on_b.size(); ++i) EXPECT_EQ(on_b[i], on_b[i - 1] + 1);
  // The volume came along: the marker is identical, and the counter file goes on.
  EXPECT_EQ(readFile(b().volumes().path("data") / "marker"), "volume content from before the run\n");
  waitFor([&] { return volumeCounter(b()) > last + 1; }, seconds(10), "hostB's volume counter to advance");

  // Stop and delete leave no mount, no runc state, no process.
  pid_t pid = b().inspect("demo").pid;
  ContainerInfo stopped = b().stop("demo", seconds(5));
  EXPECT_EQ(stopped.status, ContainerStatus::kExited);
  ASSERT_TRUE(stopped.exit_code);
  ASSERT_TRUE(stopped.exit_code.has_value()) << "a stopped container records its exit code";
  EXPECT_EQ(*stopped.exit_code, 0) << "the counter exits 0 on SIGTERM";
  b().remove("demo", false);
  a().remove("demo", false);
  EXPECT_FALSE(processAlive(pid));
  EXPECT_FALSE(anyMountBelow(dirs_->state));
  EXPECT_FALSE(runcHasContainers(a().config()));
  EXPECT_FALSE(runcHasContainers(b().config()));
  EXPECT_TRUE(b().list().empty());
  EXPECT_TRUE(a().list().empty());
}

TEST_F(EngineIntegration, LeaveRunningKeepsTheSourceCountingAndTheCopyStartsAtTheDump) {
  runCounterOnA("web", 5);
  // Locked with nftables where this host's CRIU can (it can here): the
  // restore on hostB lifts that lock, and the checkpoint records it.
  a().checkpoint("web", checkpointDir("lr"), {.leave_running = true, .nftables_lock = true});
  EXPECT_EQ(nlohmann::json::parse(readFile(checkpointDir("lr") / "checkpoint.json"))["host"]
                                 ["nftables_lock"],
            a().hostInfo().nftables_lock);
  // Memory, rootfs and volume are one moment (the container was paused):
  // the value in the checkpoint's volume is the one its memory holds.
  unsigned long at_dump = std::stoul(tarMember(checkpointDir("lr") / "volumes/data.tar", "counter"));
  ASSERT_EQ(a().inspect("web").status, ContainerStatus::kRunning);
  unsigned long seen = counterValues(a(), "web").back();
  waitFor([&] { return counterValues(a(), "web").back() > seen + 3; }, seconds(10),
          "the source to keep counting after a leave-running checkpoint");

  b().restore(checkpointDir("lr"), {});
  waitFor([&] { return valuesAfter(counterValues(b(), "web"), at_dump).size() >= 3; }, seconds(20),
          "the copy on hostB to count");
  // Its log is A's up to the dump, then goes on from there.
  std::vector<unsigned long> on_b = counterValues(b(), "web");
  EXPECT_EQ(valuesAfter(on_b, at_dump).front(), at_dump + 1);
  EXPECT_EQ(on_b.front() + (on_b.size() - 1), on_b.back()) << "a gap or a repeat in the copy's log";
  EXPECT_EQ(a().inspect("web").status, ContainerStatus::kRunning);
}

TEST_F(EngineIntegration, KilledIsExited137NotCheckpointed) {
  runCounterOnA("k", 2);
  a().kill("k", SIGKILL);
  waitFor([&] { return a().inspect("k").exit_code.has_value(); }, seconds(10),
          "conmon to record k's exit code");
  ContainerInfo info = a().inspect("k");
  EXPECT_EQ(info.status, ContainerStatus::kExited);
  ASSERT_TRUE(info.exit_code.has_value()) << "a killed container records its exit code";
  EXPECT_EQ(*info.exit_code, 137);
}

// The freezer as the engine reads it (Engine::list calls a container paused
// when runc's look said running but CRIU froze it again since): frozen while
// paused, thawed when resumed, and false for a pid that is gone.
TEST_F(EngineIntegration, TheFreezerIsReadFromTheContainersOwnCgroup) {
  runCounterOnA("f", 2);
  pid_t pid = a().inspect("f").pid;
  ASSERT_GT(pid, 0);
  EXPECT_FALSE(processCgroupFrozen(pid)) << "a running container's freezer reads frozen";
  a().pause("f");
  EXPECT_TRUE(processCgroupFrozen(pid)) << "a paused container's freezer reads thawed";
  EXPECT_EQ(a().inspect("f").status, ContainerStatus::kPaused);
  a().resume("f");
  EXPECT_FALSE(processCgroupFrozen(pid)) << "a resumed container's freezer reads frozen";
  a().kill("f", SIGKILL);
  waitFor([&] { return !processAlive(pid); }, seconds(10), "f's process to end");
  EXPECT_FALSE(processCgroupFrozen(pid));
}

// A separate engine process (the CLI) starts the container; this process,
// with a fresh Engine on the same root, finds it, stops and removes it.
TEST_F(EngineIntegration, AnotherEngineProcessAttachesAndStops) {
  const auto& cfg = a().config();
  LocalCommandRunner r;
  ProcessResult p = r.run({FERRY_ENGINE_BIN, "--host", cfg.host_name, "--root", cfg.root.string(),
                           "--run-dir", cfg.run_dir.string(), "--cgroup-parent",
                           cfg.cgroup_parent, "-q", "run", "--name", "bg", "-v",
                           "data:/data", "counter", "/usr/local/bin/counter", "--file",
                           "/data/counter"},
                          {});
  ASSERT_TRUE(p.ok()) << p.err;
  LocalCommandRunner runner;
  Engine fresh(cfg, runner);
  std::vector<ContainerInfo> all = fresh.list();
  ASSERT_EQ(all.size(), 1u);
  EXPECT_EQ(all[0].name(), "bg");
  EXPECT_EQ(all[0].status, ContainerStatus::kRunning);
  waitFor([&] { return counterValues(fresh, "bg").size() >= 2; }, seconds(10), "bg to count");
  ContainerInfo stopped = fresh.stop("bg", seconds(5));
  EXPECT_EQ(stopped.status, ContainerStatus::kExited);
  EXPECT_FALSE(processAlive(all[0].pid));
  fresh.remove("bg", false);
  EXPECT_FALSE(runcHasContainers(cfg));
}

// One connection to a TCP server on loopback: everything it sends until it
// closes ("" when nobody listens).
std::string readAllFrom(const std::string& ip, int port) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  std::string out;
  char buf[512];
  for (ssize_t n; (n = ::read(fd.get(), buf, sizeof buf)) > 0;) out.append(buf, static_cast<size_t>(n));
  return out;
}

// Socket activation, as libpod: ferry-engine started by a service manager
// with a listening socket (here systemd-socket-activate, which starts it on
// the first connection) hands it to the container as fd 3, with
// LISTEN_PID=1, LISTEN_FDS and LISTEN_FDNAMES. The socket belongs to the
// manager, so a checkpoint is refused, and the container goes on serving.
TEST_F(EngineIntegration, SocketActivationHandsTheListeningSocketToTheContainer) {
  const auto& cfg = a().config();
  const std::string ip = "127.0.0.77";
  const int port = 7811;
  Child activate = spawnChild(
      {findProgram("systemd-socket-activate"), "-l", ip + ":" + std::to_string(port), "--fdname=greet",
       FERRY_ENGINE_BIN, "--host", cfg.host_name, "--root", cfg.root.string(), "--run-dir",
       cfg.run_dir.string(), "--cgroup-parent", cfg.cgroup_parent, "-q", "run", "--name", "greet",
       "counter", "/usr/local/bin/fd-greet"},
      (dirs_->state / "activate.log").string());
  std::string first;
  waitFor([&] { return !(first = readAllFrom(ip, port)).empty(); }, seconds(20),
          "the socket-activated container to answer");
  EXPECT_EQ(first, "greeting 1 from pid 1: LISTEN_PID=1 LISTEN_FDS=1 LISTEN_FDNAMES=greet\n")
      << readFile(dirs_->state / "activate.log");
  // ferry-engine is done; the container serves on, on the same socket.
  int status = activate.wait();
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << readFile(dirs_->state / "activate.log");
  EXPECT_EQ(readAllFrom(ip, port).rfind("greeting 2 from pid 1:", 0), 0u);
  ContainerInfo info = a().inspect("greet");
  EXPECT_EQ(info.record.spec.listen_fds, 1);
  try {
    a().checkpoint("greet", checkpointDir("act"), {});
    FAIL() << "a socket-activated container was checkpointed";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("socket activation"), std::string::npos) << e.what();
  }
  EXPECT_EQ(a().inspect("greet").status, ContainerStatus::kRunning);
  EXPECT_EQ(readAllFrom(ip, port).rfind("greeting 3 from pid 1:", 0), 0u);
  a().remove("greet", true);
}

TEST_F(EngineIntegration, DamagedCheckpointIsRefusedBeforeAnythingIsWritten) {
  runCounterOnA("c", 3);
  fs::path dir = checkpointDir("bad");
  a().checkpoint("c", dir, {});
  writeFileAtomic(dir / "rootfs.tar", "not what the manifest says");
  try {
    b().restore(dir, {});
    FAIL() << "restore of a damaged checkpoint succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("does not match the checkpoint's manifest"), std::string::npos)
        << e.what();
  }
  EXPECT_TRUE(b().list().empty());
  EXPECT_FALSE(b().volumes().exists("data"));
}

// Fault: CRIU images that pass verification (the test reseals the manifest)
// but that CRIU cannot restore. Promise: the error names the operation, the
// container, CRIU's log and its Error lines; nothing stays on hostB.
TEST_F(EngineIntegration, CriuRestoreFailureIsExplainedAndLeavesNothingBehind) {
  runCounterOnA("c", 3);
  fs::path dir = checkpointDir("criu");
  a().checkpoint("c", dir, {});
  bool damaged = false;
  for (const auto& e : fs::directory_iterator(dir / "criu")) {
    if (e.path().filename().string().rfind("core-", 0) == 0) {
      writeFileAtomic(e.path(), std::string(64, '\x5a'));
      damaged = true;
    }
  }
  ASSERT_TRUE(damaged);
  resealManifest(dir);
  try {
    b().restore(dir, {});
    FAIL() << "restore of damaged images succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("restoring c"), std::string::npos) << msg;
    EXPECT_NE(msg.find("on hostB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("restore.log"), std::string::npos) << msg;
    EXPECT_NE(msg.find("Error"), std::string::npos) << "CRIU's Error lines missing: " << msg;
    // The log it points at is still there to read.
    auto at = msg.find("CRIU log ");
    ASSERT_NE(at, std::string::npos) << msg;
    std::string log = msg.substr(at + 9, msg.find(':', at + 9) - at - 9);
    EXPECT_TRUE(pathExists(log)) << log;
  }
  EXPECT_TRUE(b().list().empty());
  EXPECT_FALSE(b().volumes().exists("data")) << "the restore's volume stayed behind";
  EXPECT_FALSE(anyMountBelow(b().config().root));
  EXPECT_FALSE(runcHasContainers(b().config()));
}

// Fault: the checkpoint's disk is full once CRIU's images are written (a
// 1 MiB tmpfs; the container's rootfs holds 4 MiB of changes to copy).
// Promise: the container runs again from its images with its counter
// unbroken, and the checkpoint directory is left empty.
TEST_F(EngineIntegration, FullDiskAfterTheDumpRestoresTheContainerAndLosesNothing) {
  runCounterOnA("full", 3);
  fs::path rootfs = a().config().root / "containers" / "full" / "rootfs";
  writeFileAtomic(rootfs / "big", std::string(4 << 20, 'x'));
  fs::path dir = checkpointDir("full");
  makeDirs(dir);
  ASSERT_EQ(::mount("tmpfs", dir.c_str(), "tmpfs", 0, "size=1m"), 0) << std::strerror(errno);
  unsigned long before = counterValues(a(), "full").back();
  try {
    a().checkpoint("full", dir, {});
    FAIL() << "a checkpoint into a full disk succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("restored from its images and runs again"), std::string::npos) << msg;
    EXPECT_NE(msg.find("No space left on device"), std::string::npos) << msg;
  }
  EXPECT_EQ(a().inspect("full").status, ContainerStatus::kRunning);
  waitFor([&] { return counterValues(a(), "full").back() > before + 3; }, seconds(10),
          "the rolled-back container to count on");
  std::vector<unsigned long> v = counterValues(a(), "full");
  for (size_t i = 1; i < v.size(); ++i) {
    ASSERT_EQ(v[i], v[i - 1] + 1) << "counter broke at index " << i << " across the rollback";
  }
  EXPECT_TRUE(fs::is_empty(dir));
  EXPECT_EQ(readFile(rootfs / "big").size(), size_t{4} << 20) << "rootfs changes lost";
  ::umount2(dir.c_str(), MNT_DETACH);
}

TEST_F(EngineIntegration, ClearErrorsForWhatCannotBeDone) {
  runCounterOnA("e", 1);
  a().stop("e", seconds(5));
  try {
    a().checkpoint("e", checkpointDir("e"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("only a running container can be checkpointed"),
              std::string::npos);
  }
  EXPECT_FALSE(pathExists(checkpointDir("e")));
  try {
    a().run(counterSpec("e", "data"));
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("already exists"), std::string::npos);
  }
  // An image the restoring host lacks is refused before anything is written.
  a().remove("e", false);
  runCounterOnA("img", 1);
  a().checkpoint("img", checkpointDir("img"), {});
  b().images().remove("counter");
  try {
    b().restore(checkpointDir("img"), {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
    EXPECT_NE(std::string(e.what()).find("import image counter"), std::string::npos) << e.what();
  }
  EXPECT_TRUE(b().list().empty());
}

}  // namespace
}  // namespace ferry::testing
