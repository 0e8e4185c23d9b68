// Imports treat every input as hostile: how a layer is kept inside the rootfs
// is layer_apply's business (layer_apply.h), how OCI blobs are read and checked
// oci_layout's (oci_layout.h). This file keeps the store: ids, names, records,
// atomic publishing and its lock.
#include "engine/image/image_store.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>
#include <tuple>

#include "common/byte_stream.h"
#include "common/error.h"
#include "engine/image/layer_apply.h"
#include "engine/image/oci_layout.h"
#include "common/sha256.h"
#include "common/time_util.h"

namespace ferry {

using nlohmann::json;

namespace {

constexpr char kFormatRootfsTar[] = "rootfs-tar";
constexpr char kFormatOci[] = "oci-layout";
constexpr char kRecordFile[] = "image.json";
constexpr char kTempPrefix[] = ".tmp-";
constexpr size_t kMaxNameLength = 128;
constexpr size_t kMinIdPrefix = 12;

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
    throwInvalidInput("invalid image name '" + name +
                      "': use up to 128 of [a-zA-Z0-9_.:/-], starting with a letter or digit");
  }
  if (isImageId(name))
    throwInvalidInput("invalid image name '" + name + "': it looks like an image id");
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

ImageStore::ImageStore(fs::path dir, BundleLimits limits)
    : dir_(std::move(dir)), limits_(std::move(limits)) {
  makeDirs(dir_);
}

ExtractBudget ImageStore::budget() const {
  return ExtractBudget{.limits = boundedByFreeDisk(limits_, dir_, "this host")};
}

ImageRecord ImageStore::import(const std::string& name, const fs::path& source) {
  return withContext("importing image '" + name + "' from " + source.string(), [&] {
    if (!name.empty()) checkName(name);
    fs::path path = fs::absolute(source);  // extraction threads have another cwd
    struct stat st;
    if (::stat(path.c_str(), &st) != 0) throwErrno("stat " + path.string());
    if (S_ISREG(st.st_mode)) return importFile(name, path);
    if (!S_ISDIR(st.st_mode)) throwInvalidInput("not a file or a directory");
    UniqueFd dir = openFile(path, O_RDONLY | O_DIRECTORY);
    if (!isOciLayout(dir.get())) {
      throwInvalidInput("a directory, but not an OCI image layout (no oci-layout and index.json)");
    }
    ExtractBudget b = budget();
    return importLayout(name, path, dir.get(), b);
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
  ExtractBudget b = budget();
  size_t members = applyLayer(file.get(), tree.get(), Whiteouts::kAsFiles, &b);
  if (isOciLayout(tree.get())) {
    keep_source_fd_ = file.get();  // an OCI layout tar is kept as it came, too
    struct Reset {
      int& fd;
      ~Reset() { fd = -1; }
    } reset{keep_source_fd_};
    return importLayout(name, source, tree.get(), b);
  }
  if (members == 0) throwInvalidInput("the archive is empty");
  keepSource(file.get(), stage.path(), source);
  return publish(stage, ImageRecord{id, {}, source, kFormatRootfsTar, 0, 0, {}}, name);
}

ImageRecord ImageStore::importLayout(const std::string& name, const fs::path& source, int layout_fd,
                                     ExtractBudget& budget) {
  OciLayout layout(layout_fd);
  OciImage image = layout.image(name);
  std::string id = image.config_blob.hex();
  if (load(id)) return addName(id, name);
  TempDir stage(dir_, kTempPrefix);
  UniqueFd rootfs = makeSubdir(stage.path(), "rootfs");
  for (const Descriptor& layer : image.layers) {
    withContext("layer " + layer.digest, [&] {
      applyLayer(layout.blob(layer).get(), rootfs.get(), Whiteouts::kApply, &budget);
    });
  }
  if (keep_source_fd_ >= 0) keepSource(keep_source_fd_, stage.path(), source);
  return publish(stage, ImageRecord{id, {}, source, kFormatOci, 0, 0, image.config}, name);
}

void ImageStore::keepSource(int fd, const fs::path& stage, const fs::path& source) {
  if (::lseek(fd, 0, SEEK_SET) != 0) throwErrno("seek " + source.string());
  UniqueFd out(::open((stage / "source").c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (!out) throwErrno("keeping " + source.string());
  FdSource in(fd, "reading " + source.string());
  FdSink to(out.get(), "keeping " + source.string());
  copyAll(in, to);
}

std::optional<fs::path> ImageStore::sourceFile(const std::string& id) const {
  fs::path p = rootfs(id).parent_path() / "source";
  if (!pathExists(p)) return std::nullopt;
  return p;
}

// One rename makes the complete stage visible as <dir>/<id>. The tree is
// synced first (syncfs: one call instead of an fsync per file) so a crash
// cannot leave a published image with missing content.
ImageRecord ImageStore::publish(TempDir& stage, ImageRecord record, const std::string& name) {
  fs::path target = dir_ / record.id;
  record.created_unix = unixNow();
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
    throwInvalidInput("no image '" + name_or_id +
                      "' on this host; import it with 'image import NAME FILE'");
  }
  throwInvalidInput("image id prefix '" + name_or_id + "' matches " + std::to_string(hits.size()) +
                    " images; give more of the id");
}

fs::path ImageStore::rootfs(const std::string& id) const {
  if (!isImageId(id)) throwInvalidInput("'" + id + "' is not an image id");
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
