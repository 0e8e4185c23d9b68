// `ferry cluster down`: stop the processes, remove the containers, then check
// that nothing of the cluster is left (processes, mounts, run dirs, cgroups,
// its network) and clean up what is.
#include <signal.h>
#include <sys/mount.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "engine/runtime/process.h"
#include "tools/cluster.h"
#include "tools/cluster_process.h"

namespace ferry::cluster {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// Runs one step of the teardown; a failure becomes a problem, not the end.
template <class F>
void step(const std::string& what, DownReport& r, F&& f) {
  try {
    f();
  } catch (const std::exception& e) {
    r.problems.push_back(what + ": " + e.what());
  }
}

bool below(const std::string& path, const fs::path& dir) {
  std::string d = dir.string();
  return path.size() > d.size() && path.compare(0, d.size(), d) == 0 && path[d.size()] == '/';
}

// Removes every container of one host with the host-local tool (the agent,
// which would do it over the network, is stopped by now).
int removeContainers(const ClusterState& s, const ClusterHost& h, DownReport& r) {
  if (!pathExists(h.root / "containers")) return 0;
  fs::path tool = s.engine_bin;
  if (tool.empty() || ::access(tool.c_str(), X_OK) != 0) tool = findTool("ferry-engine");
  std::vector<std::string> base = {
      tool,      "--host",          h.name,          "--root", h.root, "--run-dir",
      h.run_dir, "--cgroup-parent", h.cgroup_parent, "--json"};
  LocalCommandRunner runner;
  auto run = [&](std::vector<std::string> args, std::chrono::seconds timeout) {
    std::vector<std::string> argv = base;
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult p = runner.run(argv, {.timeout = timeout});
    if (!p.ok()) {
      std::string err = p.err.empty() ? p.out : p.err;
      while (!err.empty() && err.back() == '\n') err.pop_back();
      throw Error(ErrorCategory::kPermanent,
                  "ferry-engine " + args.front() + " failed (" + p.describe() + "): " + err);
    }
    return p.out;
  };
  int removed = 0;
  for (const auto& c : json::parse(run({"ps"}, std::chrono::seconds(60)))) {
    std::string name = c.at("name").get<std::string>();
    step("removing container " + name + " on " + h.name, r, [&] {
      run({"rm", "-f", name}, std::chrono::seconds(120));
      ++removed;
    });
  }
  return removed;
}

// /proc/PID/cmdline as arguments.
std::vector<std::string> cmdline(const std::string& pid) {
  std::ifstream in("/proc/" + pid + "/cmdline", std::ios::binary);
  std::vector<std::string> args;
  std::string a;
  while (std::getline(in, a, '\0')) args.push_back(a);
  return args;
}

// Whether process `pid` is one of the cluster's leftovers: in one of its
// cgroups (a container's process), or a conmon working in its run dirs.
bool isLeftover(const ClusterState& s, const std::string& pid) {
  std::ifstream cg("/proc/" + pid + "/cgroup");
  std::string line;
  while (std::getline(cg, line)) {
    std::string path = line.substr(line.find(':', line.find(':') + 1) + 1);
    if (path == s.cgroup_base || below(path, s.cgroup_base)) return true;
  }
  auto args = cmdline(pid);
  if (args.empty() || fs::path(args[0]).filename() != "conmon") return false;
  return std::any_of(args.begin(), args.end(), [&](const std::string& a) {
    return a.find(s.run_base.string() + "/") != std::string::npos;
  });
}

// Kills what `ferry-engine rm` should have left nothing of.
void killLeftoverProcesses(const ClusterState& s, DownReport& r) {
  std::vector<ProcessRef> left;
  std::string self = std::to_string(::getpid());
  for (const auto& e : fs::directory_iterator("/proc")) {
    std::string pid = e.path().filename();
    if (pid.find_first_not_of("0123456789") != std::string::npos || pid == self) continue;
    // A zombie has ended: it only waits for a parent to reap it (an orphan
    // whose monitor died with it waits for init, which may never reap).
    if (!processAlive(std::stoi(pid)) || !isLeftover(s, pid)) continue;
    auto args = cmdline(pid);
    std::string cmd = args.empty() ? "?" : args[0];
    r.problems.push_back("process " + pid + " (" + cmd +
                         ") of the cluster was still running; killed it");
    int n = std::stoi(pid);
    left.push_back({cmd, n, processStartTime(n), {}});
  }
  for (auto& p : left) ::kill(p.pid, SIGKILL);
  stopProcesses(left, std::chrono::seconds(5), r.problems);
}

// Mount points below DIR or the run dirs, deepest first.
std::vector<std::string> leftoverMounts(const ClusterState& s) {
  std::vector<std::string> out;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream f(line);
    std::string id, parent, dev, root, mp;
    f >> id >> parent >> dev >> root >> mp;
    // mountinfo escapes space, tab, newline and backslash as \ooo.
    std::string path;
    for (size_t i = 0; i < mp.size(); ++i) {
      if (mp[i] == '\\' && i + 3 < mp.size()) {
        path += static_cast<char>(std::stoi(mp.substr(i + 1, 3), nullptr, 8));
        i += 3;
      } else {
        path += mp[i];
      }
    }
    if (below(path, s.dir) || path == s.run_base.string() || below(path, s.run_base)) {
      out.push_back(path);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  return out;
}

void unmountLeftovers(const ClusterState& s, DownReport& r) {
  for (const auto& mp : leftoverMounts(s)) {
    if (::umount2(mp.c_str(), MNT_DETACH) == 0) {
      r.problems.push_back("mount " + mp + " was left behind; unmounted it (lazily)");
    } else {
      r.problems.push_back("mount " + mp +
                           " is left behind and could not be unmounted: " + std::strerror(errno));
    }
  }
}

// Every cgroup hierarchy's copy of the cluster's cgroup tree: v2 has one,
// v1 one per controller (and /sys/fs/cgroup/unified on hybrid systems).
std::vector<fs::path> cgroupTrees(const ClusterState& s) {
  std::vector<fs::path> bases = {"/sys/fs/cgroup"};
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (e.is_directory(ec) && !e.is_symlink(ec)) bases.push_back(e.path());
  }
  std::vector<fs::path> out;
  for (const auto& b : bases) {
    fs::path t = b / fs::path(s.cgroup_base).relative_path();
    if (pathExists(t)) out.push_back(t);
  }
  return out;
}

// Removes the cluster's cgroups, leaves first: a cgroup directory goes with
// rmdir once it has no children and no processes (its files are the kernel's).
void removeCgroups(const ClusterState& s, DownReport& r) {
  for (const auto& tree : cgroupTrees(s)) {
    std::vector<fs::path> dirs = {tree};
    std::error_code ec;
    for (auto it = fs::recursive_directory_iterator(tree, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      if (it->is_directory(ec) && !it->is_symlink(ec)) dirs.push_back(it->path());
    }
    std::sort(dirs.begin(), dirs.end(), [](const fs::path& a, const fs::path& b) {
      return a.string().size() > b.string().size();
    });
    for (const auto& d : dirs) {
      if (::rmdir(d.c_str()) != 0 && errno != ENOENT) {
        r.problems.push_back("cgroup " + d.string() +
                             " could not be removed: " + std::strerror(errno));
      }
    }
  }
}

}  // namespace

DownReport down(const fs::path& dir, const ProgressFn& progress) {
  auto say = [&](const std::string& line) {
    if (progress) progress(line);
  };
  auto missing = [&] {
    return Error(
        ErrorCategory::kInvalidInput,
        "no cluster in " + dir.string() + " (no cluster.json there): nothing to take down");
  };
  if (!readState(dir)) throw missing();
  FileLock held(fs::absolute(dir) / "cluster.lock");
  auto found = readState(dir);  // as it is now that no `up` runs
  if (!found) throw missing();
  const ClusterState& s = *found;

  DownReport r;
  // Agents first: once stopped they no longer act on the containers.
  std::vector<ProcessRef> agents, coordinator;
  for (const auto& h : s.hosts) agents.push_back({"agent " + h.name, h.pid, h.start_time, {}});
  coordinator.push_back({"coordinator", s.coordinator_pid, s.coordinator_start_time, {}});
  r.processes_stopped += stopProcesses(agents, std::chrono::seconds(10), r.problems);
  r.processes_stopped += stopProcesses(coordinator, std::chrono::seconds(10), r.problems);
  say("stopped " + std::to_string(r.processes_stopped) + " processes");

  // Agents leave their containers running on SIGTERM (a restarted agent
  // adopts them); a cluster going down takes them along.
  for (const auto& h : s.hosts) {
    step("removing the containers of " + h.name, r, [&] {
      int n = removeContainers(s, h, r);
      r.containers_removed += n;
      if (n > 0) say("removed " + std::to_string(n) + " containers on " + h.name);
    });
  }

  step("looking for leftover processes", r, [&] { killLeftoverProcesses(s, r); });
  step("looking for leftover mounts", r, [&] { unmountLeftovers(s, r); });
  step("removing " + s.run_base.string(), r, [&] { removeTree(s.run_base); });
  step("removing the cluster's cgroups", r, [&] { removeCgroups(s, r); });
  if (s.network.enabled()) {
    // After the containers: each one's namespace went with it, and with
    // that its veth into its host's namespace.
    step("removing the cluster network", r, [&] {
      LocalCommandRunner runner;
      for (auto& p : removeNetwork(runner, s.network)) r.problems.push_back(std::move(p));
      for (const auto& left : networkLeftovers(runner, s.network)) {
        r.problems.push_back(left + " of the cluster network is still there");
      }
      say("removed the cluster network (route to " + s.network.cidr + ", bridge " +
          s.network.link.bridge + ", " + std::to_string(s.network.link.nodes.size()) +
          " hosts' namespaces)");
    });
  }

  bool all_stopped = true;
  for (auto* group : {&agents, &coordinator}) {
    for (auto& p : *group) all_stopped = all_stopped && !isRunning(p);
  }
  if (all_stopped) {
    step("removing the cluster record", r, [&] { fs::remove(fs::absolute(dir) / "cluster.json"); });
    say("cluster in " + s.dir.string() + " is down (state and logs kept)");
  } else {
    r.problems.push_back("kept " + (fs::absolute(dir) / "cluster.json").string() +
                         ": some of its processes still run");
  }
  return r;
}

}  // namespace ferry::cluster
