#include "engine/runtime/runtime.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

// What runc 1.1.5 prints for `runc --root R list --format json` (one line;
// split here for reading).
const char* kTwoContainers =
    R"([{"ociVersion":"1.0.2-dev","id":"web","pid":4242,"status":"running",)"
    R"("bundle":"/var/lib/ferry/hostA/containers/web","rootfs":"/var/lib/ferry/hostA/containers/web/rootfs",)"
    R"("created":"2024-05-02T10:11:12.131415161Z","annotations":{"io.container.manager":"ferry"},"owner":"root"},)"
    R"({"ociVersion":"1.0.2-dev","id":"db","pid":0,"status":"stopped",)"
    R"("bundle":"/var/lib/ferry/hostA/containers/db","rootfs":"/var/lib/ferry/hostA/containers/db/rootfs",)"
    R"("created":"2024-05-02T10:11:13.000000000Z","owner":"root"}])"
    "\n";

TEST(RuncList, ParsesEveryContainer) {
  auto states = parseRuncList(kTwoContainers);
  ASSERT_EQ(states.size(), 2u);
  const RuncState& web = states.at("web");
  EXPECT_EQ(web.id, "web");
  EXPECT_EQ(web.pid, 4242);
  EXPECT_EQ(web.status, "running");
  EXPECT_EQ(web.bundle, "/var/lib/ferry/hostA/containers/web");
  EXPECT_EQ(states.at("db").status, "stopped");
  EXPECT_EQ(states.at("db").pid, 0);
}

TEST(RuncList, NoContainersIsNull) {
  // runc encodes its empty list as JSON null, not [].
  EXPECT_TRUE(parseRuncList("null\n").empty());
  EXPECT_TRUE(parseRuncList("[]").empty());
}

TEST(RuncList, UnreadableOutputIsAnError) {
  for (const char* bad : {"", "{\"id\":\"web\"}", "[{\"pid\":1}]",
                          "[{\"id\":1,\"status\":\"running\"}]", "[\"web\"]", "not json"}) {
    try {
      parseRuncList(bad);
      ADD_FAILURE() << "accepted: " << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
      EXPECT_NE(std::string(e.what()).find("runc list: unreadable output"), std::string::npos)
          << e.what();
    }
  }
}

// runc 1.1 reads its root and then stats each entry, so a container
// deleted in between fails the whole listing. The window is microseconds
// wide and cannot be hit at will, hence this scripted runner (a fake for a
// fault we cannot cause otherwise); the wording is runc 1.1.5's.
class ScriptedRunner : public CommandRunner {
 public:
  explicit ScriptedRunner(std::vector<ProcessResult> script) : script_(std::move(script)) {}
  ProcessResult run(const std::vector<std::string>& argv, const RunOptions&) override {
    EXPECT_NE(std::find(argv.begin(), argv.end(), "list"), argv.end());
    if (calls_ >= script_.size()) ADD_FAILURE() << "ran runc more often than scripted";
    return script_.at(std::min(calls_++, script_.size() - 1));
  }
  size_t calls() const { return calls_; }

 private:
  std::vector<ProcessResult> script_;
  size_t calls_ = 0;
};

ProcessResult failedWith(const std::string& err) {
  ProcessResult r;
  r.exit_code = 1;
  r.err = err;
  return r;
}

ProcessResult listed(const std::string& out) {
  ProcessResult r;
  r.exit_code = 0;
  r.out = out;
  return r;
}

EngineConfig runcAt(const fs::path& run_dir) {
  EngineConfig cfg;
  cfg.run_dir = run_dir;
  return cfg;
}

std::string vanished(const EngineConfig& cfg, const std::string& id) {
  return "time=\"2026-12-05T09:45:12Z\" level=error msg=\"stat " + (runcRoot(cfg) / id).string() +
         ": no such file or directory\"\n";
}

TEST(RuncList, AContainerDeletedWhileListingIsListedAgain) {
  EngineConfig cfg = runcAt("/run/ferry/hostA");
  ScriptedRunner runner({failedWith(vanished(cfg, "c2")), failedWith(vanished(cfg, "c3")),
                         listed(kTwoContainers)});
  Runtime runtime(cfg, runner);
  auto states = runtime.list();
  EXPECT_EQ(runner.calls(), 3u);
  EXPECT_EQ(states.size(), 2u);
  EXPECT_EQ(states.at("web").pid, 4242);
}

TEST(RuncList, OtherFailuresAndEndlessRacesAreErrors) {
  EngineConfig cfg = runcAt("/run/ferry/hostA");
  {
    // Not a vanished entry of this root: no second try.
    ScriptedRunner runner({failedWith("open /run/ferry/hostA/runc: permission denied\n")});
    Runtime runtime(cfg, runner);
    try {
      runtime.list();
      ADD_FAILURE() << "a failed listing was taken as empty";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("runc list failed (exit code 1): open"),
                std::string::npos)
          << e.what();
    }
    EXPECT_EQ(runner.calls(), 1u);
  }
  {
    // Another root's entry is not this race either.
    ScriptedRunner runner({failedWith(vanished(runcAt("/run/ferry/hostB"), "c2"))});
    Runtime runtime(cfg, runner);
    EXPECT_THROW(runtime.list(), Error);
    EXPECT_EQ(runner.calls(), 1u);
  }
  {
    ScriptedRunner runner(std::vector<ProcessResult>(5, failedWith(vanished(cfg, "c2"))));
    Runtime runtime(cfg, runner);
    try {
      runtime.list();
      ADD_FAILURE() << "gave a listing after five failures";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("no such file or directory"), std::string::npos)
          << e.what();
    }
    EXPECT_EQ(runner.calls(), 5u);
  }
}

TEST(ConmonPidFd, HoldsTheMonitorOfThatContainerOnly) {
  TempDir t;
  // A stand-in with conmon's arguments that takes its sleep along on SIGTERM.
  // The trap comes after the sleep started and exits itself: a SIGTERM
  // before it kills the shell by default, one after it never finds $!
  // unset (which left the shell waiting out the sleep on a loaded machine).
  Child monitor = spawnChild(
      {"sh", "-c", "sleep 30 & trap 'kill $!; exit 0' TERM; wait", "-c", "web"}, "/dev/null");
  // conmon writes its pid file itself, once running. posix_spawn returns
  // as soon as the exec has replaced the memory, a moment before the kernel
  // fills in the new program's arguments: wait for them as conmon's file
  // would have.
  fs::path cmdline = "/proc/" + std::to_string(monitor.pid()) + "/cmdline";
  for (int i = 0; i < 5000 && readFile(cmdline).empty(); ++i) ::usleep(1000);
  fs::path pid_file = t.path() / "conmon.pid";
  std::ofstream(pid_file) << monitor.pid();
  PidFd fd = conmonPidFd(pid_file, "web");
  ASSERT_TRUE(fd.valid());
  EXPECT_FALSE(fd.exited());
  EXPECT_FALSE(conmonPidFd(pid_file, "db").valid()) << "another container's monitor";
  monitor.kill(SIGTERM);
  EXPECT_TRUE(fd.waitExit(std::chrono::seconds(10)));
}

TEST(ConmonPidFd, AGoneOrMissingMonitorIsEmpty) {
  TempDir t;
  EXPECT_FALSE(conmonPidFd(t.path() / "none.pid", "web").valid());
  Child gone = spawnChild({"true"});
  pid_t pid = gone.pid();
  gone.wait();
  std::ofstream(t.path() / "conmon.pid") << pid;
  EXPECT_FALSE(conmonPidFd(t.path() / "conmon.pid", "web").valid());
}

}  // namespace ferry
