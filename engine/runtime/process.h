// Running external programs (runc, conmon, CRIU, ...). The engine reaches them
// only through CommandRunner, passed in by whoever builds the engine, so a test
// can observe or fault what it needs to without a global.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.h"
#include "engine/runtime/wait.h"

namespace ferry {

struct ProcessResult {
  int exit_code = -1;  // valid when signal == 0
  int signal = 0;      // the signal that ended the process, or 0
  bool timed_out = false;
  std::string out;     // captured stdout (empty when redirected)
  std::string err;     // captured stderr (empty when redirected)

  bool ok() const { return signal == 0 && exit_code == 0 && !timed_out; }
  // "exit code 2" / "killed by signal 9" / "timed out"
  std::string describe() const;
};

struct RunOptions {
  // Extra "KEY=VALUE" entries added to the inherited environment.
  std::vector<std::string> env;
  // Descriptors the child inherits under the same number (their O_CLOEXEC is
  // cleared in the child only). Every other descriptor above stderr is closed
  // in the child, close-on-exec or not.
  std::vector<int> inherit_fds;
  // When set, stdout and stderr go (appended) to this file and are not
  // captured. Needed for programs that daemonize (conmon): a captured pipe
  // would stay open in the daemon and never reach EOF.
  std::string output_file;
  std::string stdin_data;
  // The child is killed (SIGKILL) and reaped when this passes.
  std::chrono::milliseconds timeout{std::chrono::minutes(10)};
};

class CommandRunner {
 public:
  virtual ~CommandRunner() = default;
  // Runs argv[0] (searched in PATH when it has no '/') and waits for it.
  // Blocks until the process exits or the timeout passes. Throws Error only
  // when the program cannot be started (e.g. not installed).
  virtual ProcessResult run(const std::vector<std::string>& argv, const RunOptions& opts) = 0;
};

// The real thing: posix_spawn, and a pidfd to wait on.
class LocalCommandRunner : public CommandRunner {
 public:
  ProcessResult run(const std::vector<std::string>& argv, const RunOptions& opts) override;
};

// A spawned child that is killed (SIGKILL) and reaped on destruction unless
// released or waited for. Used for long-running helpers (tests start daemons
// with it). Holds the child's pidfd, so waits block on it instead of polling.
class Child {
 public:
  Child() = default;
  // Takes an unreaped child of this process (its pid cannot be reused until
  // it is reaped, so the pidfd opened here is surely its).
  explicit Child(pid_t pid);
  Child(Child&& o) noexcept;
  Child& operator=(Child&& o) noexcept;
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  ~Child();

  pid_t pid() const { return pid_; }
  // Readable once the child has exited (poll it with other descriptors).
  const PidFd& pidfd() const { return pidfd_; }
  // Waits for exit; returns the wait status.
  int wait();
  // The wait status if it exits within `timeout` (0: without blocking).
  std::optional<int> waitFor(std::chrono::milliseconds timeout);
  std::optional<int> poll() { return waitFor(std::chrono::milliseconds(0)); }
  void kill(int sig);
  // Gives up the child: it is neither killed nor reaped by this object.
  pid_t release();

 private:
  pid_t pid_ = -1;
  PidFd pidfd_;
};

// Starts argv with stdin from /dev/null and stdout+stderr to `output_file`
// (or inherited when empty), keeping `inherit_fds` under their numbers (as
// RunOptions::inherit_fds). Throws Error naming the program when it cannot
// be started.
Child spawnChild(const std::vector<std::string>& argv, const std::string& output_file = "",
                 const std::vector<std::string>& env = {},
                 const std::vector<int>& inherit_fds = {});

// Whether pid is a live process (not a zombie).
bool processAlive(pid_t pid);
// Whether pid is held in a ptrace stop (CRIU seized it).
bool processTraceStopped(pid_t pid);
// Whether the cgroup freezer of pid's cgroup is frozen or freezing (v1's
// freezer.state, v2's cgroup.freeze), read now; false when it cannot be read.
bool processCgroupFrozen(pid_t pid);
// pid's children, their children and so on (/proc/PID/task/TID/children),
// parents before their children; none for a process that is gone.
std::vector<pid_t> processDescendants(pid_t pid);

}  // namespace ferry
