#include "engine/runtime/process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

TEST(Process, DescendantsAreChildrenAndTheirChildren) {
  // sh, a subshell with a sleep of its own, and a sleep.
  Child parent = spawnChild({"sh", "-c", "(sleep 30 & wait) & sleep 30 & wait"});
  std::vector<pid_t> seen;
  for (int i = 0; i < 5000 && seen.size() < 3; ++i) {
    seen = processDescendants(parent.pid());
    ::usleep(1000);
  }
  ASSERT_EQ(seen.size(), 3u);
  for (pid_t p : seen) EXPECT_TRUE(processAlive(p)) << p;
  for (pid_t p : seen) ::kill(p, SIGKILL);
  EXPECT_TRUE(parent.waitFor(std::chrono::seconds(10)).has_value())
      << "the shell still waits: a descendant was missed";
  EXPECT_TRUE(processDescendants(999999999).empty());
}

TEST(Process, CapturesOutputAndExitCode) {
  LocalCommandRunner r;
  ProcessResult p = r.run({"sh", "-c", "echo out; echo err >&2; exit 3"}, {});
  EXPECT_EQ(p.out, "out\n");
  EXPECT_EQ(p.err, "err\n");
  EXPECT_EQ(p.exit_code, 3);
  EXPECT_FALSE(p.ok());
  EXPECT_EQ(p.describe(), "exit code 3");
}

TEST(Process, PassesEnvStdinAndInheritedFd) {
  LocalCommandRunner r;
  Pipe pipe = makePipe();
  RunOptions o;
  o.env = {"FERRY_X=42"};
  o.stdin_data = "hello";
  o.inherit_fds = {pipe.write.get()};
  std::string script = "cat; echo $FERRY_X; echo via-fd >&" + std::to_string(pipe.write.get());
  ProcessResult p = r.run({"sh", "-c", script}, o);
  pipe.write.reset();
  EXPECT_TRUE(p.ok()) << p.err;
  EXPECT_EQ(p.out, "hello42\n");
  EXPECT_EQ(readAll(pipe.read.get(), "pipe"), "via-fd\n");
}

// Under systemd the agent's environment holds its own NOTIFY_SOCKET: runc
// given it would wait for a READY=1 from every container it starts.
TEST(Process, WhatSystemdGivesTheDaemonDoesNotReachItsChildren) {
  const char* kDaemonOnly[] = {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID",
                               "LISTEN_FDS", "LISTEN_FDNAMES", "JOURNAL_STREAM", "INVOCATION_ID"};
  for (const char* k : kDaemonOnly) ::setenv(k, "set-by-systemd", 1);
  ::setenv("FERRY_KEPT", "kept", 1);
  LocalCommandRunner r;
  RunOptions o;
  o.env = {"LISTEN_FDS=1"};  // a caller may still pass one on purpose
  ProcessResult p = r.run({"sh", "-c", "env"}, o);
  for (const char* k : kDaemonOnly) ::unsetenv(k);
  ::unsetenv("FERRY_KEPT");
  ASSERT_TRUE(p.ok()) << p.err;
  for (const char* k : kDaemonOnly) {
    EXPECT_EQ(p.out.find(std::string(k) + "=set-by-systemd"), std::string::npos) << k << "\n" << p.out;
  }
  EXPECT_NE(p.out.find("LISTEN_FDS=1\n"), std::string::npos) << p.out;
  EXPECT_NE(p.out.find("FERRY_KEPT=kept"), std::string::npos) << p.out;
}

TEST(Process, TimeoutKillsTheChild) {
  LocalCommandRunner r;
  RunOptions o;
  o.timeout = std::chrono::milliseconds(200);
  auto t0 = std::chrono::steady_clock::now();
  ProcessResult p = r.run({"sleep", "30"}, o);
  EXPECT_TRUE(p.timed_out);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(Process, MissingProgramIsAClearError) {
  LocalCommandRunner r;
  try {
    r.run({"/nonexistent/ferry-tool"}, {});
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cannot run '/nonexistent/ferry-tool'"), std::string::npos);
  }
}

TEST(Process, ChildIsKilledAndReapedOnDestruction) {
  pid_t pid;
  {
    Child c = spawnChild({"sleep", "30"});
    pid = c.pid();
    EXPECT_TRUE(processAlive(pid));
  }
  EXPECT_FALSE(processAlive(pid));
}

TEST(Process, OutputFileReceivesBothStreams) {
  TempDir t;
  LocalCommandRunner r;
  RunOptions o;
  o.output_file = (t.path() / "log").string();
  ProcessResult p = r.run({"sh", "-c", "echo a; echo b >&2"}, o);
  EXPECT_TRUE(p.ok());
  EXPECT_EQ(p.out, "");
  EXPECT_EQ(readFile(t.path() / "log"), "a\nb\n");
}

namespace {

// A descriptor at a chosen number, close-on-exec or not.
UniqueFd fdAt(int number, bool cloexec) {
  UniqueFd devnull = openFile("/dev/null", O_RDONLY);
  int fd = cloexec ? ::dup3(devnull.get(), number, O_CLOEXEC) : ::dup2(devnull.get(), number);
  if (fd != number) throwErrno("dup to " + std::to_string(number));
  return UniqueFd(fd);
}

}  // namespace

TEST(Process, OnlyStdioAndInheritedFdsReachTheChild) {
  // Another thread's std::ifstream has no O_CLOEXEC: it must not leak.
  UniqueFd leaky = fdAt(30, /*cloexec=*/false);
  UniqueFd kept = fdAt(40, /*cloexec=*/true);
  LocalCommandRunner r;
  RunOptions o;
  o.inherit_fds = {40};
  ProcessResult p =
      r.run({"sh", "-c", "for n in 30 40; do [ -e /proc/$$/fd/$n ] && echo $n; done"}, o);
  EXPECT_TRUE(p.ok()) << p.err;
  EXPECT_EQ(p.out, "40\n");
  EXPECT_NE(::fcntl(40, F_GETFD) & FD_CLOEXEC, 0) << "the parent's copy lost O_CLOEXEC";
}

TEST(Process, SignalsTheParentIgnoresAreDefaultInTheChild) {
  // A shell cannot undo a signal ignored on entry: only a reset at spawn lets
  // this one die of SIGUSR1.
  struct sigaction ign = {}, old = {};
  ign.sa_handler = SIG_IGN;
  ::sigaction(SIGUSR1, &ign, &old);
  LocalCommandRunner r;
  ProcessResult p = r.run({"sh", "-c", "kill -USR1 $$; echo survived"}, {});
  ::sigaction(SIGUSR1, &old, nullptr);
  EXPECT_EQ(p.signal, SIGUSR1) << p.describe() << " " << p.out;
}

TEST(Process, LargeInputAndOutputDoNotDeadlock) {
  // More than a pipe holds each way: stdin is fed while output is read.
  std::string input(4 << 20, 'x');
  LocalCommandRunner r;
  RunOptions o;
  o.stdin_data = input;
  o.timeout = std::chrono::seconds(30);
  ProcessResult p = r.run({"cat"}, o);
  EXPECT_TRUE(p.ok()) << p.describe();
  EXPECT_EQ(p.out.size(), input.size());
}

TEST(Process, AChildThatIgnoresItsInputStillFinishes) {
  LocalCommandRunner r;
  RunOptions o;
  o.stdin_data = std::string(1 << 20, 'x');
  ProcessResult p = r.run({"sh", "-c", "exec 0<&-; echo done"}, o);
  EXPECT_TRUE(p.ok()) << p.describe();
  EXPECT_EQ(p.out, "done\n");
}

TEST(Process, AProgramsOwnExit127IsNotMissing) {
  LocalCommandRunner r;
  ProcessResult p = r.run({"sh", "-c", "exit 127"}, {});
  EXPECT_EQ(p.exit_code, 127);
}

TEST(Process, ChildWaitForTimesOutThenSeesTheExit) {
  Child c = spawnChild({"sleep", "30"});
  EXPECT_FALSE(c.waitFor(std::chrono::milliseconds(50)));
  c.kill(SIGTERM);
  auto st = c.waitFor(std::chrono::seconds(10));
  ASSERT_TRUE(st);
  EXPECT_TRUE(WIFSIGNALED(*st) && WTERMSIG(*st) == SIGTERM);
  EXPECT_EQ(c.pid(), -1);
}

}  // namespace ferry
