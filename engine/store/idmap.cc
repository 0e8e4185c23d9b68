#include "engine/store/idmap.h"

#include <fcntl.h>
#include <linux/mount.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

namespace {

void writeMap(pid_t pid, const char* file, const UsernsRange& r) {
  std::string path = "/proc/" + std::to_string(pid) + "/" + file;
  UniqueFd fd = openFile(path, O_WRONLY);
  writeAll(fd.get(), "0 " + std::to_string(r.host) + " " + std::to_string(r.size) + "\n", path);
}

}  // namespace

UniqueFd userNamespaceFd(const UsernsRange& r) {
  Pipe ready = makePipe(), done = makePipe();
  pid_t pid = ::fork();
  if (pid < 0) throwErrno("fork for a user namespace");
  if (pid == 0) {
    // Only async-signal-safe calls: the parent may have threads. The
    // parent's closing `done` is the signal to go: this copy of its write
    // end must not keep it open.
    char c = 0;
    ::close(done.write.get());
    ::close(ready.read.get());
    if (::unshare(CLONE_NEWUSER) != 0) ::_exit(1);
    if (::write(ready.write.get(), &c, 1) != 1) ::_exit(1);
    while (::read(done.read.get(), &c, 1) < 0 && errno == EINTR) {
    }
    ::_exit(0);
  }
  ready.write.reset();
  done.read.reset();
  auto reap = [&] {
    done.write.reset();
    int status = 0;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  };
  try {
    char c;
    ssize_t n = retryEintr([&] { return ::read(ready.read.get(), &c, 1); });
    if (n != 1) throw Error(ErrorCategory::kPermanent, "could not create a user namespace (unshare failed)");
    writeMap(pid, "uid_map", r);
    writeMap(pid, "gid_map", r);
    UniqueFd ns = openFile("/proc/" + std::to_string(pid) + "/ns/user", O_RDONLY);
    reap();
    return ns;
  } catch (...) {
    reap();
    throw;
  }
}

void mountIdmapped(const fs::path& source, const fs::path& target, const UsernsRange& r) {
  makeDirs(target, 0700);
  UniqueFd ns = userNamespaceFd(r);
  UniqueFd tree(static_cast<int>(
      ::syscall(SYS_open_tree, AT_FDCWD, source.c_str(), OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC)));
  if (!tree) throwErrno("open_tree " + source.string());
  struct mount_attr attr {};
  attr.attr_set = MOUNT_ATTR_IDMAP;
  attr.userns_fd = static_cast<uint64_t>(ns.get());
  if (::syscall(SYS_mount_setattr, tree.get(), "", AT_EMPTY_PATH, &attr, sizeof attr) != 0) {
    int err = errno;
    throw Error(ErrorCategory::kIncompatible,
                "an idmapped mount of " + source.string() + " (" + std::strerror(err) +
                    "): its filesystem cannot map ids for a user namespace; run the container "
                    "with --userns=host",
                err);
  }
  if (::syscall(SYS_move_mount, tree.get(), "", AT_FDCWD, target.c_str(), MOVE_MOUNT_F_EMPTY_PATH) != 0) {
    throwErrno("attaching the idmapped mount of " + source.string() + " at " + target.string());
  }
}

}  // namespace ferry
