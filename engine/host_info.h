// What a host is, as far as restoring a checkpoint is concerned: recorded in
// every checkpoint and compared before a restore.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/config.h"
#include "engine/process.h"

namespace ferry {

struct HostInfo {
  std::string host_name;
  std::string engine_version;
  std::string kernel;           // uname -r
  std::string arch;             // uname -m
  std::vector<std::string> cpu_flags;  // /proc/cpuinfo "flags", sorted
  uint32_t page_size = 0;
  std::string criu_version;     // "4.1.1"
  std::string runtime_name = "runc";
  std::string runtime_version;  // "1.1.5+ds1"
  std::string conmon_version;   // "2.1.6"
  int cgroup_version = 0;       // 1 or 2
  std::string distribution;     // os-release ID
  std::string distribution_version;  // os-release VERSION_ID
  std::string selinux_mode;     // enforcing | permissive | disabled
  bool mem_dirty_track = false; // CRIU pre-dump / --track-mem usable
  bool uffd = false;            // lazy pages (post-copy) usable
  uint64_t memory_bytes = 0;
  uint32_t cpus = 0;
};
void to_json(nlohmann::json& j, const HostInfo& h);
void from_json(const nlohmann::json& j, HostInfo& h);

// Gathers everything above. Runs `criu --version`, `criu check --feature ...`,
// `runc --version` and `conmon --version` through the runner (a few hundred
// ms in all); a tool that cannot run leaves its version empty.
HostInfo collectHostInfo(const EngineConfig& cfg, CommandRunner& runner);

// Parsers, exposed for tests. Each returns "" / {} when the text has no match.
std::string parseCriuVersion(std::string_view out);    // "Version: 4.1.1\n..." -> "4.1.1"
std::string parseRuncVersion(std::string_view out);    // "runc version 1.1.5+ds1\n..." -> "1.1.5+ds1"
std::string parseConmonVersion(std::string_view out);  // "conmon version 2.1.6\n..." -> "2.1.6"
std::vector<std::string> parseCpuFlags(std::string_view cpuinfo);  // first "flags" line
// os-release KEY=value / KEY="value" lines; returns the value of key.
std::string osReleaseValue(std::string_view os_release, std::string_view key);
// cgroup version from the file system type magic of /sys/fs/cgroup.
int cgroupVersionFromFsType(int64_t statfs_type);

}  // namespace ferry
