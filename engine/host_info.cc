#include "engine/host_info.h"

#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "engine/fs.h"

namespace ferry {

using nlohmann::json;

void to_json(json& j, const HostInfo& h) {
  j = json{{"host_name", h.host_name},
           {"engine_version", h.engine_version},
           {"kernel", h.kernel},
           {"arch", h.arch},
           {"cpu_flags", h.cpu_flags},
           {"page_size", h.page_size},
           {"criu_version", h.criu_version},
           {"runtime_name", h.runtime_name},
           {"runtime_version", h.runtime_version},
           {"conmon_version", h.conmon_version},
           {"cgroup_version", h.cgroup_version},
           {"distribution", h.distribution},
           {"distribution_version", h.distribution_version},
           {"selinux_mode", h.selinux_mode},
           {"mem_dirty_track", h.mem_dirty_track},
           {"uffd", h.uffd},
           {"memory_bytes", h.memory_bytes},
           {"cpus", h.cpus}};
}

void from_json(const json& j, HostInfo& h) {
  h.host_name = j.value("host_name", "");
  h.engine_version = j.value("engine_version", "");
  h.kernel = j.value("kernel", "");
  h.arch = j.value("arch", "");
  h.cpu_flags = j.value("cpu_flags", std::vector<std::string>{});
  h.page_size = j.value("page_size", 0u);
  h.criu_version = j.value("criu_version", "");
  h.runtime_name = j.value("runtime_name", "");
  h.runtime_version = j.value("runtime_version", "");
  h.conmon_version = j.value("conmon_version", "");
  h.cgroup_version = j.value("cgroup_version", 0);
  h.distribution = j.value("distribution", "");
  h.distribution_version = j.value("distribution_version", "");
  h.selinux_mode = j.value("selinux_mode", "");
  h.mem_dirty_track = j.value("mem_dirty_track", false);
  h.uffd = j.value("uffd", false);
  h.memory_bytes = j.value("memory_bytes", uint64_t{0});
  h.cpus = j.value("cpus", 0u);
}

namespace {

// The word after `prefix` on the first line that contains it.
std::string wordAfter(std::string_view text, std::string_view prefix) {
  auto pos = text.find(prefix);
  if (pos == std::string_view::npos) return "";
  pos += prefix.size();
  while (pos < text.size() && text[pos] == ' ') ++pos;
  auto end = text.find_first_of(" \n\t", pos);
  return std::string(text.substr(pos, end == std::string_view::npos ? end : end - pos));
}

std::string selinuxMode() {
  std::ifstream in("/sys/fs/selinux/enforce");
  int v = -1;
  if (!(in >> v)) return "disabled";
  return v == 1 ? "enforcing" : "permissive";
}

std::string readSmall(const std::string& path) {
  try {
    return readFile(path);
  } catch (const std::exception&) {
    return "";
  }
}

}  // namespace

std::string parseCriuVersion(std::string_view out) { return wordAfter(out, "Version:"); }
std::string parseRuncVersion(std::string_view out) { return wordAfter(out, "runc version"); }
std::string parseConmonVersion(std::string_view out) { return wordAfter(out, "conmon version"); }

std::vector<std::string> parseCpuFlags(std::string_view cpuinfo) {
  std::istringstream in{std::string(cpuinfo)};
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::istringstream words(line.substr(colon + 1));
    std::vector<std::string> flags;
    for (std::string w; words >> w;) flags.push_back(w);
    std::sort(flags.begin(), flags.end());
    flags.erase(std::unique(flags.begin(), flags.end()), flags.end());
    return flags;
  }
  return {};
}

std::string osReleaseValue(std::string_view os_release, std::string_view key) {
  std::istringstream in{std::string(os_release)};
  std::string line, want = std::string(key) + "=";
  while (std::getline(in, line)) {
    if (line.rfind(want, 0) != 0) continue;
    std::string v = line.substr(want.size());
    if (v.size() >= 2 && (v.front() == '"' || v.front() == '\'') && v.back() == v.front()) {
      v = v.substr(1, v.size() - 2);
    }
    return v;
  }
  return "";
}

int cgroupVersionFromFsType(int64_t statfs_type) {
  if (statfs_type == CGROUP2_SUPER_MAGIC) return 2;
  if (statfs_type == TMPFS_MAGIC || statfs_type == CGROUP_SUPER_MAGIC) return 1;
  return 0;
}

HostInfo collectHostInfo(const EngineConfig& cfg, CommandRunner& runner) {
  HostInfo h;
  h.host_name = cfg.host_name;
  h.engine_version = FERRY_VERSION;
  struct utsname u;
  if (::uname(&u) == 0) {
    h.kernel = u.release;
    h.arch = u.machine;
  }
  h.cpu_flags = parseCpuFlags(readSmall("/proc/cpuinfo"));
  h.page_size = static_cast<uint32_t>(::sysconf(_SC_PAGESIZE));
  h.cpus = static_cast<uint32_t>(::sysconf(_SC_NPROCESSORS_ONLN));
  h.memory_bytes = static_cast<uint64_t>(::sysconf(_SC_PHYS_PAGES)) * h.page_size;
  struct statfs sfs;
  if (::statfs("/sys/fs/cgroup", &sfs) == 0) h.cgroup_version = cgroupVersionFromFsType(sfs.f_type);
  std::string os = readSmall("/etc/os-release");
  h.distribution = osReleaseValue(os, "ID");
  h.distribution_version = osReleaseValue(os, "VERSION_ID");
  h.selinux_mode = selinuxMode();

  auto output = [&](std::vector<std::string> argv) {
    try {
      ProcessResult r = runner.run(argv, {});
      return r.out + r.err;
    } catch (const std::exception&) {
      return std::string();
    }
  };
  auto succeeds = [&](std::vector<std::string> argv) {
    try {
      return runner.run(argv, {}).ok();
    } catch (const std::exception&) {
      return false;
    }
  };
  h.criu_version = parseCriuVersion(output({cfg.tools.criu, "--version"}));
  h.runtime_version = parseRuncVersion(output({cfg.tools.runc, "--version"}));
  h.conmon_version = parseConmonVersion(output({cfg.tools.conmon, "--version"}));
  h.mem_dirty_track = succeeds({cfg.tools.criu, "check", "--feature", "mem_dirty_track"});
  h.uffd = succeeds({cfg.tools.criu, "check", "--feature", "uffd-noncoop"});
  return h;
}

}  // namespace ferry
