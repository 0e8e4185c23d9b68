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

// Post-copy needs two host-wide settings beyond uffd:
// - CRIU's page server sizes its pipe to 4 MiB with F_SETPIPE_SZ, which
//   beyond /proc/sys/fs/pipe-max-size needs CAP_SYS_RESOURCE; the failure
//   is ignored and the lazy dump then fails ("page-pipe: splice: -1: Bad
//   file descriptor"). So pipe-max-size >= kPostcopyPipeBytes.
// - The restored task opens its userfaultfd itself, inside the container's
//   namespaces, without CAP_SYS_PTRACE of the host: the kernel allows that
//   only with /proc/sys/vm/unprivileged_userfaultfd = 1 (CRIU cannot use
//   UFFD_USER_MODE_ONLY: a system call reading a page still missing must
//   wait for it, not fail).
inline constexpr uint64_t kPostcopyPipeBytes = uint64_t{4} << 20;
inline constexpr const char* kPipeMaxSizePath = "/proc/sys/fs/pipe-max-size";
inline constexpr const char* kUnprivilegedUffdPath = "/proc/sys/vm/unprivileged_userfaultfd";

// Raises both settings where they fall short (root may). Returns what it
// did, a sentence per setting, for the log ("" when nothing was needed).
std::string raiseSysctlsForPostcopy();

// Why post-copy cannot run on a host with these facts; "" when it can.
// `page_server_guard`: whether the nftables guard of CRIU's page server is
// in place (page_server_guard.h; the agent makes it at start).
std::string postcopyUnavailable(bool uffd, uint64_t pipe_max_size, bool unprivileged_uffd,
                                bool page_server_guard);

// Parsers, exposed for tests. Each returns "" / {} when the text has no match.
std::string parseCriuVersion(std::string_view out);    // "Version: 4.1.1\n..." -> "4.1.1"
std::string parseRuncVersion(std::string_view out);    // "runc version 1.1.5+ds1\n..." -> "1.1.5+ds1"
std::string parseConmonVersion(std::string_view out);  // "conmon version 2.1.6\n..." -> "2.1.6"
std::vector<std::string> parseCpuFlags(std::string_view cpuinfo);  // first "flags" line
// os-release KEY=value / KEY="value" lines; returns the value of key.
std::string osReleaseValue(std::string_view os_release, std::string_view key);
// cgroup version from the file system type magic of /sys/fs/cgroup.
int cgroupVersionFromFsType(int64_t statfs_type);
// This host's: 1 (v1 or hybrid), 2, or 0 when /sys/fs/cgroup is neither.
// One statfs; collectHostInfo's cgroup_version is this.
int probeCgroupVersion();

}  // namespace ferry
