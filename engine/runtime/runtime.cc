#include "engine/runtime/runtime.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <deque>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

using nlohmann::json;

std::string findProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    if (::access(name.c_str(), X_OK) != 0) {
      throw Error(ErrorCategory::kPermanent,
                  "'" + name + "' is not executable (tools/install-deps.sh installs it)");
    }
    return name;
  }
  const char* path = ::getenv("PATH");
  std::string dirs = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = dirs.find(':', start);
    if (end == std::string::npos) end = dirs.size();
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && ::access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  throw Error(ErrorCategory::kPermanent,
              "'" + name + "' not found in PATH (tools/install-deps.sh installs it)");
}

std::string lastCriuErrors(const fs::path& log, size_t max) {
  std::ifstream in(log);
  std::deque<std::string> last;
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("Error") == std::string::npos) continue;
    // Harmless on hosts without CAP_SYS_RESOURCE; it would hide the real cause.
    if (line.find("Can't setup RLIMIT_NOFILE") != std::string::npos) continue;
    last.push_back(line);
    if (last.size() > max) last.pop_front();
  }
  std::string out;
  for (const auto& l : last) out += (out.empty() ? "" : "; ") + l;
  return out.empty() ? "no Error lines in the log" : out;
}

Runtime::Runtime(const EngineConfig& cfg, CommandRunner& runner)
    : cfg_(cfg), runner_(runner), runc_path_(findProgram(cfg.tools.runc)) {}

std::vector<std::string> Runtime::runc(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv = {runc_path_, "--root", runcRoot(cfg_).string()};
  argv.insert(argv.end(), args);
  return argv;
}

namespace {

// Throws runc's own complaint unless the run succeeded.
void throwUnlessOk(const ProcessResult& r, const std::string& what) {
  if (!r.ok()) {
    std::string msg = r.err.empty() ? r.out : r.err;
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    throw Error(ErrorCategory::kPermanent, "runc " + what + " failed (" + r.describe() + "): " + msg);
  }
}

}  // namespace

ProcessResult Runtime::runRunc(const std::vector<std::string>& argv, const std::string& what) {
  ProcessResult r = runner_.run(argv, {});
  throwUnlessOk(r, what);
  return r;
}

void Runtime::start(const std::string& id) { runRunc(runc({"start", id}), "start " + id); }

void Runtime::kill(const std::string& id, int signal) {
  runRunc(runc({"kill", id, std::to_string(signal)}), "kill " + id);
}

void Runtime::pause(const std::string& id) { runRunc(runc({"pause", id}), "pause " + id); }
void Runtime::resume(const std::string& id) { runRunc(runc({"resume", id}), "resume " + id); }

void Runtime::remove(const std::string& id, bool force) {
  auto argv = force ? runc({"delete", "--force", id}) : runc({"delete", id});
  ProcessResult r = runner_.run(argv, {});
  if (!r.ok() && r.err.find("does not exist") == std::string::npos &&
      r.err.find("not exist") == std::string::npos) {
    throw Error(ErrorCategory::kPermanent, "runc delete " + id + " failed: " + r.err);
  }
}

namespace {

// One container as `runc state` and `runc list` describe it.
RuncState runcState(const json& j) {
  return RuncState{j.at("id"), j.value("pid", 0), j.at("status"), j.value("bundle", "")};
}

}  // namespace

std::optional<RuncState> Runtime::state(const std::string& id) {
  ProcessResult r = runner_.run(runc({"state", id}), {});
  if (!r.ok()) {
    if (r.err.find("does not exist") != std::string::npos) return std::nullopt;
    throw Error(ErrorCategory::kPermanent, "runc state " + id + " failed: " + r.err);
  }
  try {
    return runcState(json::parse(r.out));
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kPermanent, "runc state " + id + ": unreadable output: " + e.what());
  }
}

std::map<std::string, RuncState> parseRuncList(std::string_view out) {
  try {
    json j = json::parse(out);
    std::map<std::string, RuncState> states;
    if (j.is_null()) return states;  // runc encodes an empty list as null
    for (const auto& c : j.get_ref<const json::array_t&>()) {
      RuncState st = runcState(c);
      states.emplace(st.id, std::move(st));
    }
    return states;
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kPermanent,
                std::string("runc list: unreadable output: ") + e.what());
  }
}

bool isRuncListVanishedRace(const ProcessResult& r, const fs::path& runc_root) {
  return !r.ok() && r.err.find("stat " + runc_root.string() + "/") != std::string::npos &&
         r.err.find("no such file or directory") != std::string::npos;
}

std::map<std::string, RuncState> Runtime::list() {
  // A container runc cannot load is left out with a warning on stderr, as
  // `runc state` would call it missing: only a failed run is an error.
  //
  // runc 1.1 (Debian 12) reads its root's entries and then stats each one,
  // failing the whole listing when a container is deleted in between (a
  // migration moving it, `rm`). The directory is gone by then, so listing
  // again gives the right answer; a few tries are plenty, since each race
  // needs another deletion in a window of microseconds.
  constexpr int kTries = 5;
  for (int attempt = 1;; ++attempt) {
    ProcessResult r = runner_.run(runc({"list", "--format", "json"}), {});
    if (attempt < kTries && isRuncListVanishedRace(r, runcRoot(cfg_))) continue;
    throwUnlessOk(r, "list");
    return parseRuncList(r.out);
  }
}

std::vector<std::string> criuDumpEnvironment(const fs::path& work_dir,
                                             const CheckpointOptions& opts) {
  if (!opts.nftables_lock) return {};
  fs::path conf = work_dir / "criu-dump.conf";
  writeFileAtomic(conf, "network-lock nftables\n", 0600);
  return {"CRIU_CONFIG_FILE=" + conf.string()};
}

void Runtime::checkpoint(const std::string& id, const fs::path& image_dir,
                         const fs::path& work_dir, const CheckpointOptions& opts,
                         uint16_t page_server) {
  std::vector<std::string> argv = {runc_path_, "--root", runcRoot(cfg_).string(), "--criu",
                                   cfg_.tools.criu, "checkpoint", "--image-path",
                                   image_dir.string(), "--work-path", work_dir.string()};
  if (page_server != 0) {
    argv.insert(argv.end(), {"--page-server", "127.0.0.1:" + std::to_string(page_server)});
  }
  if (opts.leave_running) argv.push_back("--leave-running");
  if (opts.tcp_established) argv.push_back("--tcp-established");
  if (opts.file_locks) argv.push_back("--file-locks");
  argv.push_back(id);
  RunOptions run;
  run.env = criuDumpEnvironment(work_dir, opts);
  // A dump streaming its memory lasts as long as the memory takes to cross
  // (a large container over a slow link: hours). Its caller's relay bounds
  // every wait for CRIU and the stream bounds every wait for the peer, so
  // only a hang that neither sees is left to this.
  if (page_server != 0) run.timeout = std::chrono::hours(24);
  ProcessResult r = runner_.run(argv, run);
  if (!r.ok()) {
    fs::path log = work_dir / "dump.log";
    throw Error(ErrorCategory::kPermanent,
                "runc checkpoint of " + id + " failed (" + r.describe() + "; CRIU log " +
                    log.string() + "): " + lastCriuErrors(log));
  }
}

namespace {

// A port on 127.0.0.1 free right now (CRIU's page server binds it next; a
// clash makes that dump fail with CRIU's bind error, the container resumes,
// and the migration fails saying so).
uint16_t freeLoopbackPort() {
  uint16_t port = 0;
  boundLoopbackSocket(&port, 0, "a port for CRIU's page server");
  return port;
}

// Whether CRIU's --status-fd byte arrives on `fd` within `timeout` (false:
// EOF, CRIU ended without it, or the time passed).
bool statusByteWithin(int fd, std::chrono::milliseconds timeout, const std::string& what) {
  for (;;) {
    pollfd pfd{fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(timeout.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("poll " + what);
    if (n == 0) return false;
    char c;
    return retryEintr([&] { return ::read(fd, &c, 1); }) == 1;
  }
}

std::string runcCheckpointFailure(const std::string& id, const std::string& how,
                                  const fs::path& work_dir) {
  fs::path log = work_dir / "dump.log";
  return "runc checkpoint of " + id + " failed (" + how + "; CRIU log " + log.string() +
         "): " + lastCriuErrors(log);
}

}  // namespace

std::unique_ptr<LazyDump> Runtime::checkpointLazy(const std::string& id, const fs::path& image_dir,
                                                  const fs::path& work_dir,
                                                  const CheckpointOptions& opts) {
  if (!opts.leave_running || !opts.keep_paused) {
    throw Error(ErrorCategory::kInvalidInput, "a lazy-pages dump keeps the container, paused");
  }
  uint16_t port = freeLoopbackPort();
  // Before CRIU listens: from then on only root may connect to the port.
  auto guard = std::make_unique<PageServerPortGuard>(runner_, port);
  Pipe status = makePipe();
  int status_fd = status.write.get();
  std::vector<std::string> argv = {runc_path_, "--root", runcRoot(cfg_).string(), "--criu",
                                   cfg_.tools.criu, "checkpoint", "--image-path",
                                   image_dir.string(), "--work-path", work_dir.string(),
                                   "--leave-running", "--lazy-pages", "--page-server",
                                   "127.0.0.1:" + std::to_string(port), "--status-fd",
                                   std::to_string(status_fd)};
  if (opts.tcp_established) argv.push_back("--tcp-established");
  if (opts.file_locks) argv.push_back("--file-locks");
  argv.push_back(id);
  Child runc = spawnChild(argv, (work_dir / "runc-checkpoint.log").string(),
                          criuDumpEnvironment(work_dir, opts), {status_fd});
  status.write.reset();
  auto lazy = std::make_unique<LazyDump>(std::move(runc), port, work_dir, id, std::move(guard));
  // runc writes a byte when CRIU says it is ready; EOF without one: it ended.
  if (statusByteWithin(status.read.get(), std::chrono::minutes(2), "runc's status fd")) return lazy;
  lazy->wait(std::chrono::seconds(10));  // throws CRIU's errors
  throw Error(ErrorCategory::kPermanent,
              runcCheckpointFailure(id, "it ended without serving the memory", work_dir));
}

Child Runtime::startPageServer(const fs::path& images, const fs::path& work, int fd) {
  makeDirs(work, 0700);
  return spawnChild({cfg_.tools.criu, "page-server", "--ps-socket", std::to_string(fd), "-D",
                     images.string(), "-W", work.string(), "-o", "page-server.log", "-v4"},
                    (work / "page-server.out").string(), {}, {fd});
}

LazyDump::LazyDump(Child runc, uint16_t port, fs::path work_dir, std::string id,
                   std::unique_ptr<PageServerPortGuard> guard)
    : guard_(std::move(guard)), runc_(std::move(runc)), port_(port), work_(std::move(work_dir)),
      id_(std::move(id)) {}

LazyDump::~LazyDump() {
  if (done_) return;
  // The page server serves one connection: one that ends at once ends it
  // (CRIU then lets the tasks go, still paused by the freezer). Connecting
  // fails when it already took its connection, which closes in turn.
  try {
    connectLoopback(port_, "ending CRIU's page server");
  } catch (const Error&) {
  }
  try {
    wait(std::chrono::seconds(30));
  } catch (const std::exception&) {
    // Logged by whoever ends the migration; the tasks are released either way.
  }
}

void LazyDump::wait(std::chrono::milliseconds timeout) {
  if (done_) return;
  std::optional<int> status = runc_.waitFor(timeout);
  done_ = true;
  if (!status) {
    // runc's CRIU (its child) first: killed alone, runc would leave it
    // serving, the port and the dumped memory held.
    for (pid_t p : processDescendants(runc_.pid())) ::kill(p, SIGKILL);
    runc_.kill(SIGKILL);
    runc_.wait();
    throw Error(ErrorCategory::kRetryable,
                runcCheckpointFailure(id_, "still serving pages after " +
                                               std::to_string(timeout.count()) + " ms; killed",
                                      work_));
  }
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return;
  std::string how = WIFEXITED(*status) ? "exit code " + std::to_string(WEXITSTATUS(*status))
                                       : "killed by signal " + std::to_string(WTERMSIG(*status));
  std::string runc_says;
  try {
    runc_says = readFile(work_ / "runc-checkpoint.log");
  } catch (const std::exception&) {
  }
  while (!runc_says.empty() && (runc_says.back() == '\n' || runc_says.back() == ' ')) runc_says.pop_back();
  if (runc_says.size() > 300) runc_says = "..." + runc_says.substr(runc_says.size() - 300);
  throw Error(ErrorCategory::kPermanent,
              runcCheckpointFailure(id_, how, work_) + (runc_says.empty() ? "" : "; runc: " + runc_says));
}

namespace {

// The lazy-pages daemon's guard (bash; see LazyRestore). Arguments: runc,
// its root, the container, the lifeline's fd, the held fd, the daemon's
// status fd, then the daemon's argv. Exit 0: the daemon had every page.
constexpr const char* kLazyGuard = R"SH(
runc=$1 root=$2 id=$3 lifeline=$4 hold=$5 status=$6
shift 6
"$@" {lifeline}<&- {hold}<&- &
daemon=$!
exec {status}>&-
( read -r -u "$lifeline" _; exit 0 ) {hold}<&- &
watch=$!
exec {lifeline}<&-
wait -n -p who "$daemon" "$watch"
rc=$?
if [ "$who" = "$daemon" ] && [ "$rc" = 0 ]; then
  kill "$watch" 2>/dev/null
  echo "ferry guard: every page arrived"
  exit 0
fi
if [ "$who" = "$daemon" ]; then
  echo "ferry guard: the lazy-pages daemon failed (status $rc): killing $id"
else
  echo "ferry guard: told to stop (or the agent is gone): killing $id"
fi
# Until it stopped: the daemon (and its hold on the faults) goes only then.
# Absent from runc's state it may still be restoring: it must stay absent
# for 3 s (a restore takes well under that) before the daemon may go.
absent=0
for i in $(seq 1200); do
  "$runc" --root "$root" kill --all "$id" KILL >/dev/null 2>&1
  if state=$("$runc" --root "$root" state "$id" 2>/dev/null); then
    absent=0
    case "$state" in *'"status": "stopped"'*) break ;; esac
  else
    absent=$((absent + 1))
    [ "$absent" -ge 60 ] && break
  fi
  sleep 0.05
done
kill -KILL "$daemon" "$watch" 2>/dev/null
wait
exit 3
)SH";

}  // namespace

std::unique_ptr<LazyRestore> Runtime::startLazyPages(const std::string& id, const fs::path& images,
                                                     const fs::path& work, int pages,
                                                     int caller_end) {
  makeDirs(work, 0700);
  Pipe lifeline = makePipe();
  Pipe status = makePipe();
  const int life_fd = lifeline.read.get();
  const int status_fd = status.write.get();
  std::vector<std::string> argv = {
      "setsid", "bash", "-c", kLazyGuard, "ferry-lazy-guard", runc_path_,
      runcRoot(cfg_).string(), id, std::to_string(life_fd), std::to_string(caller_end),
      std::to_string(status_fd), cfg_.tools.criu, "lazy-pages", "--page-server",
      "--ps-socket", std::to_string(pages), "-D", images.string(), "-W", work.string(),
      "-o", "lazy-pages.log", "--status-fd", std::to_string(status_fd)};
  fs::path log = work / "lazy-pages-guard.log";
  Child guard = spawnChild(argv, log.string(), {}, {life_fd, status_fd, pages, caller_end});
  lifeline.read.reset();
  status.write.reset();
  auto lazy = std::make_unique<LazyRestore>(std::move(guard), std::move(lifeline.write), log, id);
  // CRIU writes a byte once its socket listens; EOF without one: it ended.
  if (statusByteWithin(status.read.get(), std::chrono::seconds(30), "the lazy-pages daemon's status fd")) {
    return lazy;
  }
  lazy->abort();
  throw Error(ErrorCategory::kPermanent,
              "CRIU's lazy-pages daemon for " + id + " did not start (log " +
                  (work / "lazy-pages.log").string() + "): " +
                  lastCriuErrors(work / "lazy-pages.log"));
}

LazyRestore::LazyRestore(Child guard, UniqueFd lifeline, fs::path log, std::string id)
    : guard_(std::move(guard)), lifeline_(std::move(lifeline)), log_(std::move(log)),
      id_(std::move(id)) {}

LazyRestore::~LazyRestore() {
  try {
    abort();
  } catch (const std::exception&) {
    // The guard's log says what it did.
  }
}

void LazyRestore::finish() {
  done_ = true;
  lifeline_.reset();
  if (on_end_) {
    auto fn = std::move(on_end_);
    on_end_ = nullptr;
    fn();
  }
}

void LazyRestore::abort() {
  if (done_) return;
  lifeline_.reset();  // the guard kills the container, then the daemon
  // The guard gives up on a container that will not stop after 60 s; a
  // guard killed here leaves the daemon holding the faults (the container
  // blocks on them, never reads zeros) for the caller's removal.
  std::optional<int> status = guard_.waitFor(std::chrono::seconds(75));
  if (!status) {
    guard_.kill(SIGKILL);
    guard_.wait();
  }
  finish();
}

bool LazyRestore::waitFor(std::chrono::milliseconds timeout) {
  if (done_) return true;
  std::optional<int> status = guard_.waitFor(timeout);
  if (!status) return false;
  finish();
  if (WIFEXITED(*status) && WEXITSTATUS(*status) == 0) return true;
  std::string said;
  try {
    said = readFile(log_);
  } catch (const std::exception&) {
  }
  while (!said.empty() && (said.back() == '\n' || said.back() == ' ')) said.pop_back();
  if (said.size() > 400) said = "..." + said.substr(said.size() - 400);
  throw Error(ErrorCategory::kPermanent,
              "post-copy of " + id_ + " failed before every page arrived; the container was killed (" +
                  log_.string() + "): " + said);
}

namespace {

// Reads conmon's sync message: {"data": PID} on success, {"data": -1,
// "message": "..."} on failure. EOF without a message means conmon itself
// failed before runc ran (its own log says why).
json readSyncMessage(int fd, std::chrono::milliseconds timeout) {
  std::string buf;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    auto nl = buf.find('\n');
    if (nl != std::string::npos) return json::parse(buf.substr(0, nl));
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      throw Error(ErrorCategory::kRetryable, "conmon did not report within " +
                                                 std::to_string(timeout.count()) + " ms");
    }
    pollfd pfd{fd, POLLIN, 0};
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throwErrno("poll conmon sync pipe");
    if (n == 0) continue;
    char chunk[4096];
    ssize_t got = retryEintr([&] { return ::read(fd, chunk, sizeof chunk); });
    if (got < 0) throwErrno("read conmon sync pipe");
    if (got == 0) {
      if (!buf.empty()) return json::parse(buf);
      return json::object();
    }
    buf.append(chunk, static_cast<size_t>(got));
  }
}

std::string trimmed(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back();
  return s;
}

}  // namespace

PidFd conmonPidFd(const fs::path& pid_file, const std::string& id) {
  pid_t pid = 0;
  std::ifstream(pid_file) >> pid;
  PidFd fd = PidFd::open(pid);
  if (!fd.valid()) return fd;
  // A stale pid file names whatever has the pid now: it is ours only if it
  // runs `conmon ... -c <id>`. Read after the open, so if the pid was reused
  // in between, the process the pidfd holds has exited: it is done either way.
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string arg, prev;
  while (std::getline(in, arg, '\0')) {
    if (prev == "-c" && arg == id) return fd;
    prev = std::move(arg);
  }
  return PidFd();
}

namespace {

// A launch that failed must not leave its monitor (and what it runs) behind.
void stopConmon(const ConmonLaunch& l) { conmonPidFd(l.conmon_pid_file, l.id).signal(SIGKILL); }

}  // namespace

pid_t Runtime::launch(const ConmonLaunch& l) {
  makeDirs(l.exit_dir, 0700);
  fs::path sock_dir = cfg_.run_dir / "sock";
  makeDirs(sock_dir, 0700);
  std::vector<std::string> argv = {
      findProgram(cfg_.tools.conmon), "--api-version", "1", "-c", l.id, "-u", l.id, "-n", l.id,
      "-r", runc_path_, "-b", l.bundle.string(), "-p", l.pid_file.string(),
      "-P", l.conmon_pid_file.string(), "-l", "k8s-file:" + l.log_path.string(),
      "--exit-dir", l.exit_dir.string(), "--socket-dir-path", sock_dir.string(),
      "--runtime-arg", "--root=" + runcRoot(cfg_).string(),
      "--runtime-arg", "--criu=" + cfg_.tools.criu, "--log-level", "warning"};
  if (l.restore_from) {
    argv.insert(argv.end(), {"--restore", l.restore_from->string(),
                             "--runtime-opt=--work-path=" + l.restore_work.string()});
    if (l.restore_opts.tcp_established) argv.push_back("--runtime-opt=--tcp-established");
    if (l.restore_opts.file_locks) argv.push_back("--runtime-opt=--file-locks");
    if (l.restore_opts.lazy_pages) argv.push_back("--runtime-opt=--lazy-pages");
  }
  Pipe sync = makePipe();
  RunOptions opts;
  opts.env = {"_OCI_SYNCPIPE=" + std::to_string(sync.write.get())};
  opts.inherit_fds = {sync.write.get()};
  if (l.listen_fds > 0) {
    // conmon keeps fds 3.. open for runc and makes LISTEN_PID runc's, which
    // then hands the fds to the container's init.
    argv.push_back("--replace-listen-pid");
    for (int fd = 3; fd < 3 + l.listen_fds; ++fd) opts.inherit_fds.push_back(fd);
    opts.env.push_back("LISTEN_FDS=" + std::to_string(l.listen_fds));
    opts.env.push_back("LISTEN_PID=" + std::to_string(::getpid()));
    if (!l.listen_fdnames.empty()) opts.env.push_back("LISTEN_FDNAMES=" + l.listen_fdnames);
  }
  opts.output_file = l.conmon_log.string();
  opts.timeout = std::chrono::minutes(1);
  // conmon forks its monitor and returns; the monitor keeps the write end.
  ProcessResult r = runner_.run(argv, opts);
  sync.write.reset();
  const std::string what = l.restore_from ? "restore" : "create";
  if (!r.ok()) {
    throw Error(ErrorCategory::kPermanent, "conmon for " + l.id + " failed (" + r.describe() +
                                               "; see " + l.conmon_log.string() + ")");
  }
  json msg;
  try {
    msg = readSyncMessage(sync.read.get(), std::chrono::minutes(10));
  } catch (...) {
    stopConmon(l);
    throw;
  }
  int pid = msg.value("data", -1);
  if (pid > 0) return pid;
  stopConmon(l);
  std::string detail = trimmed(msg.value("message", ""));
  if (detail.empty()) detail = "conmon exited without a report; see " + l.conmon_log.string();
  std::string text = "runc " + what + " of " + l.id + " failed: " + detail;
  if (l.restore_from) {
    fs::path log = l.restore_work / "restore.log";
    text += " (CRIU log " + log.string() + ": " + lastCriuErrors(log) + ")";
  }
  throw Error(ErrorCategory::kPermanent, text);
}

}  // namespace ferry
