// Writes OCI image layouts (a directory with `oci-layout`, `index.json` and
// content-addressed blobs) for tests of image import: blobs are given as
// bytes, descriptors come back as JSON to put into manifests and indexes.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/sha256.h"

namespace ferry::testing {

class OciLayoutWriter {
 public:
  explicit OciLayoutWriter(fs::path dir) : dir_(std::move(dir)) {
    makeDirs(dir_ / "blobs" / "sha256");
    writeFileAtomic(dir_ / "oci-layout", R"({"imageLayoutVersion": "1.0.0"})");
  }

  // Stores `content` as a blob; returns its descriptor.
  nlohmann::json blob(const std::string& content, const std::string& media_type) {
    std::string hex = sha256Hex(content);
    writeFileAtomic(dir_ / "blobs" / "sha256" / hex, content);
    return {{"mediaType", media_type}, {"digest", "sha256:" + hex}, {"size", content.size()}};
  }

  nlohmann::json config(const nlohmann::json& container_config) {
    nlohmann::json cfg = {{"architecture", "amd64"}, {"os", "linux"}, {"config", container_config}};
    return blob(cfg.dump(), "application/vnd.oci.image.config.v1+json");
  }

  nlohmann::json manifest(const nlohmann::json& config, const std::vector<nlohmann::json>& layers) {
    nlohmann::json m = {{"schemaVersion", 2},
                        {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                        {"config", config},
                        {"layers", layers}};
    return blob(m.dump(), "application/vnd.oci.image.manifest.v1+json");
  }

  nlohmann::json imageIndex(const std::vector<nlohmann::json>& manifests) {
    nlohmann::json i = {{"schemaVersion", 2}, {"manifests", manifests}};
    return blob(i.dump(), "application/vnd.oci.image.index.v1+json");
  }

  // The layout's top-level index.json, listing `manifests`.
  void index(const std::vector<nlohmann::json>& manifests) {
    writeFileAtomic(dir_ / "index.json",
                    nlohmann::json{{"schemaVersion", 2}, {"manifests", manifests}}.dump());
  }

  fs::path blobPath(const nlohmann::json& desc) const {
    return dir_ / "blobs" / "sha256" / desc["digest"].get<std::string>().substr(7);
  }

 private:
  fs::path dir_;
};

}  // namespace ferry::testing
