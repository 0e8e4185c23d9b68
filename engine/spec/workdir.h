// The working directory of a container's process, prepared in its rootfs
// before the spec is written, as libpod does: symlinks on the way are
// followed as the container would see them (an absolute target from the
// container's root, ".." never above it, at most 40 links), a path that
// lands on or below a mount (a volume, /proc, ...) is the mount's business,
// "exists but is not a directory" is an error, and a missing directory is
// created owned by the container's user -- unless the caller forbids it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace ferry {

struct Workdir {
  std::string path;       // resolved, inside the container
  bool created = false;   // made here (missing before)
  bool on_mount = false;  // on or below a mount destination
};

// `rootfs`: the container's root on the host (mounted). `mounts`: container
// paths of its mounts. Throws Error kInvalidInput with what is wrong.
Workdir prepareWorkdir(const std::filesystem::path& rootfs, const std::string& cwd,
                       const std::vector<std::string>& mounts, bool create, uint32_t uid,
                       uint32_t gid);

// A mount destination (a tmpfs), resolved the same way, never out of the
// container's root; what is missing is left for the runtime to make.
// Throws Error kInvalidInput (not a directory, a link loop, "/").
std::string resolveMountDestination(const std::filesystem::path& rootfs, const std::string& dest,
                                    const std::vector<std::string>& mounts);

}  // namespace ferry
