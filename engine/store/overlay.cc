#include "engine/store/overlay.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"
#include "engine/store/idmap.h"

namespace ferry {

void mountOverlay(const OverlayPaths& p) {
  makeDirs(p.upper);
  makeDirs(p.work, 0700);
  makeDirs(p.target);
  fs::path lower = p.lower;
  if (!p.idmap.empty()) {
    unmountIfMounted(p.idmapped_lower);
    mountIdmapped(p.lower, p.idmapped_lower, p.idmap);
    lower = p.idmapped_lower;
  }
  try {
    if (!p.idmap.empty()) {
      struct stat root {};
      if (::stat(lower.c_str(), &root) != 0) throwErrno("stat " + lower.string());
      if (::chown(p.upper.c_str(), root.st_uid, root.st_gid) != 0) {
        throwErrno("giving " + p.upper.string() + " the owner of the image's root");
      }
    }
    std::string opts = "lowerdir=" + lower.string() + ",upperdir=" + p.upper.string() +
                       ",workdir=" + p.work.string();
    if (!p.mount_label.empty()) opts += ",context=\"" + p.mount_label + "\"";
    if (::mount("overlay", p.target.c_str(), "overlay", 0, opts.c_str()) != 0) {
      throwErrno("mount overlay on " + p.target.string() + " (" + opts + ")");
    }
  } catch (...) {
    if (!p.idmap.empty()) ::umount2(p.idmapped_lower.c_str(), MNT_DETACH);
    throw;
  }
  if (!p.idmap.empty()) {
    ::umount2(p.idmapped_lower.c_str(), MNT_DETACH);
    ::rmdir(p.idmapped_lower.c_str());
  }
}

bool isMountPoint(const fs::path& path) {
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  std::string want = fs::weakly_canonical(path).string();
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devno, root, mount_point;
    fields >> id >> parent >> devno >> root >> mount_point;
    // mountinfo escapes spaces etc. as \040; our paths have none.
    if (mount_point == want) return true;
  }
  return false;
}

void unmountIfMounted(const fs::path& target) {
  while (isMountPoint(target)) {
    if (::umount2(target.c_str(), 0) == 0) continue;
    if (errno == EBUSY && ::umount2(target.c_str(), MNT_DETACH) == 0) continue;
    if (errno == EINVAL || errno == ENOENT) return;
    throwErrno("unmount " + target.string());
  }
}

}  // namespace ferry
