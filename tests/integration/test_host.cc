#include "test_host.h"

#include <sys/mount.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "engine/overlay.h"

namespace ferry::testing {

std::string missingPrerequisite() {
  if (::geteuid() != 0) return "needs root (runc, overlayfs mounts, CRIU)";
  LocalCommandRunner r;
  try {
    ProcessResult p = r.run({defaultCriuPath(), "check"}, {});
    if (!p.ok()) return "'" + defaultCriuPath() + " check' fails: run tools/install-deps.sh";
  } catch (const std::exception& e) {
    return std::string("no CRIU: ") + e.what();
  }
  return "";
}

TestDirs::TestDirs() {
  std::string tag = std::to_string(::getpid()) + "-" +
                    std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  state = fs::path("/var/tmp") / ("ferry-test-" + tag);
  run = fs::path("/run") / ("ferry-test-" + tag);
  makeDirs(state, 0700);
  makeDirs(run, 0700);
}

TestDirs::~TestDirs() {
  for (const auto& dir : {state, run}) {
    // Last resort for anything a failed test left mounted.
    while (anyMountBelow(dir)) {
      std::ifstream in("/proc/self/mountinfo");
      std::string line, deepest;
      while (std::getline(in, line)) {
        std::istringstream f(line);
        std::string a, b, c, d, mp;
        f >> a >> b >> c >> d >> mp;
        if (mp.rfind(dir.string(), 0) == 0 && mp.size() > deepest.size()) deepest = mp;
      }
      if (deepest.empty() || ::umount2(deepest.c_str(), MNT_DETACH) != 0) break;
    }
    try {
      removeTree(dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test cleanup: %s\n", e.what());
    }
  }
}

TestHost::TestHost(const std::string& name, const fs::path& state_parent,
                   const fs::path& run_parent) {
  EngineConfig cfg;
  cfg.host_name = name;
  cfg.root = state_parent / name;
  cfg.run_dir = run_parent / name;
  // Unique per test run, so parallel runs and leftovers never collide.
  cfg.cgroup_parent = "/ferry-test/" + run_parent.filename().string() + "/" + name;
  engine_ = std::make_unique<Engine>(cfg, runner_);
}

TestHost::~TestHost() {
  try {
    for (const auto& c : engine_->list()) engine_->remove(c.name(), true);
    for (const auto& v : engine_->volumes().list()) engine_->volumes().remove(v);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test cleanup on %s: %s\n", config().host_name.c_str(), e.what());
  }
  // The shared test cgroup parents, when this was the last user.
  for (const char* base : {"/sys/fs/cgroup", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids",
                           "/sys/fs/cgroup/cpu", "/sys/fs/cgroup/freezer"}) {
    fs::path parent = fs::path(config().cgroup_parent).parent_path();
    for (fs::path p = parent.relative_path(); !p.empty(); p = p.parent_path()) {
      ::rmdir((fs::path(base) / p).c_str());
    }
  }
}

ImageRecord TestHost::importTestImage() { return engine_->images().import("counter", FERRY_TEST_IMAGE); }

void waitFor(const std::function<bool()>& pred, std::chrono::milliseconds timeout,
             const std::string& what) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) {
      throw std::runtime_error("timed out after " + std::to_string(timeout.count()) +
                               " ms waiting for " + what);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

std::vector<unsigned long> counterValues(Engine& e, const std::string& name) {
  std::vector<unsigned long> out;
  for (const auto& l : e.logs(name)) {
    if (l.text.rfind("counter ", 0) == 0) out.push_back(std::stoul(l.text.substr(8)));
  }
  return out;
}

ContainerSpec counterSpec(const std::string& name, const std::string& volume) {
  ContainerSpec s;
  s.name = name;
  s.image = "counter";
  s.args = {"/usr/local/bin/counter", "--file", "/data/counter", "--interval-ms", "100"};
  s.volumes = {{volume, "/data", false}};
  return s;
}

bool anyMountBelow(const fs::path& dir) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.find(" " + dir.string() + "/") != std::string::npos) return true;
  }
  return false;
}

bool runcHasContainers(const EngineConfig& cfg) {
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(runcRoot(cfg), ec)) {
    if (pathExists(e.path() / "state.json")) return true;
  }
  return false;
}

}  // namespace ferry::testing
