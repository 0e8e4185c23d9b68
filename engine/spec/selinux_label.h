// SELinux labels of a container: the process label its init runs with and
// the mount label its rootfs, volumes and tmpfs carry -- both or neither, as
// libpod. Pure logic here (contexts, levels, --security-opt label=...); the
// engine asks libselinux whether SELinux is on and for the container
// contexts file (selinux_lxc_contexts_path()).
#pragma once

#include <cstdint>
#include <set>
#include <string>
#include <vector>

namespace ferry {

struct SelinuxLabels {
  std::string process;  // e.g. system_u:system_r:container_t:s0:c12,c345
  std::string mount;    // e.g. system_u:object_r:container_file_t:s0:c12,c345
  bool empty() const { return process.empty() && mount.empty(); }
};

// The base contexts of the policy's container contexts file (lines
// `process = "..."` and `file = "..."`; comments and other keys ignored).
// Throws Error kPermanent when either is missing or not a context.
SelinuxLabels parseLxcContexts(const std::string& text);

// "user:role:type:level" with its level (everything after the third colon)
// replaced. Throws Error kInvalidInput for a string that is not a context.
std::string withLevel(const std::string& context, const std::string& level);
// The level of a context ("" when it has none).
std::string levelOf(const std::string& context);

// A level "s0:cA,cB" (A < B < 1024) that is not in `used`, from `seed`
// (callers pass a random value; tests a fixed one). Throws Error kPermanent
// when every pair is taken.
std::string pickMcsLevel(uint64_t seed, const std::set<std::string>& used);

// Validates `--security-opt label=X` values as Podman takes them: disable,
// type:T, level:L, user:U, role:R, filetype:T. Throws Error kInvalidInput
// naming the bad one.
void validateLabelOptions(const std::vector<std::string>& opts);
bool labelsDisabled(const std::vector<std::string>& opts);

// The labels for a container: neither when SELinux is off or the caller
// said label=disable; otherwise the policy's base contexts with the
// caller's user/role/type (process), filetype (mount) and level (both; a
// fresh unique MCS level when none is given). Both or neither, always.
SelinuxLabels containerLabels(bool selinux_enabled, const std::string& lxc_contexts,
                              const std::vector<std::string>& opts,
                              const std::set<std::string>& used_levels, uint64_t seed);

// The label a z (shared) relabel gives a volume: the mount label at level
// s0, readable by every container; Z (private) uses the mount label as is.
std::string relabelContext(const std::string& mount_label, char mode);

}  // namespace ferry
