#include "engine/runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <utility>

#include "common/error.h"

extern char** environ;

namespace ferry {

std::string ProcessResult::describe() const {
  if (timed_out) return "timed out";
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit code " + std::to_string(exit_code);
}

namespace {

using Clock = std::chrono::steady_clock;

// Builds the child's environment: ours plus overrides.
// What systemd gives the daemon itself (systemd.exec(5)), never its
// children: runc acts on NOTIFY_SOCKET (it would wait for the container's
// READY=1), and a child must not pet the daemon's watchdog, take its socket
// activation or think its stderr is the journal's.
bool daemonOnly(std::string_view key) {
  for (std::string_view k : {"NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_PID",
                             "LISTEN_FDS", "LISTEN_FDNAMES", "JOURNAL_STREAM", "INVOCATION_ID"}) {
    if (key == k) return true;
  }
  return false;
}

std::vector<std::string> mergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto key = kv.substr(0, kv.find('='));
    if (daemonOnly(key)) continue;  // `extra` may still set one (socket activation does)
    bool overridden = false;
    for (const auto& x : extra) {
      if (x.compare(0, key.size() + 1, std::string(key) + "=") == 0) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

std::vector<char*> cArgs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void check(int rc, const char* what) {
  if (rc != 0) throwErrno(what, rc);
}

// posix_spawn's two argument objects, destroyed on every path.
struct SpawnArgs {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  SpawnArgs() {
    check(::posix_spawn_file_actions_init(&actions), "posix_spawn_file_actions_init");
    if (int rc = ::posix_spawnattr_init(&attr); rc != 0) {
      ::posix_spawn_file_actions_destroy(&actions);
      throwErrno("posix_spawnattr_init", rc);
    }
  }
  ~SpawnArgs() {
    ::posix_spawnattr_destroy(&attr);
    ::posix_spawn_file_actions_destroy(&actions);
  }
  SpawnArgs(const SpawnArgs&) = delete;
  SpawnArgs& operator=(const SpawnArgs&) = delete;
};

// The child's descriptors: stdio from in/out/err (-1: inherited), `keep`
// under their own numbers, and nothing else. Closing the rest matters in a
// multithreaded daemon: a descriptor another thread opened without O_CLOEXEC
// (an std::ifstream, a log file) would otherwise live on in conmon's monitor.
void planDescriptors(posix_spawn_file_actions_t* a, int in_fd, int out_fd, int err_fd,
                     const std::vector<int>& keep) {
  const int stdio[3] = {in_fd, out_fd, err_fd};
  for (int target = 0; target < 3; ++target) {
    if (stdio[target] >= 0) {
      check(::posix_spawn_file_actions_adddup2(a, stdio[target], target), "posix_spawn dup2");
    }
  }
  // dup2 onto itself clears FD_CLOEXEC in the child only (glibc >= 2.29).
  int top = 2;
  for (int fd : keep) {
    check(::posix_spawn_file_actions_adddup2(a, fd, fd), "posix_spawn keep fd");
    top = std::max(top, fd);
  }
  // Closing a descriptor that is not open is no error for posix_spawn.
  for (int fd = 3; fd < top; ++fd) {
    if (std::find(keep.begin(), keep.end(), fd) == keep.end()) {
      check(::posix_spawn_file_actions_addclose(a, fd), "posix_spawn close");
    }
  }
  check(::posix_spawn_file_actions_addclosefrom_np(a, top + 1), "posix_spawn closefrom");
}

// posix_spawn (a vfork-style clone: safe in a multithreaded process, and it
// reports a failed exec as its result, so a program's own exit 127 is not
// mistaken for "not installed").
Child spawnProcess(std::vector<std::string> argv, const std::vector<std::string>& env_extra,
                   int in_fd, int out_fd, int err_fd, const std::vector<int>& keep) {
  std::vector<std::string> env = mergedEnv(env_extra);
  auto cargv = cArgs(argv);
  auto cenv = cArgs(env);
  SpawnArgs s;
  planDescriptors(&s.actions, in_fd, out_fd, err_fd, keep);
  // A fresh program: no blocked signals, every signal at its default (the
  // daemon ignores SIGPIPE; runc and CRIU expect to die of it).
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  check(::posix_spawnattr_setsigmask(&s.attr, &none), "posix_spawnattr_setsigmask");
  check(::posix_spawnattr_setsigdefault(&s.attr, &all), "posix_spawnattr_setsigdefault");
  check(::posix_spawnattr_setflags(&s.attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF),
        "posix_spawnattr_setflags");
  pid_t pid = -1;
  int rc = ::posix_spawnp(&pid, cargv[0], &s.actions, &s.attr, cargv.data(), cenv.data());
  if (rc != 0) {
    throw Error(ErrorCategory::kPermanent,
                "cannot run '" + argv[0] + "': " + std::strerror(rc) +
                    " (tools/install-deps.sh installs ferry's dependencies)",
                rc);
  }
  try {
    return Child(pid);
  } catch (...) {
    // No pidfd (out of descriptors): the child may not run unwatched.
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    throw;
  }
}

void fillStatus(ProcessResult& r, int status) {
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
}

// Reads what there is into `to`; closes `fd` at EOF (or on an error).
void drainInto(UniqueFd& fd, std::string& to) {
  char buf[16384];
  ssize_t got = retryEintr([&] { return ::read(fd.get(), buf, sizeof buf); });
  if (got <= 0) {
    fd.reset();
  } else {
    to.append(buf, static_cast<size_t>(got));
  }
}

// Writes what the (non-blocking) pipe takes of `left`; closes `fd` when all
// is written or the child will not read the rest.
void feed(UniqueFd& fd, std::string_view& left) {
  ssize_t n = retryEintr([&] { return ::write(fd.get(), left.data(), left.size()); });
  if (n > 0) left.remove_prefix(static_cast<size_t>(n));
  if (left.empty() || (n < 0 && errno != EAGAIN)) fd.reset();
}

// One poll over the child's pidfd, its stdin and its output: feeds the
// input, collects the output, until the output is closed and the child has
// exited. False when the deadline passes first.
bool pumpIo(const Child& child, UniqueFd& in, std::string_view input, UniqueFd& out, UniqueFd& err,
            ProcessResult& r, Clock::time_point deadline) {
  bool exited = false;
  while (!exited || out || err) {
    // Fixed slots; poll ignores negative descriptors.
    pollfd p[4] = {{exited ? -1 : child.pidfd().get(), POLLIN, 0},
                   {in.get(), POLLOUT, 0},
                   {out.get(), POLLIN, 0},
                   {err.get(), POLLIN, 0}};
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    int n = ::poll(p, 4, static_cast<int>(std::min<long>(left, INT32_MAX)));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("poll");
    if (n == 0) return false;
    if (p[0].revents) exited = true;
    if (p[1].revents) feed(in, input);
    if (p[2].revents) drainInto(out, r.out);
    if (p[3].revents) drainInto(err, r.err);
  }
  return true;
}

}  // namespace

ProcessResult LocalCommandRunner::run(const std::vector<std::string>& argv,
                                      const RunOptions& opts) {
  if (argv.empty()) throw Error(ErrorCategory::kInvalidInput, "empty command");
  auto deadline = Clock::now() + opts.timeout;
  Pipe in = makePipe();
  Pipe out, err;
  UniqueFd file;
  if (opts.output_file.empty()) {
    out = makePipe();
    err = makePipe();
  } else {
    file = openFile(opts.output_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  }
  int out_fd = file ? file.get() : out.write.get();
  int err_fd = file ? file.get() : err.write.get();

  Child child = spawnProcess(argv, opts.env, in.read.get(), out_fd, err_fd, opts.inherit_fds);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  file.reset();

  if (opts.stdin_data.empty()) {
    in.write.reset();
  } else {
    // A child that exits without reading its input must not kill us.
    ::signal(SIGPIPE, SIG_IGN);
    ::fcntl(in.write.get(), F_SETFL, O_NONBLOCK);
  }
  ProcessResult r;
  r.timed_out = !pumpIo(child, in.write, opts.stdin_data, out.read, err.read, r, deadline);
  if (r.timed_out) child.kill(SIGKILL);
  fillStatus(r, child.wait());
  return r;
}

Child::Child(pid_t pid) : pid_(pid), pidfd_(PidFd::open(pid)) {}

Child::Child(Child&& o) noexcept : pid_(std::exchange(o.pid_, -1)), pidfd_(std::move(o.pidfd_)) {}

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      kill(SIGKILL);
      wait();
    }
    pid_ = std::exchange(o.pid_, -1);
    pidfd_ = std::move(o.pidfd_);
  }
  return *this;
}

Child::~Child() {
  if (pid_ > 0) {
    kill(SIGKILL);
    wait();
  }
}

int Child::wait() {
  int status = 0;
  if (pid_ <= 0) return 0;
  pid_t r = retryEintr([&] { return ::waitpid(pid_, &status, 0); });
  pid_ = -1;
  pidfd_ = PidFd();
  return r < 0 ? 0 : status;
}

std::optional<int> Child::waitFor(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return 0;
  if (!pidfd_.waitExit(timeout)) return std::nullopt;
  return wait();  // it has exited: reaping does not block
}

void Child::kill(int sig) {
  if (pid_ > 0) pidfd_.signal(sig);
}

pid_t Child::release() {
  pidfd_ = PidFd();
  return std::exchange(pid_, -1);
}

Child spawnChild(const std::vector<std::string>& argv, const std::string& output_file,
                 const std::vector<std::string>& env_extra, const std::vector<int>& inherit_fds) {
  if (argv.empty()) throw Error(ErrorCategory::kInvalidInput, "empty command");
  UniqueFd file;
  if (!output_file.empty()) file = openFile(output_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  UniqueFd devnull = openFile("/dev/null", O_RDONLY);
  int out = file ? file.get() : -1;
  return spawnProcess(argv, env_extra, devnull.get(), out, out, inherit_fds);
}

namespace {

// The state letter of /proc/PID/stat ('R', 'S', 't', 'Z', ...), or 0.
char processState(pid_t pid) {
  if (pid <= 0) return 0;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return 0;
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return 0;
  return line[close + 2];
}

}  // namespace

bool processAlive(pid_t pid) {
  char state = processState(pid);
  return state != 0 && state != 'Z' && state != 'X';
}

bool processTraceStopped(pid_t pid) { return processState(pid) == 't'; }

bool processCgroupFrozen(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream in("/proc/" + std::to_string(pid) + "/cgroup");
  std::string line;
  std::string unified;
  while (std::getline(in, line)) {
    // "ID:CONTROLLERS:PATH"; v1's freezer has its own hierarchy.
    auto a = line.find(':');
    auto b = a == std::string::npos ? a : line.find(':', a + 1);
    if (b == std::string::npos) continue;
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::filesystem::path path = std::filesystem::path(line.substr(b + 1)).relative_path();
    if (controllers.empty()) {
      unified = path.string();
      continue;
    }
    if (("," + controllers + ",").find(",freezer,") == std::string::npos) continue;
    std::ifstream st(std::filesystem::path("/sys/fs/cgroup/freezer") / path / "freezer.state");
    std::string state;
    return static_cast<bool>(st >> state) && (state == "FROZEN" || state == "FREEZING");
  }
  // No v1 freezer: v2's (absent on a v1 host's "0::" line, so false).
  std::ifstream freeze(std::filesystem::path("/sys/fs/cgroup") / unified / "cgroup.freeze");
  int frozen = 0;
  return static_cast<bool>(freeze >> frozen) && frozen == 1;
}

std::vector<pid_t> processDescendants(pid_t pid) {
  std::vector<pid_t> out;
  std::vector<pid_t> todo = {pid};
  while (!todo.empty()) {
    pid_t p = todo.back();
    todo.pop_back();
    std::error_code ec;
    std::filesystem::path tasks = "/proc/" + std::to_string(p) + "/task";
    for (const auto& t : std::filesystem::directory_iterator(tasks, ec)) {
      std::ifstream in(t.path() / "children");
      for (pid_t c; in >> c;) {
        out.push_back(c);
        todo.push_back(c);
      }
    }
  }
  return out;
}

}  // namespace ferry
