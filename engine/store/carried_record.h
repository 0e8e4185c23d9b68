// The receiving side's check of a container record a checkpoint carries (a
// bundle's or a directory's checkpoint.json, from another host or the
// wire): every field that could reach this host is validated here, whatever
// the sender would or would not produce. Pure logic: no I/O.
#pragma once

#include "engine/store/container_store.h"

namespace ferry {

// Throws Error kInvalidInput naming the field and what it carries when a
// field is malformed or asks for what ferry does not restore: an overlay (O)
// volume or host upperdir/workdir, socket activation (listen_fds), a volume
// or tmpfs destination that is not a clean absolute path below /, bad tmpfs
// options, secret references, label options or SELinux labels, user, groups,
// cwd, umask, stop signal, sdnotify mode, env or annotation entries, a
// notify status with a newline, an image id that is not a sha256 digest, or
// a user namespace range ferry would not hand out (or one without --userns=
// auto, or auto without one).
void validateCarriedRecord(const ContainerRecord& r);

}  // namespace ferry
