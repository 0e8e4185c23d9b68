#include "common/fs.h"

#include <dirent.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <thread>
#include <vector>

#include "common/error.h"

namespace ferry {

std::string readFile(const fs::path& path) {
  UniqueFd fd = openFile(path, O_RDONLY);
  return readAll(fd.get(), path);
}

std::optional<std::string> readFileIfExists(const fs::path& path) {
  int fd = retryEintr([&] { return ::open(path.c_str(), O_RDONLY | O_CLOEXEC); });
  if (fd < 0) {
    if (errno == ENOENT) return std::nullopt;
    throwErrno("open " + path.string());
  }
  UniqueFd owned(fd);
  return readAll(owned.get(), path);
}

void writeFileAtomic(const fs::path& path, std::string_view content, int mode) {
  fs::path tmp = path;
  tmp += ".tmp";
  {
    UniqueFd fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    writeAll(fd.get(), content, tmp);
    if (::fsync(fd.get()) != 0) throwErrno("fsync " + tmp.string());
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) throwErrno("rename " + tmp.string());
}

void makeDirs(const fs::path& path, int mode) {
  std::error_code ec;
  bool created = fs::create_directories(path, ec);
  if (ec) throwErrno("mkdir -p " + path.string(), ec.value());
  // Only a directory made here gets `mode`: an existing one (say /tmp) keeps
  // its own.
  if (created && ::chmod(path.c_str(), mode) != 0) throwErrno("chmod " + path.string());
}

std::vector<std::string> listDirAt(int dir_fd, const std::string& what) {
  int copy = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (copy < 0) throwErrno("dup " + what);
  std::unique_ptr<DIR, int (*)(DIR*)> dir(::fdopendir(copy), &::closedir);
  if (!dir) {
    ::close(copy);
    throwErrno("opendir " + what);
  }
  ::rewinddir(dir.get());  // the dup shares the offset with dir_fd
  std::vector<std::string> names;
  errno = 0;
  while (dirent* e = ::readdir(dir.get())) {
    std::string_view n = e->d_name;
    if (n != "." && n != "..") names.emplace_back(n);
  }
  if (errno != 0) throwErrno("readdir " + what);
  return names;
}

bool pathExists(const fs::path& path) {
  struct stat st;
  return ::lstat(path.c_str(), &st) == 0;
}

namespace {

// Removes every entry of the open directory dfd, staying on device `dev`.
void removeContents(int dfd, dev_t dev, const std::string& where) {
  std::vector<std::pair<std::string, bool>> entries;  // name, is_dir
  for (auto& name : listDirAt(dfd, where)) {
    struct stat st;
    if (::fstatat(dfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) continue;
    entries.emplace_back(std::move(name), S_ISDIR(st.st_mode));
  }
  for (const auto& [name, is_dir] : entries) {
    std::string sub = where + "/" + name;
    if (is_dir) {
      int child = ::openat(dfd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) throwErrno("open " + sub);
      UniqueFd guard(child);
      struct stat st;
      if (::fstat(child, &st) != 0) throwErrno("stat " + sub);
      if (st.st_dev != dev) {
        throw Error(ErrorCategory::kPermanent,
                    "refusing to remove " + sub + ": it is a mount point (unmount it first)");
      }
      removeContents(child, dev, sub);
    }
    if (::unlinkat(dfd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
      throwErrno("remove " + sub);
    }
  }
}

}  // namespace

void removeTree(const fs::path& path) {
  struct stat st;
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return;
    throwErrno("stat " + path.string());
  }
  if (S_ISDIR(st.st_mode)) {
    UniqueFd fd = openFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    // The top itself may be a mount point of the same tree's parent; what
    // matters is that nothing below it lives on another device.
    removeContents(fd.get(), st.st_dev, path);
    if (::rmdir(path.c_str()) != 0 && errno != ENOENT) throwErrno("rmdir " + path.string());
  } else if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    throwErrno("unlink " + path.string());
  }
}

void emptyDir(const fs::path& path) {
  UniqueFd fd = openFile(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throwErrno("stat " + path.string());
  removeContents(fd.get(), st.st_dev, path);
}

uint64_t treeSize(const fs::path& path) {
  uint64_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(path, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    if (it->is_regular_file(ec) && !it->is_symlink(ec)) total += it->file_size(ec);
  }
  return total;
}

UniqueFd openBeneath(int root_fd, const fs::path& rel, int flags, int mode) {
  struct open_how how {};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? static_cast<uint64_t>(mode) : 0;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
  std::string p = rel.empty() ? "." : rel.string();
  long fd = retryEintr([&] { return ::syscall(SYS_openat2, root_fd, p.c_str(), &how, sizeof how); });
  if (fd < 0) throwErrno("open " + p + " beneath its root");
  return UniqueFd(static_cast<int>(fd));
}

FileLock::FileLock(const fs::path& file) : path_(file) {
  for (;;) {
    fd_ = openFile(file, O_RDWR | O_CREAT, 0600);
    if (retryEintr([&] { return ::flock(fd_.get(), LOCK_EX); }) != 0) throwErrno("flock " + file.string());
    struct stat held {}, named {};
    if (::fstat(fd_.get(), &held) != 0) throwErrno("stat " + file.string());
    if (::stat(file.c_str(), &named) == 0 && named.st_dev == held.st_dev && named.st_ino == held.st_ino) {
      return;
    }
    // Its holder removed it while we waited: the path names another file
    // (or none) now, and that one is the lock.
  }
}

void FileLock::removeFile() {
  if (::unlink(path_.c_str()) != 0 && errno != ENOENT) throwErrno("unlink " + path_.string());
}

TempDir::TempDir(const fs::path& parent, const std::string& prefix) {
  makeDirs(parent);
  std::string tmpl = (parent / (prefix + "XXXXXX")).string();
  if (!::mkdtemp(tmpl.data())) throwErrno("mkdtemp in " + parent.string());
  path_ = tmpl;
}

TempDir::TempDir(TempDir&& o) noexcept : path_(std::move(o.path_)) { o.path_.clear(); }

void removeTreeInBackground(fs::path path) {
  std::thread([p = std::move(path)] {
    try {
      removeTree(p);
    } catch (const std::exception&) {
      // Left for the owner's sweep.
    }
  }).detach();
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  try {
    removeTree(path_);
  } catch (const std::exception&) {
    // Destructors must not throw; a leftover temp dir is logged by its owner's
    // cleanup checks, not here.
  }
}

fs::path TempDir::release() {
  fs::path p = std::move(path_);
  path_.clear();
  return p;
}

}  // namespace ferry
