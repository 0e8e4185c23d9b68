// overlayfs mounts for container rootfs: image rootfs as lowerdir, the
// container's own upperdir and workdir.
#pragma once

#include <filesystem>
#include <string>

#include "engine/spec/user_namespace.h"

namespace ferry {

namespace fs = std::filesystem;

struct OverlayPaths {
  fs::path lower;
  fs::path upper;
  fs::path work;
  fs::path target;
  std::string mount_label;  // SELinux: the files' context= (empty: none)
  // A container in a user namespace: the lower layer is seen through an
  // idmapped mount (idmap.h) attached at idmapped_lower for the mount and
  // detached right after (overlayfs keeps its own reference), and the upper
  // layer's root takes the mapped owner of the lower's.
  UsernsRange idmap;
  fs::path idmapped_lower;
};

// Mounts the overlay (creating upper, work and target if missing). Throws
// Error naming the paths.
void mountOverlay(const OverlayPaths& p);

// Unmounts target if something is mounted there; falls back to a lazy
// unmount when busy. Not mounted is not an error.
void unmountIfMounted(const fs::path& target);

// Whether `path` is a mount point (per /proc/self/mountinfo).
bool isMountPoint(const fs::path& path);

}  // namespace ferry
