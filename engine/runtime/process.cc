#include "engine/runtime/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <fstream>

#include "common/error.h"

extern char** environ;

namespace ferry {

std::string ProcessResult::describe() const {
  if (timed_out) return "timed out";
  if (signal != 0) return "killed by signal " + std::to_string(signal);
  return "exit code " + std::to_string(exit_code);
}

namespace {

// Builds the child's environment: ours plus overrides.
std::vector<std::string> mergedEnv(const std::vector<std::string>& extra) {
  std::vector<std::string> env;
  for (char** e = environ; *e; ++e) {
    std::string_view kv(*e);
    auto key = kv.substr(0, kv.find('='));
    bool overridden = false;
    for (const auto& x : extra) {
      if (x.compare(0, key.size() + 1, std::string(key) + "=") == 0) overridden = true;
    }
    if (!overridden) env.emplace_back(kv);
  }
  env.insert(env.end(), extra.begin(), extra.end());
  return env;
}

// Runs in the child after fork: only async-signal-safe calls until exec.
[[noreturn]] void execChild(const std::vector<char*>& argv, const std::vector<char*>& envp,
                            int in_fd, int out_fd, int err_fd, const std::vector<int>& keep,
                            int exec_err_fd) {
  ::signal(SIGPIPE, SIG_DFL);
  sigset_t all;
  sigemptyset(&all);
  ::sigprocmask(SIG_SETMASK, &all, nullptr);
  if (in_fd >= 0) ::dup2(in_fd, 0);
  if (out_fd >= 0) ::dup2(out_fd, 1);
  if (err_fd >= 0) ::dup2(err_fd, 2);
  for (int fd : keep) {
    int flags = ::fcntl(fd, F_GETFD);
    if (flags >= 0) ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC);
  }
  ::execvpe(argv[0], argv.data(), envp.data());
  int e = errno;
  if (::write(exec_err_fd, &e, sizeof e) < 0) {
    // Nothing more to say: the parent sees exit 127.
  }
  ::_exit(127);
}

std::vector<char*> cArgs(std::vector<std::string>& v);

// Forks and execs; reports a failed exec as an Error (naming the program)
// through a close-on-exec pipe, so a program's own exit 127 is not mistaken
// for "not installed".
Child forkExec(std::vector<std::string> argv, const std::vector<std::string>& env_extra,
               int in_fd, int out_fd, int err_fd, const std::vector<int>& keep) {
  std::vector<std::string> env = mergedEnv(env_extra);
  auto cargv = cArgs(argv);
  auto cenv = cArgs(env);
  Pipe report = makePipe();
  pid_t pid = ::fork();
  if (pid < 0) throwErrno("fork for " + argv[0]);
  if (pid == 0) execChild(cargv, cenv, in_fd, out_fd, err_fd, keep, report.write.get());
  Child child(pid);
  report.write.reset();
  int e = 0;
  ssize_t n = retryEintr([&] { return ::read(report.read.get(), &e, sizeof e); });
  if (n == sizeof e) {
    child.wait();
    throw Error(ErrorCategory::kPermanent,
                "cannot run '" + argv[0] + "': " + std::strerror(e) +
                    " (tools/install-deps.sh installs ferry's dependencies)");
  }
  return child;
}

std::vector<char*> cArgs(std::vector<std::string>& v) {
  std::vector<char*> out;
  for (auto& s : v) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

void fillStatus(ProcessResult& r, int status) {
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) r.signal = WTERMSIG(status);
}

}  // namespace

ProcessResult LocalCommandRunner::run(const std::vector<std::string>& argv_in,
                                      const RunOptions& opts) {
  if (argv_in.empty()) throw Error(ErrorCategory::kInvalidInput, "empty command");
  const std::vector<std::string>& argv = argv_in;
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

  Child child = forkExec(argv, opts.env, in.read.get(), out_fd, err_fd, opts.inherit_fds);
  in.read.reset();
  out.write.reset();
  err.write.reset();
  file.reset();

  // Feed stdin (small inputs only: the callers pass a few bytes at most).
  if (!opts.stdin_data.empty()) {
    ::signal(SIGPIPE, SIG_IGN);
    try {
      writeAll(in.write.get(), opts.stdin_data, argv[0] + " stdin");
    } catch (const Error&) {
      // The child may exit without reading its input; its status says why.
    }
  }
  in.write.reset();

  ProcessResult r;
  auto deadline = std::chrono::steady_clock::now() + opts.timeout;
  std::vector<std::pair<int, std::string*>> streams;
  if (out.read) streams.emplace_back(out.read.get(), &r.out);
  if (err.read) streams.emplace_back(err.read.get(), &r.err);
  while (!streams.empty()) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    std::vector<pollfd> pfds;
    for (auto& s : streams) pfds.push_back({s.first, POLLIN, 0});
    int n = ::poll(pfds.data(), pfds.size(), static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("poll");
    for (size_t i = pfds.size(); i-- > 0;) {
      if (!pfds[i].revents) continue;
      char buf[16384];
      ssize_t got = retryEintr([&] { return ::read(pfds[i].fd, buf, sizeof buf); });
      if (got <= 0) {
        streams.erase(streams.begin() + static_cast<long>(i));
      } else {
        streams[i].second->append(buf, static_cast<size_t>(got));
      }
    }
  }
  // Output closed (or timed out): wait for exit, still bounded by the deadline.
  for (;;) {
    if (auto st = child.poll()) {
      fillStatus(r, *st);
      break;
    }
    if (r.timed_out || std::chrono::steady_clock::now() >= deadline) {
      r.timed_out = true;
      child.kill(SIGKILL);
      fillStatus(r, child.wait());
      break;
    }
    ::usleep(2000);
  }
  return r;
}

Child::Child(Child&& o) noexcept : pid_(o.pid_) { o.pid_ = -1; }

Child& Child::operator=(Child&& o) noexcept {
  if (this != &o) {
    if (pid_ > 0) {
      kill(SIGKILL);
      wait();
    }
    pid_ = o.pid_;
    o.pid_ = -1;
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
  return r < 0 ? 0 : status;
}

std::optional<int> Child::poll() {
  if (pid_ <= 0) return 0;
  int status = 0;
  pid_t r = retryEintr([&] { return ::waitpid(pid_, &status, WNOHANG); });
  if (r == 0) return std::nullopt;
  pid_ = -1;
  return status;
}

void Child::kill(int sig) {
  if (pid_ > 0) ::kill(pid_, sig);
}

pid_t Child::release() {
  pid_t p = pid_;
  pid_ = -1;
  return p;
}

Child spawnChild(const std::vector<std::string>& argv, const std::string& output_file,
                 const std::vector<std::string>& env_extra) {
  UniqueFd file;
  if (!output_file.empty()) file = openFile(output_file, O_WRONLY | O_CREAT | O_APPEND, 0644);
  UniqueFd devnull = openFile("/dev/null", O_RDONLY);
  int out = file ? file.get() : -1;
  return forkExec(argv, env_extra, devnull.get(), out, out, {});
}

bool processAlive(pid_t pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  auto close = line.rfind(')');
  if (close == std::string::npos || close + 2 >= line.size()) return false;
  char state = line[close + 2];
  return state != 'Z' && state != 'X';
}

}  // namespace ferry
