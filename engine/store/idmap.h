// Idmapped mounts (mount_setattr(2) with MOUNT_ATTR_IDMAP): a container in
// a user namespace of its own (user_namespace.h) sees the image's files,
// owned by host root, as its own root's, and a volume's files with the ids
// they have on disk -- without a chown of anything.
#pragma once

#include <filesystem>

#include "common/fd.h"
#include "engine/spec/user_namespace.h"

namespace ferry {

namespace fs = std::filesystem;

// A user namespace whose ids [0, r.size) are the host's [r.host, ...), as
// an fd (/proc/PID/ns/user of a short-lived child). Throws Error.
UniqueFd userNamespaceFd(const UsernsRange& r);

// Attaches at `target` (a directory, created if missing) a bind mount of
// `source` that shows what is owned by id N on disk as owned by
// r.toHost(N), and writes through it the other way round. Throws Error
// naming the paths, saying when the filesystem cannot do it.
void mountIdmapped(const fs::path& source, const fs::path& target, const UsernsRange& r);

}  // namespace ferry
