// File-system helpers: whole-file read/write, trees, temp dirs, and opening
// paths strictly beneath a root directory (no symlink, no "..", no mount
// escapes), which is how everything reads or writes inside a container rootfs,
// an image or a checkpoint.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/fd.h"

namespace ferry {

namespace fs = std::filesystem;

std::string readFile(const fs::path& path);
// The file's content, or nullopt when there is no such file (ENOENT: it may
// also have been removed just now, by another thread or process). Other
// failures throw as readFile.
std::optional<std::string> readFileIfExists(const fs::path& path);
// Writes to a temp file beside `path`, fsyncs it and renames it over `path`:
// readers see the old or the new content, never a torn one.
void writeFileAtomic(const fs::path& path, std::string_view content, int mode = 0644);
// mkdir -p; the last component gets `mode` when this call creates it.
void makeDirs(const fs::path& path, int mode = 0755);
bool pathExists(const fs::path& path);  // lstat-based: a dangling symlink exists

// The entry names of the open directory dir_fd (without "." and ".."), in
// readdir order. `what` names it in errors. dir_fd's offset is not used.
std::vector<std::string> listDirAt(int dir_fd, const std::string& what);

// Removes a tree without following symlinks and without crossing into another
// file system (a mount inside the tree is an error, never descended: removing a
// container directory must not delete through a still-mounted rootfs).
// A missing path is not an error.
void removeTree(const fs::path& path);

// removeTree on a detached thread, for large trees whose removal (freeing
// gigabytes of cached pages takes a good part of a second) must not hold up
// the caller. Failures are ignored: callers name such trees so that a later
// sweep finds what a crash left.
void removeTreeInBackground(fs::path path);

// Removes everything inside the directory `path` (same rules as removeTree)
// and keeps the directory itself: for directories the caller did not create,
// or that are mount points.
void emptyDir(const fs::path& path);

// Sum of the apparent sizes of regular files below path.
uint64_t treeSize(const fs::path& path);

// Opens `rel` beneath the directory fd `root` with openat2(RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS): fails (ELOOP/EXDEV) instead of
// following a symlink or leaving root. O_CLOEXEC is added.
UniqueFd openBeneath(int root_fd, const fs::path& rel, int flags, int mode = 0);

// An exclusive flock(2) on a file (created if missing), held until
// destruction. Blocks until the lock is free. flock locks belong to the open
// file, so two FileLocks on one path exclude each other across threads as
// well as processes.
//
// A lock file may be removed by its holder (removeFile): one who was waiting
// for it then finds the lock it got is on a file no longer at that path, and
// opens the path again. So lock files need not pile up.
class FileLock {
 public:
  explicit FileLock(const fs::path& file);
  // Unlinks the lock file while the lock is held. From then on the lock no
  // longer excludes a newcomer (who makes a new file at the path), so it is
  // the last thing done under it.
  void removeFile();

 private:
  fs::path path_;
  UniqueFd fd_;
};

// A directory made with mkdtemp under `parent`, removed with everything in it
// on destruction unless released.
class TempDir {
 public:
  explicit TempDir(const fs::path& parent = fs::temp_directory_path(),
                   const std::string& prefix = "ferry-");
  TempDir(TempDir&& o) noexcept;
  TempDir& operator=(TempDir&&) = delete;
  TempDir(const TempDir&) = delete;
  ~TempDir();
  const fs::path& path() const { return path_; }
  fs::path release();

 private:
  fs::path path_;
};

}  // namespace ferry
