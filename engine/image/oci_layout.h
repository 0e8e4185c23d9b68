// Reading an OCI image layout (image-spec image-layout.md): index.json, the
// manifest it names (through at most one nested image index), the image
// config, and layer blobs checked against their digests. The layout is
// untrusted: every file is opened beneath its directory, without following a
// symlink, and a blob is checked against its descriptor before any use.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "common/fd.h"
#include "engine/image/image_store.h"

namespace ferry {

struct Descriptor {
  std::string media_type;
  std::string digest;  // "sha256:" + 64 lowercase hex, checked
  int64_t size = 0;

  std::string hex() const { return digest.substr(7); }
};

// What one image of a layout is made of.
struct OciImage {
  Descriptor config_blob;          // its digest is the image id
  std::vector<Descriptor> layers;  // bottom first; media types checked to be tar layers
  ImageConfig config;              // parsed from config_blob
};

// True if the directory holds the regular files `oci-layout` and `index.json`
// (not symlinks).
bool isOciLayout(int dir_fd);

// Reads the layout in a directory, through `dir_fd` (borrowed: it must outlive
// this object). Holds no other state: calls are independent and may run
// concurrently. Each call blocks on reading (and hashing) what it needs.
class OciLayout {
 public:
  explicit OciLayout(int dir_fd) : fd_(dir_fd) {}

  // The image whose index entry has the annotation
  // org.opencontainers.image.ref.name == `ref_name`, else the first one; if
  // that is an image index, its linux/amd64 manifest, else its first. Throws
  // Error kInvalidInput for a malformed layout or a blob that does not match
  // its descriptor, kIncompatible for deeper nesting, non-sha256 digests and
  // layer media types other than (Docker or OCI) tar layers.
  OciImage image(const std::string& ref_name) const;

  // The blob's content at offset 0, checked to be a regular file of the
  // descriptor's size and digest (read in full to check).
  UniqueFd blob(const Descriptor& d) const;

 private:
  nlohmann::json index() const;
  nlohmann::json blobJson(const Descriptor& d) const;

  int fd_;
};

}  // namespace ferry
