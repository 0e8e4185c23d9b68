// Image import treats every archive as hostile. The defences:
//  * member names are normalised and refused if absolute or holding "..";
//  * extraction runs in a thread whose cwd (made private with
//    unshare(CLONE_FS)) is the new rootfs, because libarchive writes relative
//    to the cwd and the agent's other threads must not see it move;
//  * libarchive's SECURE_* flags, and before each entry we remove any symlink
//    standing where the entry needs a parent directory;
//  * hardlink targets must already exist beneath the rootfs, reached without
//    a symlink;
//  * whiteouts delete through fds opened with openBeneath, never by path;
//  * OCI blobs are read beneath the layout with openBeneath and checked
//    against their sha256 before use.
#include "engine/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <exception>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>
#include <tuple>
#include <unordered_set>

#include "engine/error.h"
#include "engine/sha256.h"

namespace ferry {

using nlohmann::json;

namespace {

constexpr char kFormatRootfsTar[] = "rootfs-tar";
constexpr char kFormatOci[] = "oci-layout";
constexpr char kRecordFile[] = "image.json";
constexpr char kTempPrefix[] = ".tmp-";
constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr std::string_view kOpaqueMarker = ".wh..wh..opq";
constexpr size_t kMaxNameLength = 128;
constexpr size_t kMinIdPrefix = 12;
constexpr int64_t kMaxJsonBytes = 16 << 20;  // manifests and configs are kilobytes
constexpr size_t kReadBlock = 1 << 16;
constexpr char kNotATar[] = "not a tar archive (plain, gzip, zstd, xz or bzip2)";

// No ARCHIVE_EXTRACT_FFLAGS: an immutable flag from an image would make it
// impossible to remove. UNLINK replaces whatever stands where an entry goes,
// which is also what overlayfs shows when an upper layer replaces a file.
constexpr int kExtractFlags = ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                              ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS | ARCHIVE_EXTRACT_UNLINK |
                              ARCHIVE_EXTRACT_PERM | ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_TIME |
                              ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_ACL;

// OCI image-spec layer types and Docker's equivalents; libarchive detects the
// compression itself, so these only guard against foreign or encrypted blobs.
constexpr std::string_view kLayerTypes[] = {
    "application/vnd.oci.image.layer.v1.tar",
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/vnd.oci.image.layer.v1.tar+zstd",
    "application/vnd.oci.image.layer.nondistributable.v1.tar",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
    "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
    "application/vnd.docker.image.rootfs.diff.tar",
    "application/vnd.docker.image.rootfs.diff.tar.gzip",
    "application/vnd.docker.image.rootfs.diff.tar.zstd",
    "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
};

[[noreturn]] void invalidInput(std::string message) {
  throw Error(ErrorCategory::kInvalidInput, std::move(message));
}

bool isLowerHex(std::string_view s) {
  return std::all_of(s.begin(), s.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

bool isImageId(std::string_view s) { return s.size() == 64 && isLowerHex(s); }

void checkName(const std::string& name) {
  auto alnum = [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
  };
  auto allowed = [&](char c) {
    return alnum(c) || std::string_view("_.:/-").find(c) != std::string_view::npos;
  };
  bool ok = !name.empty() && name.size() <= kMaxNameLength && alnum(name[0]) &&
            std::all_of(name.begin(), name.end(), allowed);
  if (!ok) {
    invalidInput("invalid image name '" + name +
                 "': use up to 128 of [a-zA-Z0-9_.:/-], starting with a letter or digit");
  }
  if (isImageId(name)) invalidInput("invalid image name '" + name + "': it looks like an image id");
}

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
  if (name.empty()) invalidInput("empty member name");
  if (name.front() == '/') invalidInput("absolute paths are not allowed");
  std::string out;
  for (size_t pos = 0; pos <= name.size();) {
    size_t end = std::min(name.find('/', pos), name.size());
    std::string_view part = name.substr(pos, end - pos);
    pos = end + 1;
    if (part.empty() || part == ".") continue;
    if (part == "..") invalidInput("paths with '..' are not allowed");
    out += out.empty() ? "" : "/";
    out += part;
  }
  return out;
}

// --- Trees, through fds only --------------------------------------------

std::vector<std::string> listDir(int dir_fd, const std::string& what) {
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
    for (const auto& child : listDir(sub.get(), name)) removeAt(sub.get(), child);
  }
  if (::unlinkat(dir_fd, name.c_str(), is_dir ? AT_REMOVEDIR : 0) != 0 && errno != ENOENT) {
    throwErrno("remove " + name);
  }
}

bool isOciLayout(int dir_fd) {
  auto regular = [&](const char* name) {
    struct stat st;
    return ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  };
  return regular("oci-layout") && regular("index.json");
}

UniqueFd makeSubdir(const fs::path& parent, const char* name) {
  fs::path p = parent / name;
  if (::mkdir(p.c_str(), 0755) != 0) throwErrno("mkdir " + p.string());
  return openFile(p, O_RDONLY | O_DIRECTORY);
}

void fsyncDir(const fs::path& dir) {
  UniqueFd fd = openFile(dir, O_RDONLY | O_DIRECTORY);
  if (::fsync(fd.get()) != 0) throwErrno("fsync " + dir.string());
}

// Serialises publishing, renaming and removal between threads and processes
// until the returned fd is closed. flock locks belong to the open file, so two
// opens conflict even within one process: not reentrant.
[[nodiscard]] UniqueFd lockStore(const fs::path& dir) {
  UniqueFd fd = openFile(dir, O_RDONLY | O_DIRECTORY);
  if (retryEintr([&] { return ::flock(fd.get(), LOCK_EX); }) != 0) {
    throwErrno("lock " + dir.string());
  }
  return fd;
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
  invalidInput(message);
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

void copyData(archive* in, archive* out) {
  const void* buf;
  size_t size;
  la_int64_t offset;
  for (;;) {
    int r = archive_read_data_block(in, &buf, &size, &offset);
    if (r == ARCHIVE_EOF) return;
    if (r < ARCHIVE_WARN) archiveFailed(in, "reading");
    if (archive_write_data_block(out, buf, size, offset) < ARCHIVE_WARN) {
      archiveFailed(out, "writing");
    }
  }
}

// trusted.overlay.* (and user.overlay.*) steer overlayfs -- opaque dirs,
// redirects, metacopy -- once this rootfs is a lower layer; an image must not
// bring its own.
void dropOverlayXattrs(archive_entry* e) {
  if (archive_entry_xattr_reset(e) == 0) return;
  std::vector<std::pair<std::string, std::string>> keep;
  const char* name;
  const void* value;
  size_t size;
  while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
    std::string_view n = name;
    if (n.starts_with("trusted.overlay.") || n.starts_with("user.overlay.")) continue;
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
// cwd. With whiteouts, applies OCI whiteouts to what lower layers left there.
class LayerApplier {
 public:
  LayerApplier(int root_fd, bool whiteouts) : root_fd_(root_fd), whiteouts_(whiteouts) {}

  // Returns the number of members.
  size_t apply(archive* in);

 private:
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

  int root_fd_;
  bool whiteouts_;
  std::unordered_set<std::string> this_layer_;  // members of this tar and their parents
  std::vector<std::pair<std::string, std::array<timespec, 2>>> dir_times_;
};

size_t LayerApplier::apply(archive* in) {
  ArchivePtr out(archive_write_disk_new(), &archive_write_free);
  if (!out) throw std::bad_alloc();
  archive_write_disk_set_options(out.get(), kExtractFlags);
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
    withContext("archive member '" + std::string(raw ? raw : "") + "'", [&] {
      std::string rel = memberPath(raw);
      if (whiteouts_ && splitPath(rel).second.starts_with(kWhiteoutPrefix)) return whiteout(rel);
      applyEntry(in, out.get(), e, rel);
    });
  }
  if (archive_write_close(out.get()) < ARCHIVE_WARN) archiveFailed(out.get(), "finishing");
  restoreDirTimes();
  return count;
}

void LayerApplier::applyEntry(archive* in, archive* out, archive_entry* e, const std::string& rel) {
  bool is_dir = archive_entry_filetype(e) == AE_IFDIR && !archive_entry_hardlink(e);
  if (rel.empty() && !is_dir) invalidInput("the archive root must be a directory");
  archive_entry_set_pathname(e, rel.empty() ? "." : rel.c_str());
  if (archive_entry_hardlink(e)) checkHardlink(e);
  dropOverlayXattrs(e);
  clearParents(rel);
  if (!is_dir) clearWayFor(rel);
  if (archive_write_header(out, e) < ARCHIVE_WARN) archiveFailed(out, "cannot extract");
  copyData(in, out);
  if (archive_write_finish_entry(out) < ARCHIVE_WARN) archiveFailed(out, "cannot extract");
  if (whiteouts_) noteExtracted(rel);
  if (is_dir) noteDirTimes(e, rel);
}

// link(2) follows symlinks in the target's parents; a target reached through
// one could pull a host file into the image.
void LayerApplier::checkHardlink(archive_entry* e) const {
  std::string target = memberPath(archive_entry_hardlink(e));
  if (target.empty()) invalidInput("hardlink to the archive root");
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
    if (S_ISLNK(st.st_mode) && ::unlinkat(dir.get(), part.c_str(), 0) != 0) {
      throwErrno("remove symlink " + rel.substr(0, slash));
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
  std::string victim = base.substr(kWhiteoutPrefix.size());
  if (victim.empty() || victim == "." || victim == "..") invalidInput("whiteout names no file");
  if (dir && !this_layer_.contains(joinPath(parent, victim))) removeAt(dir->get(), victim);
}

void LayerApplier::clearOpaque(int dir_fd, const std::string& rel_dir) {
  for (const auto& name : listDir(dir_fd, rel_dir)) {
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

// Extracts the tar read from archive_fd into root_fd; returns its member count.
size_t extractTar(int archive_fd, int root_fd, bool whiteouts) {
  size_t count = 0;
  runInDir(root_fd, [&] {
    ArchivePtr in = openTar(archive_fd);
    count = LayerApplier(root_fd, whiteouts).apply(in.get());
  });
  return count;
}

// --- OCI image layout ---------------------------------------------------

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:" + 64 lowercase hex, checked
  int64_t size = 0;

  std::string hex() const { return digest.substr(7); }
};

Descriptor parseDescriptor(const json& j) {
  Descriptor d{j.value("mediaType", ""), j.at("digest").get<std::string>(),
               j.at("size").get<int64_t>()};
  if (!d.digest.starts_with("sha256:")) {
    throw Error(ErrorCategory::kIncompatible,
                "digest '" + d.digest + "': only sha256 digests are supported");
  }
  // Also what keeps a digest like "sha256:../../x" out of the blob path.
  if (!isImageId(d.hex())) invalidInput("malformed digest '" + d.digest + "'");
  return d;
}

// Reads blobs of the layout directory `fd` (borrowed).
class OciLayout {
 public:
  explicit OciLayout(int fd) : fd_(fd) {}

  json index() const { return parse(openBeneath(fd_, "index.json", O_RDONLY), "index.json"); }

  // The blob, checked against its descriptor's size and digest, at offset 0.
  UniqueFd blob(const Descriptor& d) const {
    return withContext("blob " + d.digest, [&] {
      UniqueFd fd = openBeneath(fd_, "blobs/sha256/" + d.hex(), O_RDONLY);
      struct stat st;
      if (::fstat(fd.get(), &st) != 0) throwErrno("stat");
      if (!S_ISREG(st.st_mode)) invalidInput("not a regular file");
      if (st.st_size != d.size) {
        invalidInput("size is " + std::to_string(st.st_size) + ", the descriptor says " +
                     std::to_string(d.size));
      }
      if (sha256Fd(fd.get(), d.digest) != d.hex()) invalidInput("content does not match digest");
      if (::lseek(fd.get(), 0, SEEK_SET) != 0) throwErrno("seek");
      return fd;
    });
  }

  json blobJson(const Descriptor& d) const {
    if (d.size > kMaxJsonBytes) invalidInput("blob " + d.digest + " is too large for JSON");
    return parse(blob(d), d.digest);
  }

 private:
  static json parse(UniqueFd fd, const std::string& what) {
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) throwErrno("stat " + what);
    if (st.st_size > kMaxJsonBytes) invalidInput(what + " is too large");
    return json::parse(readAll(fd.get(), what));
  }

  int fd_;
};

bool isIndex(const Descriptor& d, const json& content) {
  return d.media_type == "application/vnd.oci.image.index.v1+json" ||
         d.media_type == "application/vnd.docker.distribution.manifest.list.v2+json" ||
         content.contains("manifests");
}

const json& manifestList(const json& index) {
  const json& list = index.at("manifests");
  if (!list.is_array() || list.empty()) invalidInput("the image index lists no manifests");
  return list;
}

Descriptor pickByName(const json& index, const std::string& name) {
  const json& list = manifestList(index);
  for (const json& m : list) {
    if (!name.empty() &&
        m.value("annotations", json::object()).value(kRefNameAnnotation, "") == name) {
      return parseDescriptor(m);
    }
  }
  return parseDescriptor(list.front());
}

Descriptor pickPlatform(const json& index) {
  const json& list = manifestList(index);
  for (const json& m : list) {
    json p = m.value("platform", json::object());
    if (p.value("os", "") == "linux" && p.value("architecture", "") == "amd64") {
      return parseDescriptor(m);
    }
  }
  return parseDescriptor(list.front());
}

std::vector<std::string> stringsAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  return it->get<std::vector<std::string>>();
}

std::string stringAt(const json& obj, const char* key) {
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? "" : it->get<std::string>();
}

ImageConfig parseImageConfig(const json& blob) {
  auto it = blob.find("config");
  if (it == blob.end() || it->is_null()) return {};
  return ImageConfig{stringsAt(*it, "Env"), stringsAt(*it, "Entrypoint"), stringsAt(*it, "Cmd"),
                     stringAt(*it, "WorkingDir"), stringAt(*it, "User")};
}

struct OciImage {
  Descriptor config_blob;
  std::vector<Descriptor> layers;
  ImageConfig config;
};

OciImage readOciImage(const OciLayout& layout, const std::string& name) {
  try {
    Descriptor d = pickByName(layout.index(), name);
    json manifest = layout.blobJson(d);
    if (isIndex(d, manifest)) {
      d = pickPlatform(manifest);
      manifest = layout.blobJson(d);
    }
    if (isIndex(d, manifest)) {
      throw Error(ErrorCategory::kIncompatible, "image indexes nested deeper than one level");
    }
    OciImage image{parseDescriptor(manifest.at("config")), {}, {}};
    for (const json& l : manifest.at("layers")) image.layers.push_back(parseDescriptor(l));
    for (const Descriptor& l : image.layers) {
      if (std::find(std::begin(kLayerTypes), std::end(kLayerTypes), l.media_type) ==
          std::end(kLayerTypes)) {
        throw Error(ErrorCategory::kIncompatible,
                    "layer " + l.digest + " has unsupported media type '" + l.media_type + "'");
      }
    }
    image.config = parseImageConfig(layout.blobJson(image.config_blob));
    return image;
  } catch (const json::exception& e) {
    invalidInput(std::string("malformed OCI image layout: ") + e.what());
  }
}

int64_t nowUnix() {
  using namespace std::chrono;
  return duration_cast<seconds>(system_clock::now().time_since_epoch()).count();
}

}  // namespace

// --- records ------------------------------------------------------------

void to_json(json& j, const ImageConfig& c) {
  j = json{{"env", c.env},
           {"entrypoint", c.entrypoint},
           {"cmd", c.cmd},
           {"workdir", c.workdir},
           {"user", c.user}};
}

void from_json(const json& j, ImageConfig& c) {
  c.env = j.value("env", std::vector<std::string>{});
  c.entrypoint = j.value("entrypoint", std::vector<std::string>{});
  c.cmd = j.value("cmd", std::vector<std::string>{});
  c.workdir = j.value("workdir", "");
  c.user = j.value("user", "");
}

void to_json(json& j, const ImageRecord& r) {
  j = json{{"id", r.id},
           {"names", r.names},
           {"source", r.source},
           {"format", r.format},
           {"created_unix", r.created_unix},
           {"size_bytes", r.size_bytes},
           {"config", r.config}};
}

void from_json(const json& j, ImageRecord& r) {
  r.id = j.at("id").get<std::string>();
  r.names = j.value("names", std::vector<std::string>{});
  r.source = j.value("source", "");
  r.format = j.at("format").get<std::string>();
  r.created_unix = j.value("created_unix", int64_t{0});
  r.size_bytes = j.value("size_bytes", uint64_t{0});
  r.config = j.value("config", ImageConfig{});
}

// --- the store ----------------------------------------------------------

ImageStore::ImageStore(fs::path dir) : dir_(std::move(dir)) { makeDirs(dir_); }

ImageRecord ImageStore::import(const std::string& name, const fs::path& source) {
  return withContext("importing image '" + name + "' from " + source.string(), [&] {
    if (!name.empty()) checkName(name);
    fs::path path = fs::absolute(source);  // extraction threads have another cwd
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throwErrno("stat " + path.string());
    if (S_ISREG(st.st_mode)) return importFile(name, path);
    if (!S_ISDIR(st.st_mode)) invalidInput("not a file or a directory");
    UniqueFd dir = openFile(path, O_RDONLY | O_DIRECTORY);
    if (!isOciLayout(dir.get())) {
      invalidInput("a directory, but not an OCI image layout (no oci-layout and index.json)");
    }
    return importLayout(name, path, dir.get());
  });
}

ImageRecord ImageStore::importFile(const std::string& name, const fs::path& source) {
  UniqueFd file = openFile(source, O_RDONLY);
  std::string id = sha256Fd(file.get(), source);
  if (load(id)) return addName(id, name);
  if (::lseek(file.get(), 0, SEEK_SET) != 0) throwErrno("seek " + source.string());
  // Unpacked as a rootfs first; only the result tells whether it was a layout.
  TempDir stage(dir_, kTempPrefix);
  UniqueFd tree = makeSubdir(stage.path(), "rootfs");
  size_t members = extractTar(file.get(), tree.get(), false);
  if (isOciLayout(tree.get())) return importLayout(name, source, tree.get());
  if (members == 0) invalidInput("the archive is empty");
  return publish(stage, ImageRecord{id, {}, source, kFormatRootfsTar, 0, 0, {}}, name);
}

ImageRecord ImageStore::importLayout(const std::string& name, const fs::path& source,
                                     int layout_fd) {
  OciLayout layout(layout_fd);
  OciImage image = readOciImage(layout, name);
  std::string id = image.config_blob.hex();
  if (load(id)) return addName(id, name);
  TempDir stage(dir_, kTempPrefix);
  UniqueFd rootfs = makeSubdir(stage.path(), "rootfs");
  for (const Descriptor& layer : image.layers) {
    withContext("layer " + layer.digest,
                [&] { extractTar(layout.blob(layer).get(), rootfs.get(), true); });
  }
  return publish(stage, ImageRecord{id, {}, source, kFormatOci, 0, 0, image.config}, name);
}

// One rename makes the complete stage visible as <dir>/<id>. The tree is
// synced first (syncfs: one call instead of an fsync per file) so a crash
// cannot leave a published image with missing content.
ImageRecord ImageStore::publish(TempDir& stage, ImageRecord record, const std::string& name) {
  fs::path target = dir_ / record.id;
  record.created_unix = nowUnix();
  record.size_bytes = treeSize(stage.path() / "rootfs");
  writeFileAtomic(stage.path() / kRecordFile, json(record).dump(2) + "\n");
  UniqueFd stage_fd = openFile(stage.path(), O_RDONLY | O_DIRECTORY);
  if (::syncfs(stage_fd.get()) != 0) throwErrno("syncfs " + stage.path().string());
  UniqueFd lock = lockStore(dir_);
  if (::rename(stage.path().c_str(), target.c_str()) == 0) {
    stage.release();
    fsyncDir(dir_);
  } else if (errno != EEXIST && errno != ENOTEMPTY) {
    throwErrno("rename " + stage.path().string() + " to " + target.string());
  }  // else a concurrent import of the same content won; the stage goes
  return claimName(record.id, name);
}

ImageRecord ImageStore::addName(const std::string& id, const std::string& name) {
  UniqueFd lock = lockStore(dir_);
  return claimName(id, name);
}

// The new holder gets the name before the old one loses it: a crash between
// the two leaves the name on both (the newer wins in lookups), never on none.
ImageRecord ImageStore::claimName(const std::string& id, const std::string& name) {
  std::optional<ImageRecord> record = load(id);
  if (!record) throw Error(ErrorCategory::kRetryable, "image " + id + " was removed meanwhile");
  if (name.empty()) return *record;
  if (std::find(record->names.begin(), record->names.end(), name) == record->names.end()) {
    record->names.push_back(name);
    store(*record);
  }
  for (ImageRecord& other : list()) {
    auto it = std::find(other.names.begin(), other.names.end(), name);
    if (other.id == id || it == other.names.end()) continue;
    other.names.erase(it);
    store(other);
  }
  return *record;
}

std::optional<ImageRecord> ImageStore::load(const std::string& id) const {
  fs::path path = dir_ / id / kRecordFile;
  std::string text;
  try {
    text = readFile(path);
  } catch (const Error& e) {
    if (e.errnum() == ENOENT) return std::nullopt;
    throw;
  }
  try {
    return json::parse(text).get<ImageRecord>();
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kPermanent,
                "corrupt image record " + path.string() + ": " + e.what());
  }
}

void ImageStore::store(const ImageRecord& record) const {
  writeFileAtomic(dir_ / record.id / kRecordFile, json(record).dump(2) + "\n");
}

std::vector<ImageRecord> ImageStore::list() const {
  std::vector<ImageRecord> out;
  std::error_code ec;
  for (fs::directory_iterator it(dir_, ec), end; !ec && it != end; it.increment(ec)) {
    std::string id = it->path().filename();
    if (!isImageId(id)) continue;  // .tmp-* stages and strangers
    if (std::optional<ImageRecord> r = load(id)) out.push_back(std::move(*r));
  }
  if (ec) throwErrno("list " + dir_.string(), ec.value());
  std::sort(out.begin(), out.end(), [](const ImageRecord& a, const ImageRecord& b) {
    return std::tie(a.created_unix, a.id) < std::tie(b.created_unix, b.id);
  });
  return out;
}

std::vector<ImageRecord> ImageStore::matches(const std::string& name_or_id) const {
  std::vector<ImageRecord> all = list();
  std::vector<ImageRecord> hits;
  for (const ImageRecord& r : all) {
    if (r.id == name_or_id) return {r};
  }
  for (auto it = all.rbegin(); it != all.rend(); ++it) {  // newest first
    if (std::find(it->names.begin(), it->names.end(), name_or_id) != it->names.end()) return {*it};
  }
  if (name_or_id.size() < kMinIdPrefix || !isLowerHex(name_or_id)) return {};
  for (const ImageRecord& r : all) {
    if (r.id.starts_with(name_or_id)) hits.push_back(r);
  }
  return hits;
}

std::optional<ImageRecord> ImageStore::find(const std::string& name_or_id) const {
  std::vector<ImageRecord> hits = matches(name_or_id);
  if (hits.size() != 1) return std::nullopt;
  return std::move(hits.front());
}

ImageRecord ImageStore::resolve(const std::string& name_or_id) const {
  std::vector<ImageRecord> hits = matches(name_or_id);
  if (hits.size() == 1) return std::move(hits.front());
  if (hits.empty()) {
    invalidInput("no image '" + name_or_id +
                 "' on this host; import it with 'image import NAME FILE'");
  }
  invalidInput("image id prefix '" + name_or_id + "' matches " + std::to_string(hits.size()) +
               " images; give more of the id");
}

fs::path ImageStore::rootfs(const std::string& id) const {
  if (!isImageId(id)) invalidInput("'" + id + "' is not an image id");
  return dir_ / id / "rootfs";
}

// The image leaves <dir> with one rename under the lock; its files are
// deleted afterwards, outside it.
void ImageStore::remove(const std::string& name_or_id) {
  withContext("removing image '" + name_or_id + "'", [&] {
    ImageRecord record = resolve(name_or_id);
    TempDir trash(dir_, kTempPrefix);
    {
      UniqueFd lock = lockStore(dir_);
      fs::path from = dir_ / record.id;
      if (::rename(from.c_str(), (trash.path() / record.id).c_str()) != 0) {
        throwErrno("rename " + from.string());
      }
      fsyncDir(dir_);
    }
    removeTree(trash.path() / record.id);
  });
}

}  // namespace ferry
