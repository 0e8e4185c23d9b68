// How a tree becomes a tar (see tree_archive.h for the contract):
//  * the walk goes through directory fds opened with O_NOFOLLOW, one name at
//    a time, and reads xattrs through /proc/self/fd/DIR/NAME with the l*
//    calls, so no symlink in the tree is ever followed;
//  * libarchive writes into the ByteSink through a write callback; a sink
//    error is carried across libarchive's C frames as an exception_ptr;
//  * sparse files: libarchive's pax writer takes the whole logical file and
//    drops what its sparse map calls holes, so holes are fed as zeros from
//    memory, never read from the file.
#include "engine/image/tree_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <exception>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/error.h"

namespace ferry {

namespace {

constexpr std::string_view kWhiteoutPrefix = ".wh.";
constexpr char kOpaqueMarker[] = ".wh..wh..opq";
constexpr size_t kChunk = 1 << 20;
constexpr int kBlockBytes = 1 << 16;

using Regions = std::vector<std::pair<off_t, off_t>>;  // offset, length
using EntryPtr = std::unique_ptr<archive_entry, void (*)(archive_entry*)>;
using Xattrs = std::vector<std::pair<std::string, std::string>>;

std::string joinPath(const std::string& dir, const std::string& name) {
  return dir.empty() ? name : dir + "/" + name;
}

// O_NOATIME where the caller may (owner or CAP_FOWNER): archiving a
// container's files should not touch them.
UniqueFd openNoAtime(int dir_fd, const std::string& name, int flags) {
  int fd = ::openat(dir_fd, name.c_str(), flags | O_NOATIME | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0 && errno == EPERM) fd = ::openat(dir_fd, name.c_str(), flags | O_NOFOLLOW | O_CLOEXEC);
  return UniqueFd(fd);
}

std::vector<std::string> sortedNames(int dir_fd, const std::string& what) {
  std::vector<std::string> names = listDirAt(dir_fd, what);
  std::sort(names.begin(), names.end());
  return names;
}

// Lists and reads the xattrs of `path` without following it.
Xattrs readXattrs(const std::string& path) {
  ssize_t len = ::llistxattr(path.c_str(), nullptr, 0);
  if (len < 0 && (errno == ENOTSUP || errno == EOPNOTSUPP)) return {};
  if (len < 0) throwErrno("listxattr");
  std::string names(static_cast<size_t>(len), '\0');
  len = ::llistxattr(path.c_str(), names.data(), names.size());
  if (len < 0) throwErrno("listxattr");
  Xattrs out;
  for (size_t i = 0; i < static_cast<size_t>(len);) {
    std::string name = names.c_str() + i;
    i += name.size() + 1;
    ssize_t vlen = ::lgetxattr(path.c_str(), name.c_str(), nullptr, 0);
    std::string value(vlen > 0 ? static_cast<size_t>(vlen) : 0, '\0');
    if (vlen > 0) vlen = ::lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
    if (vlen < 0) throwErrno("getxattr " + name);
    value.resize(static_cast<size_t>(vlen));
    out.emplace_back(std::move(name), std::move(value));
  }
  return out;
}

// Data regions of a regular file; one region {0, size} when it has no holes.
Regions dataRegions(int fd, const struct stat& st) {
  off_t size = st.st_size;
  if (size == 0) return {};
  if (st.st_blocks * 512 >= size) return {{0, size}};  // no room for a hole
  Regions out;
  for (off_t pos = 0; pos < size;) {
    off_t data = ::lseek(fd, pos, SEEK_DATA);
    if (data < 0 && errno == ENXIO) break;  // only a hole is left
    if (data < 0 && (errno == EINVAL || errno == EOPNOTSUPP)) return {{0, size}};
    if (data < 0) throwErrno("lseek SEEK_DATA");
    if (data >= size) break;
    off_t hole = ::lseek(fd, data, SEEK_HOLE);
    if (hole < 0) throwErrno("lseek SEEK_HOLE");
    hole = std::min(hole, size);
    out.emplace_back(data, hole - data);
    pos = hole;
  }
  return out;
}

// GNU sparse 1.0 needs an entry at the end of the file when it ends in a
// hole; libarchive drops a map that is one region covering the whole file.
void setSparseMap(archive_entry* e, const Regions& regions, off_t size) {
  for (const auto& [offset, length] : regions) archive_entry_sparse_add_entry(e, offset, length);
  off_t end = regions.empty() ? 0 : regions.back().first + regions.back().second;
  if (end < size) archive_entry_sparse_add_entry(e, size, 0);
}

EntryPtr newEntry(const std::string& member, const struct stat& st) {
  EntryPtr e(archive_entry_new(), &archive_entry_free);
  if (!e) throw std::bad_alloc();
  archive_entry_set_pathname(e.get(), member.c_str());
  archive_entry_set_mode(e.get(), st.st_mode);
  archive_entry_set_uid(e.get(), st.st_uid);
  archive_entry_set_gid(e.get(), st.st_gid);
  archive_entry_set_mtime(e.get(), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  archive_entry_set_atime(e.get(), st.st_atim.tv_sec, st.st_atim.tv_nsec);
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) archive_entry_set_rdev(e.get(), st.st_rdev);
  if (S_ISREG(st.st_mode)) archive_entry_set_size(e.get(), st.st_size);
  return e;
}

// A pax tar writer over a ByteSink.
class ArchiveOut {
 public:
  explicit ArchiveOut(ByteSink& sink);
  ~ArchiveOut() { abandoned_ = true; }  // whatever libarchive flushes now is not wanted
  ArchiveOut(const ArchiveOut&) = delete;
  ArchiveOut& operator=(const ArchiveOut&) = delete;

  void header(archive_entry* e);
  void data(const char* p, size_t n);
  void close();

 private:
  static la_ssize_t toSink(archive*, void* self, const void* buf, size_t n);
  void check(int r, const char* what);

  ByteSink& sink_;
  std::exception_ptr sink_failure_;
  bool abandoned_ = true;  // until open
  std::unique_ptr<archive, int (*)(archive*)> a_{archive_write_new(), &archive_write_free};
};

ArchiveOut::ArchiveOut(ByteSink& sink) : sink_(sink) {
  if (!a_) throw std::bad_alloc();
  check(archive_write_set_format_pax(a_.get()), "pax format");
  // Names and link targets are bytes on Linux; no conversion, whatever the locale.
  check(archive_write_set_format_option(a_.get(), "pax", "hdrcharset", "BINARY"), "hdrcharset");
  check(archive_write_set_bytes_per_block(a_.get(), kBlockBytes), "block size");
  check(archive_write_set_bytes_in_last_block(a_.get(), 1), "last block");  // a stream: no padding
  abandoned_ = false;
  check(archive_write_open(a_.get(), this, nullptr, &ArchiveOut::toSink, nullptr), "open");
}

la_ssize_t ArchiveOut::toSink(archive*, void* self, const void* buf, size_t n) {
  auto* out = static_cast<ArchiveOut*>(self);
  if (out->abandoned_ || out->sink_failure_) return -1;
  try {
    out->sink_.write(std::string_view(static_cast<const char*>(buf), n));
    return static_cast<la_ssize_t>(n);
  } catch (...) {
    out->sink_failure_ = std::current_exception();
    return -1;
  }
}

void ArchiveOut::check(int r, const char* what) {
  if (r >= ARCHIVE_WARN) return;
  if (sink_failure_) std::rethrow_exception(sink_failure_);
  const char* text = archive_error_string(a_.get());
  throw Error(ErrorCategory::kPermanent,
              std::string("libarchive ") + what + ": " + (text ? text : "unknown error"),
              archive_errno(a_.get()));
}

void ArchiveOut::header(archive_entry* e) { check(archive_write_header(a_.get(), e), "header"); }

void ArchiveOut::data(const char* p, size_t n) {
  la_ssize_t r = archive_write_data(a_.get(), p, n);
  if (r < 0 || static_cast<size_t>(r) != n) check(ARCHIVE_FATAL, "data");
}

void ArchiveOut::close() { check(archive_write_close(a_.get()), "close"); }

// The lower tree beside the directory being walked.
struct Lower {
  UniqueFd fd;          // the same directory in lower; invalid where lower has none
  bool hidden = false;  // inside an opaque directory: lower's entries are not shown
};

class TreeWriter {
 public:
  TreeWriter(const fs::path& root, TreeKind kind, ArchiveOut& out, std::vector<TreeChange>* changes)
      : root_(root), overlay_(kind == TreeKind::kOverlayUpper), out_(out), changes_(changes) {}

  void writeDir(int parent_fd, const std::string& name, const std::string& rel,
                const struct stat& st, Lower lower);
  const TreeArchiveStats& stats() const { return stats_; }

 private:
  void visit(int dir_fd, const std::string& parent_rel, const std::string& name,
             const Lower& lower);
  void writeNonDir(int dir_fd, const std::string& name, const std::string& rel,
                   const struct stat& st);
  void writeFileData(int dir_fd, const std::string& name, archive_entry* e, const struct stat& st);
  void copyRange(int fd, off_t offset, off_t length);
  void writeZeros(off_t n);
  void writeMarker(const std::string& rel, const struct stat& st);
  bool addXattrs(archive_entry* e, int dir_fd, const std::string& name);
  void emit(archive_entry* e);
  void record(char mark, const std::string& rel);
  void recordHidden(int lower_fd, const std::vector<std::string>& names, const std::string& rel);
  template <class F>
  void inPath(const std::string& rel, F&& f) const;

  fs::path root_;
  bool overlay_;
  ArchiveOut& out_;
  std::vector<TreeChange>* changes_;
  std::map<std::pair<dev_t, ino_t>, std::string> first_paths_;  // hardlinked inodes
  std::vector<char> buf_ = std::vector<char>(kChunk);
  TreeArchiveStats stats_;
};

template <class F>
void TreeWriter::inPath(const std::string& rel, F&& f) const {
  withContext("archiving '" + (rel.empty() ? root_ : root_ / rel).string() + "'", f);
}

std::optional<mode_t> lowerType(const Lower& lower, const std::string& name) {
  struct stat st;
  if (!lower.fd || ::fstatat(lower.fd.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    if (lower.fd && errno != ENOENT) throwErrno("stat in the lower tree");
    return std::nullopt;
  }
  return st.st_mode;
}

// Where lower has no directory (or one reached only through a symlink), an
// invalid fd.
UniqueFd openLowerDir(const Lower& lower, const std::string& name) {
  if (!lower.fd) return UniqueFd();
  UniqueFd fd = openNoAtime(lower.fd.get(), name, O_RDONLY | O_DIRECTORY);
  if (!fd && errno != ENOENT && errno != ENOTDIR && errno != ELOOP) {
    throwErrno("open in the lower tree");
  }
  return fd;
}

void TreeWriter::visit(int dir_fd, const std::string& parent_rel, const std::string& name,
                       const Lower& lower) {
  std::string rel = joinPath(parent_rel, name);
  struct stat st;
  std::optional<Lower> sub;  // set for a directory, whose children follow
  inPath(rel, [&] {
    if (::fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) throwErrno("stat");
    if (overlay_ && name.starts_with(kWhiteoutPrefix)) {
      throw Error(ErrorCategory::kIncompatible,
                  "names starting with \".wh.\" cannot be carried in an OCI layer");
    }
    if (S_ISSOCK(st.st_mode)) return;
    if (overlay_ && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0)) {
      writeMarker(joinPath(parent_rel, std::string(kWhiteoutPrefix) + name), st);
      return record('D', rel);
    }
    std::optional<mode_t> below = lowerType(lower, name);
    if (!S_ISDIR(st.st_mode)) {
      writeNonDir(dir_fd, name, rel, st);
      return record(below ? 'C' : 'A', rel);
    }
    if (!below || !S_ISDIR(*below)) record(below ? 'C' : 'A', rel);
    sub = Lower{openLowerDir(lower, name), lower.hidden};
  });
  if (sub) writeDir(dir_fd, name, rel, st, std::move(*sub));
}

void TreeWriter::writeDir(int parent_fd, const std::string& name, const std::string& rel,
                          const struct stat& st, Lower lower) {
  UniqueFd fd;
  std::vector<std::string> names;
  inPath(rel, [&] {
    fd = openNoAtime(parent_fd, name, O_RDONLY | O_DIRECTORY);
    if (!fd) throwErrno("open");
    EntryPtr e = newEntry(rel.empty() ? "./" : rel + "/", st);
    bool opaque = addXattrs(e.get(), parent_fd, name);
    emit(e.get());
    if (opaque) writeMarker(joinPath(rel, kOpaqueMarker), st);
    lower.hidden = lower.hidden || opaque;
    names = sortedNames(fd.get(), "directory");
    if (lower.hidden && lower.fd) recordHidden(lower.fd.get(), names, rel);
  });
  for (const auto& child : names) visit(fd.get(), rel, child, lower);
}

void TreeWriter::writeNonDir(int dir_fd, const std::string& name, const std::string& rel,
                             const struct stat& st) {
  EntryPtr e = newEntry(rel, st);
  if (st.st_nlink > 1) {
    auto [first, fresh] = first_paths_.try_emplace({st.st_dev, st.st_ino}, rel);
    if (!fresh) {
      archive_entry_set_hardlink(e.get(), first->second.c_str());
      archive_entry_set_size(e.get(), 0);
      return emit(e.get());
    }
  }
  if (S_ISLNK(st.st_mode)) {
    std::string target(PATH_MAX + 1, '\0');
    ssize_t n = ::readlinkat(dir_fd, name.c_str(), target.data(), target.size());
    if (n < 0) throwErrno("readlink");
    target.resize(static_cast<size_t>(n));
    archive_entry_set_symlink(e.get(), target.c_str());
  }
  addXattrs(e.get(), dir_fd, name);
  if (S_ISREG(st.st_mode)) return writeFileData(dir_fd, name, e.get(), st);
  emit(e.get());
}

void TreeWriter::writeFileData(int dir_fd, const std::string& name, archive_entry* e,
                               const struct stat& st) {
  // O_NONBLOCK: should a fifo have taken the file's place, open must not hang.
  UniqueFd fd = openNoAtime(dir_fd, name, O_RDONLY | O_NONBLOCK);
  struct stat now;
  if (!fd || ::fstat(fd.get(), &now) != 0) throwErrno("open");
  if (now.st_ino != st.st_ino || now.st_dev != st.st_dev) {
    throw Error(ErrorCategory::kRetryable, "replaced while being archived");
  }
  Regions regions = dataRegions(fd.get(), st);
  setSparseMap(e, regions, st.st_size);
  emit(e);
  off_t pos = 0;
  for (const auto& [offset, length] : regions) {
    writeZeros(offset - pos);
    copyRange(fd.get(), offset, length);
    pos = offset + length;
  }
  writeZeros(st.st_size - pos);
}

void TreeWriter::copyRange(int fd, off_t offset, off_t length) {
  for (off_t done = 0; done < length;) {
    size_t want = static_cast<size_t>(std::min<off_t>(length - done, kChunk));
    ssize_t n = retryEintr([&] { return ::pread(fd, buf_.data(), want, offset + done); });
    if (n < 0) throwErrno("read");
    if (n == 0) throw Error(ErrorCategory::kRetryable, "file shrank while being archived");
    out_.data(buf_.data(), static_cast<size_t>(n));
    done += n;
    stats_.data_bytes += static_cast<uint64_t>(n);
  }
}

void TreeWriter::writeZeros(off_t n) {
  static const std::vector<char> zeros(kChunk);
  for (off_t left = n; left > 0;) {
    size_t step = static_cast<size_t>(std::min<off_t>(left, kChunk));
    out_.data(zeros.data(), step);
    left -= static_cast<off_t>(step);
  }
}

void TreeWriter::writeMarker(const std::string& rel, const struct stat& st) {
  struct stat marker = st;
  marker.st_mode = S_IFREG | 0600;
  marker.st_size = 0;
  emit(newEntry(rel, marker).get());
}

// Adds the xattrs of dir_fd/name to e, leaving out overlayfs's own; returns
// whether they mark an opaque directory.
bool TreeWriter::addXattrs(archive_entry* e, int dir_fd, const std::string& name) {
  bool opaque = false;
  for (auto& [key, value] : readXattrs("/proc/self/fd/" + std::to_string(dir_fd) + "/" + name)) {
    std::string_view k = key;
    if (!k.starts_with("trusted.overlay.") && !k.starts_with("user.overlay.")) {
      archive_entry_xattr_add_entry(e, key.c_str(), value.data(), value.size());
      continue;
    }
    if (!overlay_) continue;
    std::string_view what = k.substr(k.find(".overlay.") + 9);
    if (what == "opaque" && value == "y") opaque = true;
    if (what == "metacopy" || what == "redirect") {
      throw Error(ErrorCategory::kIncompatible,
                  key + " is set: part of this entry lives in the lower layer");
    }
  }
  return opaque;
}

void TreeWriter::emit(archive_entry* e) {
  out_.header(e);
  ++stats_.entries;
}

void TreeWriter::record(char mark, const std::string& rel) {
  if (changes_) changes_->push_back({mark, rel});
}

// Everything lower has in this directory that the tree does not is hidden.
void TreeWriter::recordHidden(int lower_fd, const std::vector<std::string>& names,
                              const std::string& rel) {
  for (const auto& n : sortedNames(lower_fd, "lower directory")) {
    if (!std::binary_search(names.begin(), names.end(), n)) record('D', joinPath(rel, n));
  }
}

}  // namespace

TreeArchiveStats writeTreeArchive(const fs::path& root, TreeKind kind, ByteSink& out,
                                  const fs::path& lower, std::vector<TreeChange>* changes) {
  bool track = changes && !lower.empty();
  UniqueFd root_fd = openFile(root, O_RDONLY | O_DIRECTORY);
  struct stat st;
  if (::fstat(root_fd.get(), &st) != 0) throwErrno("stat " + root.string());
  Lower below{track ? openFile(lower, O_RDONLY | O_DIRECTORY) : UniqueFd(), false};
  ArchiveOut archive(out);
  TreeWriter writer(root, kind, archive, track ? changes : nullptr);
  writer.writeDir(root_fd.get(), ".", "", st, std::move(below));
  withContext("archiving '" + root.string() + "'", [&] { archive.close(); });
  return writer.stats();
}

}  // namespace ferry
