#include "engine/runtime/host_probe.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <sys/statfs.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "common/fs.h"
#include "engine/runtime/page_server_guard.h"

namespace ferry {

using nlohmann::json;

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

int probeCgroupVersion() {
  struct statfs sfs;
  return ::statfs("/sys/fs/cgroup", &sfs) == 0 ? cgroupVersionFromFsType(sfs.f_type) : 0;
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
  h.cgroup_version = probeCgroupVersion();
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
  h.nftables_lock = succeeds({cfg.tools.criu, "check", "--feature", "network_lock_nftables"});
  uint64_t pipe_max = 0, unprivileged_uffd = 0;
  try {
    pipe_max = std::stoull(readSmall(kPipeMaxSizePath));
    unprivileged_uffd = std::stoull(readSmall(kUnprivilegedUffdPath));
  } catch (const std::exception&) {
  }
  h.postcopy_unavailable = cfg.postcopy ? postcopyUnavailable(h.uffd, pipe_max, unprivileged_uffd == 1,
                                                              pageServerGuardInstalled(runner))
                                         : "not enabled on this host (start its agent with "
                                           "--postcopy)";
  return h;
}

std::string postcopyUnavailable(bool uffd, uint64_t pipe_max_size, bool unprivileged_uffd,
                                bool page_server_guard) {
  if (!uffd) {
    return "CRIU cannot use userfaultfd here (`criu check --feature uffd-noncoop` fails): lazy "
           "pages need it";
  }
  if (pipe_max_size < kPostcopyPipeBytes) {
    return std::string(kPipeMaxSizePath) + " is " + std::to_string(pipe_max_size) +
           " bytes, and CRIU's page server needs a pipe of " +
           std::to_string(kPostcopyPipeBytes) + " (the agent raises it at start when it runs as "
           "root; else: sysctl fs.pipe-max-size=" + std::to_string(kPostcopyPipeBytes) + ")";
  }
  if (!unprivileged_uffd) {
    return std::string(kUnprivilegedUffdPath) + " is 0, so a restored container cannot hand "
           "its memory's faults to CRIU (the agent sets it to 1 at start when it runs as root; "
           "else: sysctl vm.unprivileged_userfaultfd=1)";
  }
  if (!page_server_guard) {
    return std::string("the nftables table ") + kPageServerGuardTable +
           " is missing, which keeps CRIU's page server (on 127.0.0.1) to root while it serves "
           "a container's memory (the agent makes it at start when it runs as root with "
           "nftables; its log says why it could not)";
  }
  return "";
}

namespace {

// Raises the integer setting at `path` to `want` when lower; a sentence
// saying what it did, or "".
std::string raiseSetting(const char* path, uint64_t want, const std::string& why) {
  uint64_t now = 0;
  try {
    now = std::stoull(readSmall(path));
  } catch (const std::exception&) {
    return std::string("cannot read ") + path + ": post-copy is unavailable on this host";
  }
  if (now >= want) return "";
  std::string value = std::to_string(want) + "\n";
  UniqueFd fd(::open(path, O_WRONLY | O_CLOEXEC));
  if (!fd || ::write(fd.get(), value.data(), value.size()) != static_cast<ssize_t>(value.size())) {
    return std::string("could not raise ") + path + " from " + std::to_string(now) + " to " +
           std::to_string(want) + " (" + std::strerror(errno) +
           "): post-copy is unavailable on this host";
  }
  return std::string("raised ") + path + " from " + std::to_string(now) + " to " +
         std::to_string(want) + ", " + why;
}

}  // namespace

std::string raiseSysctlsForPostcopy() {
  std::string pipe = raiseSetting(kPipeMaxSizePath, kPostcopyPipeBytes,
                                  "which CRIU's page server needs for post-copy");
  std::string uffd = raiseSetting(
      kUnprivilegedUffdPath, 1,
      "so that a container restored by post-copy can hand its memory's faults to CRIU "
      "(the agent's --postcopy)");
  return pipe + (!pipe.empty() && !uffd.empty() ? "; " : "") + uffd;
}

}  // namespace ferry
