// Probing the running host for its HostInfo (compat/host_info.h): kernel,
// architecture, CPU flags, CRIU/runc/conmon versions, cgroup version, SELinux.
// Runs the tools through the given CommandRunner; the parsers are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "compat/host_info.h"
#include "engine/runtime/config.h"
#include "engine/runtime/process.h"

namespace ferry {

// Gathers a HostInfo for this host. Runs `criu --version`, `criu check --feature ...`,
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
