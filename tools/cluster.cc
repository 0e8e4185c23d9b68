// `ferry cluster up`, the cluster record and finding the executables. `down`
// is in cluster_down.cc.
#include "tools/cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "common/sha256.h"
#include "common/time_util.h"
#include "engine/runtime/process.h"
#include "protocol/rpc.h"
#include "tools/cluster_process.h"

namespace ferry::cluster {

namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr int kMaxHosts = 20;
// Passed to ferry-coordinator as --missed: heartbeats missed before a host
// is marked down.
constexpr int kMissedHeartbeats = 5;

// ---- the record ----------------------------------------------------------

void to_json(json& j, const ClusterState& s) {
  json hosts = json::array();
  for (const auto& h : s.hosts) {
    hosts.push_back({{"name", h.name},
                     {"address", h.address},
                     {"root", h.root.string()},
                     {"run_dir", h.run_dir.string()},
                     {"cgroup_parent", h.cgroup_parent},
                     {"log", h.log.string()},
                     {"launcher", h.launcher},
                     {"pid", h.pid},
                     {"start_time", h.start_time},
                     {"metrics_url", h.metrics_url}});
  }
  j = json{{"dir", s.dir.string()},
           {"id", s.id},
           {"coordinator_endpoint", s.coordinator_endpoint},
           {"coordinator_pid", s.coordinator_pid},
           {"coordinator_start_time", s.coordinator_start_time},
           {"coordinator_state", s.coordinator_state.string()},
           {"coordinator_log", s.coordinator_log.string()},
           {"coordinator_metrics_url", s.coordinator_metrics_url},
           {"hosts", hosts},
           {"run_base", s.run_base.string()},
           {"cgroup_base", s.cgroup_base},
           {"heartbeat_ms", s.heartbeat_ms},
           {"keys_dir", s.keys_dir.string()},
           {"coordinator_launcher", s.coordinator_launcher},
           {"created_unix", s.created_unix},
           {"agent_bin", s.agent_bin.string()},
           {"coordinator_bin", s.coordinator_bin.string()},
           {"engine_bin", s.engine_bin.string()},
           {"network", s.network}};
}

void from_json(const json& j, ClusterState& s) {
  s.dir = j.at("dir").get<std::string>();
  s.id = j.at("id").get<std::string>();
  s.coordinator_endpoint = j.at("coordinator_endpoint").get<std::string>();
  s.coordinator_pid = j.at("coordinator_pid").get<int>();
  s.coordinator_start_time = j.value("coordinator_start_time", uint64_t{0});
  s.coordinator_state = j.value("coordinator_state", "");
  s.coordinator_log = j.value("coordinator_log", "");
  s.coordinator_metrics_url = j.value("coordinator_metrics_url", "");
  s.run_base = j.at("run_base").get<std::string>();
  s.cgroup_base = j.at("cgroup_base").get<std::string>();
  s.heartbeat_ms = j.value("heartbeat_ms", int64_t{1000});
  s.keys_dir = j.value("keys_dir", std::string());
  s.coordinator_launcher = j.value("coordinator_launcher", std::vector<std::string>());
  s.created_unix = j.value("created_unix", int64_t{0});
  s.agent_bin = j.value("agent_bin", "");
  s.coordinator_bin = j.value("coordinator_bin", "");
  s.engine_bin = j.value("engine_bin", "");
  s.network = j.value("network", ClusterNetwork());
  s.hosts.clear();
  for (const auto& h : j.at("hosts")) {
    s.hosts.push_back({.name = h.at("name").get<std::string>(),
                       .address = h.at("address").get<std::string>(),
                       .root = h.at("root").get<std::string>(),
                       .run_dir = h.at("run_dir").get<std::string>(),
                       .cgroup_parent = h.at("cgroup_parent").get<std::string>(),
                       .log = h.value("log", ""),
                       .launcher = h.value("launcher", std::vector<std::string>()),
                       .pid = h.at("pid").get<int>(),
                       .start_time = h.value("start_time", uint64_t{0}),
                       .metrics_url = h.value("metrics_url", "")});
  }
}

namespace {

fs::path recordPath(const fs::path& dir) { return dir / "cluster.json"; }

fs::path absoluteDir(const fs::path& dir) { return fs::weakly_canonical(fs::absolute(dir)); }

void writeState(const ClusterState& s) {
  writeFileAtomic(recordPath(s.dir), json(s).dump(2) + "\n");
}

// The processes a record names, agents first.
std::vector<ProcessRef> processesOf(const ClusterState& s) {
  std::vector<ProcessRef> out;
  for (const auto& h : s.hosts) out.push_back({"agent " + h.name, h.pid, h.start_time, {}});
  out.push_back({"coordinator", s.coordinator_pid, s.coordinator_start_time, {}});
  return out;
}

}  // namespace

namespace {

// `down` removes the run dirs and cgroups a record names: they must be the
// cluster's own, whatever the file says.
std::string recordMistake(const ClusterState& s) {
  bool hex = s.id.size() == 8 && s.id.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) return "bad id '" + s.id + "'";
  if (s.run_base != fs::path("/run") / ("ferry-cluster-" + s.id)) {
    return "run dir " + s.run_base.string() + " is not the cluster's";
  }
  if (s.cgroup_base != "/ferry-cluster-" + s.id)
    return "cgroup " + s.cgroup_base + " is not the cluster's";
  for (const auto& h : s.hosts) {
    if (h.run_dir != s.run_base / h.name || h.cgroup_parent != s.cgroup_base + "/" + h.name) {
      return "host " + h.name + "'s run dir or cgroup is not the cluster's";
    }
  }
  return networkMistake(s.network, s.id);
}

}  // namespace

std::optional<ClusterState> readState(const fs::path& dir_in) {
  fs::path file = recordPath(absoluteDir(dir_in));
  if (!pathExists(file)) return std::nullopt;
  std::string mistake;
  try {
    ClusterState s = json::parse(readFile(file)).get<ClusterState>();
    mistake = recordMistake(s);
    if (mistake.empty()) return s;
  } catch (const json::exception& e) {
    mistake = e.what();
  }
  throw Error(ErrorCategory::kPermanent, file.string() + " is not a cluster record (" + mistake +
                                             "); if no cluster runs from it, remove it");
}

bool anyRunning(const ClusterState& s) {
  for (auto& p : processesOf(s)) {
    if (isRunning(p)) return true;
  }
  return false;
}

// ---- finding the executables -----------------------------------------------

namespace {

bool isExecutableFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec) && ::access(p.c_str(), X_OK) == 0;
}

// dir/name, and the layout of a build tree (build/tools, build/agent, ...).
std::vector<fs::path> candidatesIn(const fs::path& dir, const std::string& name) {
  return {dir / name, dir / ".." / "agent" / name, dir / ".." / "coordinator" / name,
          dir / ".." / "tools" / name};
}

}  // namespace

fs::path findTool(const std::string& name, const fs::path& bin_dir) {
  std::vector<fs::path> places;
  if (!bin_dir.empty()) {
    places = candidatesIn(fs::absolute(bin_dir), name);
  } else {
    std::error_code ec;
    fs::path self = fs::read_symlink("/proc/self/exe", ec);
    if (!ec) places = candidatesIn(self.parent_path(), name);
    if (const char* path = std::getenv("PATH")) {
      std::istringstream dirs(path);
      std::string d;
      while (std::getline(dirs, d, ':')) {
        if (!d.empty()) places.push_back(fs::path(d) / name);
      }
    }
  }
  for (const auto& p : places) {
    if (isExecutableFile(p)) return fs::canonical(p);
  }
  std::string where = bin_dir.empty() ? "next to this program, in its build tree and in PATH"
                                      : "in " + bin_dir.string() + " (and a build tree around it)";
  throw Error(ErrorCategory::kInvalidInput,
              "cannot find " + name + " " + where +
                  "; build it (cmake --build build) or say where it is with --bin-dir DIR");
}

// ---- up ------------------------------------------------------------------

namespace {

void validate(const ClusterOptions& o) {
  if (o.hosts < 1 || o.hosts > kMaxHosts) {
    throwInvalidInput("a local cluster has 1 to " + std::to_string(kMaxHosts) + " hosts, not " +
                      std::to_string(o.hosts));
  }
  if (o.port < 1 || o.port > 65535) throwInvalidInput("bad port " + std::to_string(o.port));
  if (o.heartbeat.count() <= 0) throwInvalidInput("the heartbeat interval must be positive");
  in_addr a{};
  if (::inet_pton(AF_INET, o.coordinator_address.c_str(), &a) != 1 ||
      (o.keys_dir.empty() && o.coordinator_address.rfind("127.", 0) != 0)) {
    // ferry-coordinator refuses anything else without CurveZMQ keys.
    throwInvalidInput(
        "the local cluster runs without keys, so its coordinator listens on an IPv4 "
        "loopback address (127.x.x.x), not '" +
        o.coordinator_address + "'");
  }
  if (!o.host_placements.empty() && o.host_placements.size() != static_cast<size_t>(o.hosts)) {
    throwInvalidInput("give every host a placement, or none");
  }
  if (!o.network_cidr.empty() && (!o.host_placements.empty() || !o.coordinator_launcher.empty())) {
    throwInvalidInput("a cluster with a network places its hosts itself: no host placements or "
                      "coordinator launcher with it");
  }
  for (const auto& p : o.host_placements) {
    if (o.keys_dir.empty() && p.address.rfind("127.", 0) != 0) {
      throwInvalidInput("an agent listens on a loopback address without keys, not " + p.address);
    }
  }
}

// Binds the port the way ZeroMQ will (SO_REUSEADDR: a port whose last
// connections linger in TIME_WAIT is free) and lets go again.
void checkPortFree(const std::string& address, int port) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throwErrno("socket");
  int one = 1;
  ::setsockopt(s.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    if (errno == EADDRINUSE) {
      throwInvalidInput("port " + std::to_string(port) + " on " + address +
                        " is already in use (`ss -ltnp 'sport = :" + std::to_string(port) +
                        "'` shows by what); pick another with --port");
    }
    throwErrno("bind " + address + ":" + std::to_string(port));
  }
}

std::string hostName(int i) { return std::string("host") + static_cast<char>('A' + i); }

std::string clusterId(const fs::path& dir) { return sha256Hex(dir.string()).substr(0, 8); }

std::vector<std::string> hostNames(int n) {
  std::vector<std::string> out;
  for (int i = 0; i < n; ++i) out.push_back(hostName(i));
  return out;
}

// A port free on `address` now (the kernel's pick). The process that is
// to bind it starts within seconds; should another take it first, that
// process fails at start naming the address, and up() with it.
int freePort(const std::string& address) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s) throwErrno("socket");
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  ::inet_pton(AF_INET, address.c_str(), &sa.sin_addr);
  socklen_t len = sizeof sa;
  if (::bind(s.get(), reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0 ||
      ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&sa), &len) != 0) {
    throwErrno("finding a free port on " + address + " for metrics");
  }
  return ntohs(sa.sin_port);
}

// Where each process serves its metrics: this machine's network, a free
// port; a namespace of its own, kMetricsPort.
void planMetrics(const ClusterOptions& o, ClusterState& s) {
  auto url = [](const std::string& address, int port) {
    return "http://" + address + ":" + std::to_string(port) + "/metrics";
  };
  s.coordinator_metrics_url = o.coordinator_launcher.empty()
                                  ? url("127.0.0.1", freePort("127.0.0.1"))
                                  : url(o.coordinator_address, kMetricsPort);
  for (auto& h : s.hosts) {
    h.metrics_url = h.launcher.empty() ? url(h.address, freePort(h.address))
                                       : url(h.address, kMetricsPort);
  }
}

// The --metrics ADDR:PORT of a metrics URL.
std::vector<std::string> metricsArgs(const std::string& url) {
  if (url.empty()) return {};
  const std::string scheme = "http://", path = "/metrics";
  return {"--metrics", url.substr(scheme.size(), url.size() - scheme.size() - path.size())};
}

ClusterState plan(const ClusterOptions& o, const fs::path& dir) {
  ClusterState s;
  s.dir = dir;
  s.id = clusterId(dir);
  s.coordinator_state = dir / "coordinator";
  s.coordinator_log = dir / "logs" / "coordinator.log";
  s.run_base = fs::path("/run") / ("ferry-cluster-" + s.id);
  // Without keys the coordinator takes its agents and the CLI on a unix
  // socket that admits root only (TCP would admit every local user).
  s.coordinator_endpoint =
      o.keys_dir.empty() ? "ipc://" + (s.run_base / "coordinator.sock").string()
                         : "tcp://" + o.coordinator_address + ":" + std::to_string(o.port);
  s.cgroup_base = "/ferry-cluster-" + s.id;
  s.heartbeat_ms = o.heartbeat.count();
  s.coordinator_launcher = o.coordinator_launcher;
  if (!o.keys_dir.empty()) s.keys_dir = fs::absolute(o.keys_dir);
  s.created_unix = unixNow();
  s.coordinator_bin = findTool("ferry-coordinator", o.bin_dir);
  s.agent_bin = findTool("ferry-agent", o.bin_dir);
  s.engine_bin = findTool("ferry-engine", o.bin_dir);
  for (int i = 0; i < o.hosts; ++i) {
    std::string name = hostName(i);
    bool placed = !o.host_placements.empty();
    s.hosts.push_back(
        {.name = name,
         .address = placed ? o.host_placements[i].address : "127.0.0." + std::to_string(2 + i),
         .root = dir / "hosts" / name,
         .run_dir = s.run_base / name,
         .cgroup_parent = s.cgroup_base + "/" + name,
         .log = dir / "logs" / (name + ".log"),
         .launcher = placed ? o.host_placements[i].launcher : std::vector<std::string>()});
  }
  if (o.metrics) planMetrics(o, s);
  return s;
}

// Whether runc keeps any container's state below run_base/HOST/runc.
bool hasContainerState(const fs::path& run_base) {
  std::error_code ec;
  for (const auto& host : fs::directory_iterator(run_base, ec)) {
    for (const auto& c : fs::directory_iterator(host.path() / "runc", ec)) {
      if (pathExists(c.path() / "state.json")) return true;
    }
  }
  return false;
}

// What `up` started, stopped again (and the record removed) unless up
// succeeds and commits.
class Launch {
 public:
  explicit Launch(ClusterState& s) : s_(s) {}
  Launch(const Launch&) = delete;
  Launch& operator=(const Launch&) = delete;
  ~Launch() {
    if (!committed_) abandon();
  }

  // Starts one process and records it in cluster.json at once, so a CLI
  // killed half-way leaves a record `down` can clean up after.
  void start(std::string what, const std::vector<std::string>& argv, const fs::path& log, int& pid,
             uint64_t& start_time) {
    logs_[what] = {log, logSize(log)};
    procs_.push_back(startDetached(std::move(what), argv, log));
    pid = procs_.back().pid;
    start_time = procs_.back().start_time;
    writeState(s_);
  }

  // Throws, with the end of its log, for the first process that is gone.
  void checkAllRunning() {
    for (auto& p : procs_) {
      if (!isRunning(p)) {
        throw Error(ErrorCategory::kPermanent, p.what + " exited during startup (" +
                                                   describeExit(p) + "); " + tail(p.what) + kRetry);
      }
    }
  }

  // "the end of LOG:\n    line\n..." for what this run of `what` wrote.
  std::string tail(const std::string& what) {
    const auto& [path, from] = logs_.at(what);
    return "the end of " + path.string() + ":\n" + logTail(path, from);
  }

  // What this run of `what` wrote to its log so far.
  std::string logSince(const std::string& what) {
    const auto& [path, from] = logs_.at(what);
    std::string all = pathExists(path) ? readFile(path) : "";
    return from < all.size() ? all.substr(from) : "";
  }

  void commit() { committed_ = true; }

  static constexpr const char* kRetry =
      "Everything `ferry cluster up` started has been stopped; fix the cause and run it again.";

 private:
  // Stops what was started; removes the record and the run dirs unless
  // something survived or containers of an earlier run live there (agents
  // adopt those; `down` removes them).
  void abandon() noexcept {
    try {
      std::vector<std::string> problems;
      stopProcesses(procs_, std::chrono::seconds(10), problems);
      for (auto& p : procs_) {
        if (isRunning(p)) return;  // `down` can finish the job
      }
      LocalCommandRunner runner;
      if (!removeNetwork(runner, s_.network).empty()) return;  // `down` says what is left
      fs::remove(recordPath(s_.dir));
      if (!hasContainerState(s_.run_base)) removeTree(s_.run_base);
    } catch (const std::exception&) {
      // Best effort on a path that is failing already; `down` cleans up.
    }
  }

  ClusterState& s_;
  std::vector<ProcessRef> procs_;
  std::map<std::string, std::pair<fs::path, uint64_t>> logs_;  // what -> log, this run's start
  bool committed_ = false;
};

std::string secondsText(std::chrono::seconds s) { return std::to_string(s.count()) + " s"; }

void waitForCoordinator(Launch& launch, const ClusterState& s, proto::RpcClient& cli,
                        Clock::time_point deadline, std::chrono::seconds wait) {
  for (;;) {
    launch.checkAllRunning();
    try {
      cli.call([](proto::Message::Builder m) { m.setPing(); }, std::chrono::milliseconds(200));
      return;
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kRetryable) throw;
    }
    if (Clock::now() >= deadline) {
      throw Error(ErrorCategory::kRetryable,
                  "the coordinator did not answer on " + s.coordinator_endpoint + " within " +
                      secondsText(wait) + "; " + launch.tail("coordinator") + Launch::kRetry +
                      " (a slow machine may need a longer --wait)");
    }
  }
}

// The names the coordinator lists as up; nullopt when it does not answer.
std::optional<std::set<std::string>> hostsUp(proto::RpcClient& cli) {
  try {
    auto reply =
        cli.call([](proto::Message::Builder m) { m.setListHosts(); }, std::chrono::seconds(1));
    std::set<std::string> up;
    for (auto h : reply->root<proto::Message>().getHosts()) {
      if (h.getUp()) up.insert(h.getName().cStr());
    }
    return up;
  } catch (const Error& e) {
    if (e.category() != ErrorCategory::kRetryable) throw;
    return std::nullopt;
  }
}

// Until the coordinator lists every host as up. Its state outlives `down`,
// so a host of the previous run may still be listed as up: the coordinator
// marks it down only after kMissedHeartbeats. Such a host (in `stale`,
// listed before our agents started) counts once it was seen down, or once
// the old record would have expired -- by then its "up" is this run's agent.
void waitForAgents(Launch& launch, const ClusterState& s, proto::RpcClient& cli,
                   std::set<std::string> stale, Clock::time_point deadline,
                   std::chrono::seconds wait, const ProgressFn& say) {
  auto stale_expired =
      Clock::now() + (kMissedHeartbeats + 2) * std::chrono::milliseconds(s.heartbeat_ms);
  size_t reported = 0;
  for (;;) {
    launch.checkAllRunning();
    std::vector<std::string> missing;
    if (auto up = hostsUp(cli)) {
      std::erase_if(stale, [&](const std::string& name) { return !up->count(name); });
      bool trust_stale = Clock::now() >= stale_expired;
      for (const auto& h : s.hosts) {
        if (!up->count(h.name) || (stale.count(h.name) && !trust_stale)) missing.push_back(h.name);
      }
    } else {
      for (const auto& h : s.hosts) missing.push_back(h.name);
    }
    size_t n = s.hosts.size() - missing.size();
    if (n != reported) {
      say(std::to_string(n) + "/" + std::to_string(s.hosts.size()) + " hosts up");
      reported = n;
    }
    if (missing.empty()) return;
    if (Clock::now() >= deadline) {
      std::string msg = "not up in the coordinator after " + secondsText(wait) + ":";
      for (const auto& name : missing) msg += " " + name;
      throw Error(ErrorCategory::kRetryable, msg + "; " + launch.tail("agent " + missing.front()) +
                                                 Launch::kRetry +
                                                 " (a slow machine may need a longer --wait)");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// Until every agent logged that its container network is ready: the
// coordinator named it in its first answer, and the agent set it up.
void waitForNetwork(Launch& launch, const ClusterState& s, Clock::time_point deadline,
                    std::chrono::seconds wait, const ProgressFn& say) {
  const std::string ready = networkReadyLine(s.network.cidr);
  for (;;) {
    launch.checkAllRunning();
    std::vector<std::string> missing;
    for (const auto& h : s.hosts) {
      if (launch.logSince("agent " + h.name).find(ready) == std::string::npos) {
        missing.push_back(h.name);
      }
    }
    if (missing.empty()) {
      say("container network " + s.network.cidr + " ready on every host");
      return;
    }
    if (Clock::now() >= deadline) {
      std::string msg = "the container network " + s.network.cidr + " is not ready after " +
                        secondsText(wait) + " on:";
      for (const auto& name : missing) msg += " " + name;
      throw Error(ErrorCategory::kRetryable, msg + "; " + launch.tail("agent " + missing.front()) +
                                                 Launch::kRetry);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

}  // namespace

namespace {

// Refuses to start over a live cluster or on a taken port. The network a
// dead cluster's record names goes first (its containers, if any are left,
// need `down`).
void checkNothingInTheWay(const ClusterOptions& o, const fs::path& dir, CommandRunner& runner,
                          const ProgressFn& say) {
  if (auto old = readState(dir)) {
    if (anyRunning(*old)) {
      throwInvalidInput("a cluster is already up in " + dir.string() +
                        "; run `ferry cluster down --dir " + dir.string() + "` first");
    }
    if (old->network.enabled()) {
      if (hasContainerState(old->run_base)) {
        throwInvalidInput("containers of the cluster that ran in " + dir.string() +
                          " are still there, on its network; run `ferry cluster down --dir " +
                          dir.string() + "` first");
      }
      std::vector<std::string> problems = removeNetwork(runner, old->network);
      if (!problems.empty()) {
        throw Error(ErrorCategory::kPermanent,
                    "the network of the cluster that ran in " + dir.string() +
                        " is still there: " + problems.front() + "; run `ferry cluster down --dir " +
                        dir.string() + "`");
      }
    }
    say("replacing the record of a cluster that no longer runs (" + recordPath(dir).string() + ")");
  }
  // With a network, its address exists only once the bridge does: checked then.
  if (!o.keys_dir.empty() && o.coordinator_launcher.empty() && o.network_cidr.empty()) {
    checkPortFree(o.coordinator_address, o.port);
  }
}

// The options of a cluster on `net`: the coordinator on the bridge's
// address, each host in its namespace, with keys (made in DIR/keys unless
// given).
ClusterOptions onNetwork(ClusterOptions o, const ClusterNetwork& net, const fs::path& dir) {
  o.coordinator_address = net.link.bridgeAddress();
  o.host_placements.clear();
  for (const auto& n : net.link.nodes) o.host_placements.push_back({n.address, launcher(n)});
  if (o.keys_dir.empty()) o.keys_dir = dir / "keys";
  ensureKeys(fs::absolute(o.keys_dir), hostNames(o.hosts));
  o.coordinator_args.insert(o.coordinator_args.end(), {"--network-cidr", net.cidr});
  return o;
}

// Our hosts the coordinator lists as up before their agents start: records
// of the previous run. Asked after a ping, when the coordinator has marked
// long-silent hosts down already (it checks right after serving a request).
std::set<std::string> staleHosts(const ClusterState& s, proto::RpcClient& cli,
                                 const ProgressFn& say) {
  std::set<std::string> listed = hostsUp(cli).value_or(std::set<std::string>{});
  std::set<std::string> stale;
  std::string names;
  for (const auto& h : s.hosts) {
    if (listed.count(h.name)) {
      stale.insert(h.name);
      names += " " + h.name;
    }
  }
  if (!stale.empty()) {
    say("still listed as up from the previous run:" + names +
        "; waiting for their records to turn over");
  }
  return stale;
}

void startAgents(Launch& launch, ClusterState& s, const std::vector<std::string>& extra,
                 const ProgressFn& say) {
  for (auto& h : s.hosts) {
    std::vector<std::string> argv = h.launcher;
    // clang-format off
    argv.insert(argv.end(), {
        s.agent_bin.string(),
        "--name", h.name,
        "--coordinator", s.coordinator_endpoint,
        "--listen", h.address,
        "--root", h.root.string(),
        "--run-dir", h.run_dir.string(),
        "--cgroup-parent", h.cgroup_parent,
        "--heartbeat", std::to_string(s.heartbeat_ms)});
    // clang-format on
    for (auto& a : metricsArgs(h.metrics_url)) argv.push_back(a);
    argv.insert(argv.end(), extra.begin(), extra.end());
    launch.start("agent " + h.name, argv, h.log, h.pid, h.start_time);
    say("started " + h.name + " on " + h.address + " (pid " + std::to_string(h.pid) + ", log " +
        h.log.string() + (h.metrics_url.empty() ? "" : ", metrics " + h.metrics_url) + ")");
  }
}

}  // namespace

ClusterState up(const ClusterOptions& given, const ProgressFn& progress) {
  ProgressFn say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  validate(given);
  fs::path dir = absoluteDir(given.dir);
  makeDirs(dir, 0755);
  FileLock held(dir / "cluster.lock");
  LocalCommandRunner runner;
  checkNothingInTheWay(given, dir, runner, say);
  ClusterNetwork net;
  if (!given.network_cidr.empty()) {
    net = planNetwork(runner, clusterId(dir), given.network_cidr, hostNames(given.hosts));
  }
  const ClusterOptions o = net.enabled() ? onNetwork(given, net, dir) : given;
  ClusterState s = plan(o, dir);
  s.network = net;
  auto deadline = Clock::now() + o.wait;
  Launch launch(s);
  if (s.network.enabled()) {
    writeState(s);  // first: a record names what is about to be made, for `down`
    createNetwork(runner, s.network, [&] { writeState(s); });
    say("hosts' network " + toString(s.network.link.cidr()) + " on bridge " +
        s.network.link.bridge + " (this machine " + s.network.link.bridgeAddress() +
        "); containers' network " + s.network.cidr + " routed via hostA (" + s.network.via + ")");
    checkPortFree(o.coordinator_address, o.port);
  }
  makeDirs(dir / "logs", 0755);
  makeDirs(s.coordinator_state, 0700);
  makeDirs(s.run_base, 0700);
  for (const auto& h : s.hosts) makeDirs(h.root, 0700);

  std::vector<std::string> coordinator_argv = s.coordinator_launcher;
  coordinator_argv.insert(
      coordinator_argv.end(),
      {s.coordinator_bin.string(), "--listen", s.coordinator_endpoint, "--state",
       s.coordinator_state.string(), "--heartbeat", std::to_string(s.heartbeat_ms), "--missed",
       std::to_string(kMissedHeartbeats)});
  for (auto& a : metricsArgs(s.coordinator_metrics_url)) coordinator_argv.push_back(a);
  coordinator_argv.insert(coordinator_argv.end(), o.coordinator_args.begin(), o.coordinator_args.end());
  std::vector<std::string> agent_args = o.agent_args;
  std::optional<proto::CurveClientKeys> curve;
  if (!s.keys_dir.empty()) {
    coordinator_argv.insert(coordinator_argv.end(), {"--keys", s.keys_dir.string()});
    agent_args.insert(agent_args.end(), {"--keys", s.keys_dir.string()});
    curve = proto::CurveClientKeys{proto::readKeyPair(s.keys_dir / "client.key"),
                                   proto::readPublicKey(s.keys_dir / "coordinator.pub")};
  }
  launch.start("coordinator", coordinator_argv, s.coordinator_log, s.coordinator_pid,
               s.coordinator_start_time);
  zmq::context_t ctx;
  proto::RpcClient cli(ctx, s.coordinator_endpoint, curve);
  waitForCoordinator(launch, s, cli, deadline, o.wait);
  say("coordinator up on " + s.coordinator_endpoint + " (pid " + std::to_string(s.coordinator_pid) +
      ", log " + s.coordinator_log.string() +
      (s.coordinator_metrics_url.empty() ? "" : ", metrics " + s.coordinator_metrics_url) + ")");
  std::set<std::string> stale = staleHosts(s, cli, say);
  startAgents(launch, s, agent_args, say);
  waitForAgents(launch, s, cli, std::move(stale), deadline, o.wait, say);
  if (s.network.enabled()) waitForNetwork(launch, s, deadline, o.wait, say);
  launch.commit();
  return s;
}

}  // namespace ferry::cluster
