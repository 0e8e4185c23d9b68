// How an archive is kept inside the root (see layer_apply.h for the contract):
//  * member names are normalised and refused if absolute or holding "..";
//  * extraction runs in a thread whose cwd (made private with
//    unshare(CLONE_FS)) is the root, because libarchive writes relative to the
//    cwd and the process's other threads must not see it move;
//  * libarchive's SECURE_* flags, and before each entry we remove any symlink
//    standing where the entry needs a parent directory;
//  * hardlink targets must already exist beneath the root, reached without a
//    symlink;
//  * whiteouts delete (kApply) through fds opened with openBeneath, and
//    overlay markers (kToOverlay) are made through directory fds opened one
//    component at a time with O_NOFOLLOW, never by path.
#include "engine/image/layer_apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <selinux/selinux.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_set>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kReadBlock = 1 << 16;
constexpr char kNotATar[] = "not a tar archive (plain, gzip, zstd, xz or bzip2)";

// No ARCHIVE_EXTRACT_FFLAGS: an immutable flag from an archive would make the
// tree impossible to remove. UNLINK replaces whatever stands where an entry goes,
// which is also what overlayfs shows when an upper layer replaces a file.
constexpr int kExtractFlags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK |
                              ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME |
                              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL;

std::pair<std::string, std::string> splitPath(const std::string& rel) {
  size_t slash = rel.rfind('/');
  if (slash == std::string::npos) return {"", rel};
  return {rel.substr(0, slash), rel.substr(slash + 1)};
}

std::string joinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// Normalises an archive member name to "a/b/c" ("" for the root).
std::string memberPath(const char* raw) {
  std::string_view name = raw ? raw : "";
  if (name.empty()) throwInvalidInput("empty member name");
  if (name.front() == '/') throwInvalidInput("absolute paths are not allowed");
  std::string out;
  for (size_t pos = 0; pos <= name.size();) {
    size_t end = std::min(name.find('/', pos), name.size());
    std::string_view part = name.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") throwInvalidInput("paths with '..' are not allowed");
    out += out.empty() ? "" : "/";
    out += part;
  }
  return out;
}

// The NAME of a whiteout member's base name ".wh.NAME".
std::string whiteoutTarget(const std::string& base) {
  std::string victim = base.substr(kWhiteoutPrefix.size());
  if (victim.empty() || victim == "." || victim == "..")
    throwInvalidInput("whiteout names no file");
  return victim;
}

// --- Trees, through fds only --------------------------------------------

// Removes `name` in `dir_fd`, and everything below it if it is a directory,
// never following a symlink. A missing entry is not an error.
void removeAt(int dir_fd, const std::string& name) {
  struct stat st;
  if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (errno == ENOENT) return;
    throwErrno("stat " + name);
  }
  bool is_dir = S_ISDIR(st.st_mode);
  if (is_dir) {
    UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throwErrno("open " + name);
    for (const auto& child : listDirAt(sub.get(), name)) removeAt(sub.get(), child);
  }
  if (::unlinkat(dir_fd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
    throwErrno("remove " + name);
  }
}

// --- libarchive ---------------------------------------------------------

using ArchivePtr = std::unique_ptr<archive, int (*)(archive*)>;

// libarchive reports bad input and disk trouble alike; disk trouble comes
// with a real errno.
[[noreturn]] void archiveFailed(archive* a, const std::string& what) {
  int err = archive_errno(a);
  const char* text = archive_error_string(a);
  std::string message = what + ": " + (text ? text : "unknown libarchive error");
  if (err == ENOSPC || err == EDQUOT || err == EIO || err == EROFS || err == ENOMEM) {
    throw Error(ErrorCategory::kPermanent, message, err);
  }
  throwInvalidInput(message);
}

// Only the tar format is enabled: a zip or cpio must not pass as a rootfs.
ArchivePtr openTar(int fd) {
  ArchivePtr a(archive_read_new(), &archive_read_free);
  if (!a) throw std::bad_alloc();
  archive_read_support_filter_all(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_fd(a.get(), fd, kReadBlock) != ARCHIVE_OK) {
    archiveFailed(a.get(), kNotATar);
  }
  return a;
}

// The budget as it stands while `in` is read: `raw` apparent bytes applied.
void checkBudget(const ExtractBudget* budget, archive* in, uint64_t raw) {
  if (!budget) return;
  uint64_t wire = budget->wire + static_cast<uint64_t>(archive_filter_bytes(in, -1));
  checkExpansion(budget->limits, budget->raw + raw, wire, budget->what);
}

// Counts apparent progress (offset + size): holes count as written.
void copyData(archive* in, archive* out, const ExtractBudget* budget) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return;
    if (r < ARCHIVE_WARN) archiveFailed(in, "reading");
    checkBudget(budget, in, static_cast<uint64_t>(offset) + size);
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) {
      archiveFailed(out, "writing");
    }
  }
}

// trusted.overlay.* (and user.overlay.*) steer overlayfs -- opaque dirs,
// redirects, metacopy -- once this rootfs is a lower layer; an image must not
// bring its own. security.selinux only where SELinux enforces it.
void filterXattrs(archive_entry* e, bool keep_selinux) {
  if (archive_entry_xattr_reset(e) == 0) return;
  std::vector<std::pair<std::string, std::string>> keep;
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string_view n = name;
    if (n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")) continue;
    if (n == "security.selinux" && !keep_selinux) continue;
    keep.emplace_back(n, std::string(static_cast<const char*>(value), size));
  }
  archive_entry_xattr_clear(e);
  for (const auto& [n, v] : keep) archive_entry_xattr_add_entry(e, n.c_str(), v.data(), v.size());
}

// Runs f in a new thread whose cwd is dir_fd, private to it; rethrows here.
template <class F>
void runInDir(int dir_fd, F&& f) {
  std::exception_ptr failure;
  std::thread worker([&] {
    try {
      if (::unshare(CLONE_FS) != 0) throwErrno("unshare(CLONE_FS)");
      if (::fchdir(dir_fd) != 0) throwErrno("fchdir to the rootfs");
      f();
    } catch (...) {
      failure = std::current_exception();
    }
  });
  worker.join();
  if (failure) std::rethrow_exception(failure);
}

// Extracts one tar stream into root_fd, which must be the calling thread's
// cwd.
class LayerApplier {
 public:
  LayerApplier(int root_fd, Whiteouts whiteouts, ExtractBudget* budget)
      : root_fd_(root_fd),
        mode_(whiteouts),
        keep_selinux_(::is_selinux_enabled() > 0),
        budget_(budget) {}

  // Returns the number of members.
  size_t apply(archive* in);

 private:
  void applyMember(archive* in, archive* out, archive_entry* e, const std::string& rel);
  void applyEntry(archive* in, archive* out, archive_entry* e, const std::string& rel);
  void checkHardlink(archive_entry* e) const;
  void clearParents(const std::string& rel) const;
  void clearWayFor(const std::string& rel) const;
  void whiteout(const std::string& rel);
  void clearOpaque(int dir_fd, const std::string& rel_dir);
  std::optional<UniqueFd> openDir(const std::string& rel) const;
  void noteExtracted(std::string rel);
  void noteDirTimes(archive_entry* e, const std::string& rel);
  void restoreDirTimes() const;
  void noteMarker(const std::string& rel);
  void placeMarkers() const;
  void makeWhiteout(const std::string& dir, const std::string& name) const;
  std::optional<UniqueFd> makeDirsBeneath(const std::string& rel) const;

  int root_fd_;
  Whiteouts mode_;
  bool keep_selinux_;
  ExtractBudget* budget_;
  std::unordered_set<std::string> this_layer_;  // kApply: members of this tar and their parents
  std::unordered_set<std::string> own_symlinks_;  // symlinks this tar made
  std::vector<std::string> opaque_dirs_;        // kToOverlay: DIR of each DIR/.wh..wh..opq
  std::vector<std::pair<std::string, std::string>> whiteouts_;  // kToOverlay: DIR, NAME
  std::vector<std::pair<std::string, std::array<timespec, 2>>> dir_times_;
};

size_t LayerApplier::apply(archive* in) {
  ArchivePtr out(archive_write_disk_new(), &archive_write_free);
  if (!out) throw std::bad_alloc();
  archive_write_disk_set_options(out.get(), kExtractFlags);
  if (mode_ == Whiteouts::kToOverlay && !listDirAt(root_fd_, "the root").empty()) {
    throwInvalidInput("the overlay upperdir to extract into is not empty");
  }
  size_t count = 0;
  archive_entry* e = nullptr;
  for (;;) {
    int r = archive_read_next_header(in, &e);
    if (r == ARCHIVE_EOF) break;
    if (r < ARCHIVE_WARN) {
      archiveFailed(in, count == 0 ? kNotATar : "reading the archive");
    }
    ++count;
    const char* raw = archive_entry_pathname(e);
    withContext("archive member '" + std::string(raw ? raw : "") + "'",
                [&] { applyMember(in, out.get(), e, memberPath(raw)); });
  }
  if (archive_write_close(out.get()) < ARCHIVE_WARN) archiveFailed(out.get(), "finishing");
  if (budget_) budget_->wire += static_cast<uint64_t>(archive_filter_bytes(in, -1));
  if (mode_ == Whiteouts::kToOverlay) placeMarkers();
  restoreDirTimes();
  return count;
}

void LayerApplier::applyMember(archive* in, archive* out, archive_entry* e,
                               const std::string& rel) {
  bool marker = splitPath(rel).second.starts_with(kWhiteoutPrefix);
  if (!marker || mode_ == Whiteouts::kAsFiles) return applyEntry(in, out, e, rel);
  if (mode_ == Whiteouts::kApply) return whiteout(rel);
  noteMarker(rel);
}

void LayerApplier::applyEntry(archive* in, archive* out, archive_entry* e, const std::string& rel) {
  bool is_dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
  if (rel.empty() && !is_dir) throwInvalidInput("the archive root must be a directory");
  archive_entry_set_pathname(e, rel.empty() ? "." : rel.c_str());
  if (archive_entry_hardlink(e)) checkHardlink(e);
  filterXattrs(e, keep_selinux_);
  clearParents(rel);
  if (!is_dir) clearWayFor(rel);
  // The declared (apparent) size is checked before anything is written: a
  // 1 TiB sparse member is refused, not made.
  uint64_t size = archive_entry_size_is_set(e) && archive_entry_size(e) > 0
                      ? static_cast<uint64_t>(archive_entry_size(e))
                      : 0;
  if (budget_) checkExpansion(budget_->limits, budget_->raw + size, UINT64_MAX, budget_->what);
  if (archive_write_header(out, e) < ARCHIVE_WARN) archiveFailed(out, "cannot extract");
  copyData(in, out, budget_);
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) archiveFailed(out, "cannot extract");
  if (budget_) {
    checkBudget(budget_, in, size);  // holes at the end count too
    budget_->raw += size;
  }
  if (mode_ == Whiteouts::kApply) noteExtracted(rel);
  if (is_dir) noteDirTimes(e, rel);
  if (archive_entry_filetype(e) == AE_IFLNK && !archive_entry_hardlink(e)) own_symlinks_.insert(rel);
}

// link(2) follows symlinks in the target's parents; a target reached through
// one could pull a host file into the image.
void LayerApplier::checkHardlink(archive_entry* e) const {
  std::string target = memberPath(archive_entry_hardlink(e));
  if (target.empty()) throwInvalidInput("hardlink to the archive root");
  withContext("hardlink target '" + target + "'",
              [&] { openBeneath(root_fd_, target, O_PATH | O_NOFOLLOW); });
  archive_entry_set_hardlink(e, target.c_str());
}

// libarchive checks an entry's parents for symlinks but caches what it has
// checked, and a later entry may turn a checked directory into a symlink. A
// symlink where an entry needs a directory is removed here, which is what
// overlayfs shows when an upper layer has a directory over a lower symlink.
void LayerApplier::clearParents(const std::string& rel) const {
  UniqueFd dir(::fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
  if (!dir) throwErrno("dup");
  for (size_t pos = 0, slash; (slash = rel.find('/', pos)) != std::string::npos; pos = slash + 1) {
    std::string part = rel.substr(pos, slash - pos);
    struct stat st;
    if (::fstatat(dir.get(), part.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return;
    if (S_ISLNK(st.st_mode)) {
      // One archive that makes a symlink and then a member beneath it is
      // trying to write through it: refused. A lower layer's symlink is
      // replaced, as overlayfs would show it.
      if (own_symlinks_.count(rel.substr(0, slash))) {
        throwInvalidInput("member goes through the symlink '" + rel.substr(0, slash) +
                          "' this archive made");
      }
      if (::unlinkat(dir.get(), part.c_str(), 0) != 0) {
        throwErrno("remove symlink " + rel.substr(0, slash));
      }
    }
    if (!S_ISDIR(st.st_mode)) return;  // libarchive makes the rest
    int next = ::openat(dir.get(), part.c_str(), O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (next < 0) throwErrno("open " + rel.substr(0, slash));
    dir.reset(next);
  }
}

// A non-directory over a directory hides all of it in overlayfs; libarchive
// would only rmdir an empty one.
void LayerApplier::clearWayFor(const std::string& rel) const {
  auto [parent, base] = splitPath(rel);
  std::optional<UniqueFd> dir = openDir(parent);
  struct stat st;
  if (dir && ::fstatat(dir->get(), base.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    removeAt(dir->get(), base);
  }
}

// Missing, or reachable only through a symlink: then no lower layer has a
// directory there, and there is nothing to delete beneath it.
std::optional<UniqueFd> LayerApplier::openDir(const std::string& rel) const {
  try {
    return openBeneath(root_fd_, rel, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  } catch (const Error& e) {
    int err = e.errnum();
    if (err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV) return std::nullopt;
    throw;
  }
}

// Whiteouts hide what lower layers have, never what this layer brings (OCI
// image-spec, layer.md); tar order is arbitrary, so this layer's members so
// far are spared explicitly.
void LayerApplier::whiteout(const std::string& rel) {
  auto [parent, base] = splitPath(rel);
  std::optional<UniqueFd> dir = openDir(parent);
  if (base == kOpaqueMarker) {
    if (dir) clearOpaque(dir->get(), parent);
    return;
  }
  std::string victim = whiteoutTarget(base);
  if (dir && !this_layer_.contains(joinPath(parent, victim))) removeAt(dir->get(), victim);
}

void LayerApplier::clearOpaque(int dir_fd, const std::string& rel_dir) {
  for (const auto& name : listDirAt(dir_fd, rel_dir)) {
    std::string rel = joinPath(rel_dir, name);
    if (!this_layer_.contains(rel)) {
      removeAt(dir_fd, name);
      continue;
    }
    UniqueFd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (sub) clearOpaque(sub.get(), rel);  // a non-directory of this layer stays whole
  }
}

void LayerApplier::noteExtracted(std::string rel) {
  while (!rel.empty() && this_layer_.insert(rel).second) rel = splitPath(rel).first;
}

// libarchive sets no times on a directory that already existed (the rootfs
// itself, a lower layer's), and creating or whiting out entries in it changes
// them anyway: they are set from the archive once it is all applied.
void LayerApplier::noteDirTimes(archive_entry* e, const std::string& rel) {
  if (!archive_entry_mtime_is_set(e)) return;
  timespec atime{0, UTIME_OMIT};
  if (archive_entry_atime_is_set(e)) atime = {archive_entry_atime(e), archive_entry_atime_nsec(e)};
  dir_times_.emplace_back(
      rel, std::array<timespec, 2>{atime, {archive_entry_mtime(e), archive_entry_mtime_nsec(e)}});
}

void LayerApplier::restoreDirTimes() const {
  for (const auto& [rel, times] : dir_times_) {
    std::optional<UniqueFd> dir = openDir(rel);  // gone: a later member replaced it
    if (dir && ::futimens(dir->get(), times.data()) != 0) throwErrno("set times of " + rel);
  }
}

// --- kToOverlay -------------------------------------------------------

// Markers wait for the end: what they become depends on what the layer
// brings at their place, whatever the member order.
void LayerApplier::noteMarker(const std::string& rel) {
  auto [parent, base] = splitPath(rel);
  if (base == kOpaqueMarker) return opaque_dirs_.push_back(parent);
  whiteouts_.emplace_back(parent, whiteoutTarget(base));
}

void setOpaque(int dir_fd) {
  if (::fsetxattr(dir_fd, "trusted.overlay.opaque", "y", 1, 0) != 0) {
    throwErrno("set trusted.overlay.opaque");
  }
}

void LayerApplier::placeMarkers() const {
  for (const auto& dir : opaque_dirs_) {
    withContext("archive member '" + joinPath(dir, std::string(kOpaqueMarker)) + "'", [&] {
      if (std::optional<UniqueFd> fd = makeDirsBeneath(dir)) setOpaque(fd->get());
    });
  }
  for (const auto& w : whiteouts_) {  // no structured binding: clang < 16 cannot capture one
    withContext(
        "archive member '" + joinPath(w.first, std::string(kWhiteoutPrefix) + w.second) + "'",
        [&] { makeWhiteout(w.first, w.second); });
  }
}

// overlayfs's whiteout: a character device 0:0 (Documentation/filesystems/
// overlayfs.rst, "whiteouts and opaque directories").
void LayerApplier::makeWhiteout(const std::string& dir, const std::string& name) const {
  std::optional<UniqueFd> parent = makeDirsBeneath(dir);
  if (!parent) return;
  struct stat st;
  if (::fstatat(parent->get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
    if (!S_ISDIR(st.st_mode)) return;  // this layer's entry hides lower's already
    UniqueFd sub(
        ::openat(parent->get(), name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
    if (!sub) throwErrno("open " + joinPath(dir, name));
    return setOpaque(sub.get());
  }
  if (errno != ENOENT) throwErrno("stat " + joinPath(dir, name));
  if (::mknodat(parent->get(), name.c_str(), S_IFCHR | 0000, ::makedev(0, 0)) != 0) {
    throwErrno("make whiteout " + joinPath(dir, name));
  }
}

// Opens the directory `rel` beneath the root, creating what is missing, one
// component at a time and never through a symlink. nullopt where a symlink or
// a non-directory stands on the way.
std::optional<UniqueFd> LayerApplier::makeDirsBeneath(const std::string& rel) const {
  UniqueFd dir(::fcntl(root_fd_, F_DUPFD_CLOEXEC, 0));
  if (!dir) throwErrno("dup");
  constexpr int kFlags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
  for (size_t pos = 0; pos < rel.size();) {
    size_t end = std::min(rel.find('/', pos), rel.size());
    std::string part = rel.substr(pos, end - pos);
    pos = end + 1;
    UniqueFd next(::openat(dir.get(), part.c_str(), kFlags));
    if (!next && errno == ENOENT) {
      if (::mkdirat(dir.get(), part.c_str(), 0755) != 0) throwErrno("mkdir " + rel.substr(0, end));
      next.reset(::openat(dir.get(), part.c_str(), kFlags));
      if (next && ::fchmod(next.get(), 0755) != 0) throwErrno("chmod " + rel.substr(0, end));
    }
    if (!next && (errno == ELOOP || errno == ENOTDIR)) return std::nullopt;
    if (!next) throwErrno("open " + rel.substr(0, end));
    dir = std::move(next);
  }
  return dir;
}

}  // namespace

size_t applyLayer(int archive_fd, int root_fd, Whiteouts whiteouts, ExtractBudget* budget) {
  size_t count = 0;
  runInDir(root_fd, [&] {
    ArchivePtr in = openTar(archive_fd);
    count = LayerApplier(root_fd, whiteouts, budget).apply(in.get());
  });
  return count;
}

}  // namespace ferry
