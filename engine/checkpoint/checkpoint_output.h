// Where a checkpoint goes: an unpacked directory (the staging layout of
// bundle.h, plus manifest.json) or a bundle written to a ByteSink. The
// checkpoint code writes streams in the same order to either.
//
// Not thread-safe. Streams are written one after another.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "engine/bundle/bundle.h"
#include "common/fs.h"

namespace ferry {

namespace fs = std::filesystem;

class CheckpointOutput {
 public:
  virtual ~CheckpointOutput() = default;
  // Where CRIU dumps its images.
  virtual fs::path criuDir() const = 0;
  virtual ByteSink& open(const std::string& kind, const std::string& name) = 0;
  virtual void close() = 0;
  // Takes CRIU's images from criuDir() (a bundle streams them; a directory
  // already holds them).
  virtual void addCriuImages() = 0;
  // Writes the manifest (with `info`); the checkpoint is complete.
  virtual void commit(const nlohmann::json& info) = 0;
  // Removes what this output wrote (a bundle sink's bytes are the caller's).
  virtual void discard() = 0;
  // Keeps the CRIU images beyond this output's life (when they are the only
  // copy of a container left); returns where they are.
  virtual fs::path keep() = 0;
  uint64_t rawBytes(const std::string& kind) const;
  // Bytes written to the sink (a bundle), 0 for a directory.
  virtual uint64_t wireBytes() const { return 0; }

 protected:
  std::vector<BundleEntry> entries_;
};

// Writes the unpacked layout into `dir` (missing or empty; only what this
// output made is removed by discard()).
std::unique_ptr<CheckpointOutput> directoryOutput(const fs::path& dir);

// Streams a bundle into `out`; CRIU dumps into a temporary directory under
// `scratch` first (removed with the output).
std::unique_ptr<CheckpointOutput> bundleOutput(ByteSink& out, const BundleWriteOptions& opts,
                                               const fs::path& scratch);
// The same into a writer that already carries pre-copy blocks.
std::unique_ptr<CheckpointOutput> bundleOutput(BundleWriter& writer, const fs::path& scratch);

// Checks an unpacked directory against its manifest.json: every listed file
// has its size and XXH3-64. Throws Error kInvalidInput naming the first
// mismatch. Returns the manifest's entries.
std::vector<BundleEntry> verifyDirectory(const fs::path& dir);

}  // namespace ferry
