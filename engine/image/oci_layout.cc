#include "engine/image/oci_layout.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string_view>

#include "common/error.h"
#include "common/fs.h"
#include "common/sha256.h"

namespace ferry {

using nlohmann::json;

namespace {

constexpr char kRefNameAnnotation[] = "org.opencontainers.image.ref.name";
constexpr int64_t kMaxJsonBytes = 16 << 20;  // manifests and configs are kilobytes

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

bool isSha256Hex(std::string_view digest) {
  return digest.size() == 64 &&
         digest.find_first_not_of("0123456789abcdef") == std::string_view::npos;
}

Descriptor parseDescriptor(const json& j) {
  Descriptor d{j.value("mediaType", ""), j.at("digest").get<std::string>(),
               j.at("size").get<int64_t>()};
  if (!d.digest.starts_with("sha256:")) {
    throw Error(ErrorCategory::kIncompatible,
                "digest '" + d.digest + "': only sha256 digests are supported");
  }
  // Also what keeps a digest like "sha256:../../x" out of the blob path.
  if (!isSha256Hex(d.hex())) throwInvalidInput("malformed digest '" + d.digest + "'");
  return d;
}

json parseJson(UniqueFd fd, const std::string& what) {
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throwErrno("stat " + what);
  if (st.st_size > kMaxJsonBytes) throwInvalidInput(what + " is too large");
  return json::parse(readAll(fd.get(), what));
}

bool isIndex(const Descriptor& d, const json& content) {
  return d.media_type == "application/vnd.oci.image.index.v1+json" ||
         d.media_type == "application/vnd.docker.distribution.manifest.list.v2+json" ||
         content.contains("manifests");
}

const json& manifestList(const json& index) {
  const json& list = index.at("manifests");
  if (!list.is_array() || list.empty()) throwInvalidInput("the image index lists no manifests");
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

}  // namespace

bool isOciLayout(int dir_fd) {
  auto regular = [&](const char* name) {
    struct stat st;
    return ::fstatat(dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
  };
  return regular("oci-layout") && regular("index.json");
}

OciImage OciLayout::image(const std::string& ref_name) const {
  try {
    Descriptor d = pickByName(index(), ref_name);
    json manifest = blobJson(d);
    if (isIndex(d, manifest)) {
      d = pickPlatform(manifest);
      manifest = blobJson(d);
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
    image.config = parseImageConfig(blobJson(image.config_blob));
    return image;
  } catch (const json::exception& e) {
    throwInvalidInput(std::string("malformed OCI image layout: ") + e.what());
  }
}

UniqueFd OciLayout::blob(const Descriptor& d) const {
  return withContext("blob " + d.digest, [&] {
    UniqueFd fd = openBeneath(fd_, "blobs/sha256/" + d.hex(), O_RDONLY);
    struct stat st;
    if (::fstat(fd.get(), &st) != 0) throwErrno("stat");
    if (!S_ISREG(st.st_mode)) throwInvalidInput("not a regular file");
    if (st.st_size != d.size) {
      throwInvalidInput("size is " + std::to_string(st.st_size) + ", the descriptor says " +
                   std::to_string(d.size));
    }
    if (sha256Fd(fd.get(), d.digest) != d.hex()) throwInvalidInput("content does not match digest");
    if (::lseek(fd.get(), 0, SEEK_SET) != 0) throwErrno("seek");
    return fd;
  });
}

json OciLayout::index() const {
  return parseJson(openBeneath(fd_, "index.json", O_RDONLY), "index.json");
}

json OciLayout::blobJson(const Descriptor& d) const {
  if (d.size > kMaxJsonBytes) throwInvalidInput("blob " + d.digest + " is too large for JSON");
  return parseJson(blob(d), d.digest);
}

}  // namespace ferry
