// The host's image store: container root filesystems imported from tarballs
// or OCI image layouts, each kept extracted and read-only by convention, as
// the lowest layer of its containers' overlay mounts.
//
// On disk, under <dir>:
//   <id>/             mode 0700: host users must not reach set-uid files inside
//   <id>/rootfs/      the extracted tree (owners, modes, xattrs, ACLs, mtimes)
//   <id>/image.json   the ImageRecord
//   .tmp-XXXXXX/      an import or removal in progress (or left by a crash)
//
// Imported archives are untrusted: nothing they contain can write, link or
// delete outside <id>/rootfs (see layer_apply.h for how).
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <vector>

#include "common/fs.h"
#include "engine/bundle/bundle.h"

namespace ferry {

struct ExtractBudget;  // layer_apply.h

// What the image's config says a container runs by default.
struct ImageConfig {
  std::vector<std::string> env;  // "KEY=value"
  std::vector<std::string> entrypoint;
  std::vector<std::string> cmd;
  std::string workdir;
  std::string user;

  bool operator==(const ImageConfig&) const = default;
};

struct ImageRecord {
  std::string id;  // 64 lowercase hex: sha256 of the tarball, or the OCI config digest
  std::vector<std::string> names;
  std::string source;  // the path it was imported from
  std::string format;  // "rootfs-tar" | "oci-layout"
  int64_t created_unix = 0;
  uint64_t size_bytes = 0;  // apparent size of the regular files in the rootfs
  ImageConfig config;

  bool operator==(const ImageRecord&) const = default;
};

void to_json(nlohmann::json& j, const ImageConfig& c);
void from_json(const nlohmann::json& j, ImageConfig& c);
void to_json(nlohmann::json& j, const ImageRecord& r);
void from_json(const nlohmann::json& j, ImageRecord& r);

// Thread-safety: calls may run concurrently from several threads or processes
// on the same directory. Imports extract in parallel; the step that publishes
// an image or moves a name, and removal, take an flock on <dir>. Readers see
// an image completely or not at all.
class ImageStore {
 public:
  // dir = <host root>/images; created if missing. What one import may write
  // is `limits`, lowered to the free disk under `dir` less 256 MiB when it
  // starts (boundedByFreeDisk).
  explicit ImageStore(fs::path dir, BundleLimits limits = {});

  // Imports `source` under `name` (empty: no name) and returns its record.
  // Blocks on reading and extracting the whole input. Detects the input kind:
  //  * a directory with `oci-layout` and `index.json`: an OCI image layout;
  //  * a tar (plain, gzip, zstd, xz or bzip2) whose top level holds
  //    `oci-layout` and `index.json`: an OCI image layout in a tar;
  //  * any other tar: a root file system (`podman export`, `docker export`).
  // Importing content already present adds the name to it; a name held by
  // another image moves to this one. What it writes (the apparent size of
  // every member, of every layer) is bounded as a bundle's is, by the limits
  // above and the ratio to the bytes read (checkExpansion). On failure nothing
  // is left behind and the Error (kInvalidInput for a bad input or name or a
  // limit, kPermanent for free disk, kIncompatible for an OCI feature not
  // supported) has context "importing image 'NAME' from PATH".
  ImageRecord import(const std::string& name, const fs::path& source);

  // A full id, a name, or an id prefix of at least 12 hex characters that
  // matches exactly one image, tried in that order (a name cannot look like a
  // full id; one that looks like a prefix wins over it).
  std::optional<ImageRecord> find(const std::string& name_or_id) const;

  // As find(), but throws Error kInvalidInput when nothing (or, for a prefix,
  // more than one image) matches.
  ImageRecord resolve(const std::string& name_or_id) const;

  // Every image, oldest first.
  std::vector<ImageRecord> list() const;

  // <dir>/<id>/rootfs; throws kInvalidInput if `id` is not 64 hex characters.
  fs::path rootfs(const std::string& id) const;
  // The file an image was imported from, kept so that it can be sent to
  // another host (which then gets the same id); nullopt for an image
  // imported from a directory.
  std::optional<fs::path> sourceFile(const std::string& id) const;

  // Removes the image (all its names) and its files. Does not check whether a
  // container still uses the rootfs: that is the caller's business.
  void remove(const std::string& name_or_id);

  const fs::path& dir() const { return dir_; }

 private:
  ImageRecord importFile(const std::string& name, const fs::path& source);
  ImageRecord importLayout(const std::string& name, const fs::path& source, int layout_fd,
                           ExtractBudget& budget);
  ExtractBudget budget() const;  // limits_ bounded by free disk now
  ImageRecord publish(TempDir& stage, ImageRecord record, const std::string& name);
  // Copies the imported file into the stage as "source" (see sourceFile).
  void keepSource(int fd, const fs::path& stage, const fs::path& source);
  ImageRecord addName(const std::string& id, const std::string& name);
  ImageRecord claimName(const std::string& id, const std::string& name);  // lock held
  std::optional<ImageRecord> load(const std::string& id) const;
  void store(const ImageRecord& record) const;
  std::vector<ImageRecord> matches(const std::string& name_or_id) const;

  int keep_source_fd_ = -1;  // during importFile of an OCI layout tar
  fs::path dir_;
  BundleLimits limits_;
};

}  // namespace ferry
