#include "engine/runtime/wait.h"

#include <signal.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include <fstream>
#include <thread>

#include "common/fs.h"
#include "engine/runtime/process.h"

namespace ferry {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// Runs f on another thread after `delay`; joins on destruction.
class Later {
 public:
  template <class F>
  Later(std::chrono::milliseconds delay, F f)
      : t_([delay, f] {
          std::this_thread::sleep_for(delay);
          f();
        }) {}
  ~Later() { t_.join(); }

 private:
  std::thread t_;
};

auto since(Clock::time_point t0) { return Clock::now() - t0; }

}  // namespace

TEST(PidFd, WaitsForAChildToExit) {
  Child c = spawnChild({"sleep", "30"});
  PidFd p = PidFd::open(c.pid());
  ASSERT_TRUE(p.valid());
  EXPECT_FALSE(p.waitExit(50ms)) << "sleep 30 exited at once";
  Later kill(100ms, [&] { p.signal(SIGTERM); });
  auto t0 = Clock::now();
  EXPECT_TRUE(p.waitExit(10s));
  EXPECT_LT(since(t0), 2s) << "the wait did not end when the child did";
  // Exited but not yet reaped: a zombie counts as exited.
  EXPECT_TRUE(p.exited());
  int status = c.wait();
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM) << status;
}

TEST(PidFd, WaitsForAProcessThatIsNotOurChild) {
  // The shell's background sleep is its child, not ours, and outlives it.
  LocalCommandRunner r;
  ProcessResult p = r.run({"sh", "-c", "sleep 0.3 >/dev/null 2>&1 & echo $!"}, {});
  ASSERT_TRUE(p.ok()) << p.err;
  pid_t pid = std::stoi(p.out);
  PidFd fd = PidFd::open(pid);
  ASSERT_TRUE(fd.valid()) << "sleep " << pid << " already gone";
  auto t0 = Clock::now();
  EXPECT_TRUE(fd.waitExit(10s)) << "sleep 0.3 did not end within 10 s";
  EXPECT_LT(since(t0), 5s);
}

TEST(PidFd, AReapedProcessCountsAsExited) {
  Child c = spawnChild({"true"});
  pid_t pid = c.pid();
  c.wait();
  PidFd p = PidFd::open(pid);
  EXPECT_TRUE(p.exited());
  EXPECT_NO_THROW(p.signal(SIGKILL));
  EXPECT_TRUE(PidFd().exited());
}

TEST(PidFd, TimesOutOnARunningProcess) {
  Child c = spawnChild({"sleep", "30"});
  auto t0 = Clock::now();
  EXPECT_FALSE(PidFd::open(c.pid()).waitExit(200ms));
  EXPECT_GE(since(t0), 200ms);
  EXPECT_LT(since(t0), 2s);
}

TEST(WaitForFile, SeesAFileRenamedIntoPlaceByAnotherThread) {
  // conmon writes its exit file this way (g_file_set_contents).
  TempDir t;
  fs::path file = t.path() / "web";
  Later write(100ms, [&] {
    std::ofstream(t.path() / ".web.tmp") << "137";
    fs::rename(t.path() / ".web.tmp", file);
  });
  auto t0 = Clock::now();
  EXPECT_TRUE(waitForFile(file, 10s)) << "no rename seen within 10 s";
  EXPECT_LT(since(t0), 2s);
  EXPECT_EQ(readFile(file), "137");
}

TEST(WaitForFile, WaitsUntilTheContentIsReady) {
  TempDir t;
  fs::path file = t.path() / "exit";
  auto hasCode = [&] {
    int code;
    return static_cast<bool>(std::ifstream(file) >> code);
  };
  Later write(50ms, [&] {
    std::ofstream(file) << "";  // created, closed, empty
    std::this_thread::sleep_for(100ms);
    std::ofstream(file) << "3";
  });
  auto t0 = Clock::now();
  EXPECT_TRUE(waitForFile(file, 10s, hasCode));
  EXPECT_GE(since(t0), 100ms) << "returned on the empty file";
  EXPECT_EQ(readFile(file), "3");
}

TEST(WaitForFile, AFileAlreadyThereNeedsNoWait) {
  TempDir t;
  std::ofstream(t.path() / "done") << "0";
  auto t0 = Clock::now();
  EXPECT_TRUE(waitForFile(t.path() / "done", 10s));
  EXPECT_LT(since(t0), 1s);
}

TEST(WaitForFile, OtherFilesDoNotEndTheWait) {
  TempDir t;
  Later write(20ms, [&] { std::ofstream(t.path() / "other") << "1"; });
  auto t0 = Clock::now();
  EXPECT_FALSE(waitForFile(t.path() / "mine", 300ms));
  EXPECT_GE(since(t0), 300ms);
}

TEST(WaitForFile, AMissingDirectoryIsNotWaitedFor) {
  auto t0 = Clock::now();
  EXPECT_FALSE(waitForFile("/nonexistent/ferry/exit", 10s));
  EXPECT_LT(since(t0), 1s);
}

}  // namespace ferry
