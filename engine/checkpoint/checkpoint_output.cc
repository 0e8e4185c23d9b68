#include "engine/checkpoint/checkpoint_output.h"

#include <fcntl.h>
#include <xxhash.h>

#include <algorithm>

#include "common/error.h"

namespace ferry {

using nlohmann::json;

uint64_t CheckpointOutput::rawBytes(const std::string& kind) const {
  uint64_t n = 0;
  for (const auto& e : entries_) n += e.kind == kind ? e.size : 0;
  return n;
}

namespace {

// A file sink that also hashes what passes, for the manifest.
class HashingFileSink : public ByteSink {
 public:
  HashingFileSink(const fs::path& path, BundleEntry entry)
      : fd_(openFile(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600)),
        path_(path), entry_(std::move(entry)), hash_(XXH3_createState()) {
    XXH3_64bits_reset(hash_);
  }
  ~HashingFileSink() override { XXH3_freeState(hash_); }
  void write(std::string_view d) override {
    writeAll(fd_.get(), d, path_);
    XXH3_64bits_update(hash_, d.data(), d.size());
    entry_.size += d.size();
  }
  BundleEntry finish() {
    entry_.xxh3 = XXH3_64bits_digest(hash_);
    fd_.reset();
    return entry_;
  }

 private:
  UniqueFd fd_;
  std::string path_;
  BundleEntry entry_;
  XXH3_state_t* hash_;
};

std::vector<fs::path> sortedFiles(const fs::path& dir) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_regular_file()) files.push_back(e.path());
  }
  std::sort(files.begin(), files.end());
  return files;
}

BundleEntry hashFile(const fs::path& path, BundleEntry entry) {
  UniqueFd fd = openFile(path, O_RDONLY | O_NOFOLLOW);
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  std::string buf(1 << 20, '\0');
  for (;;) {
    ssize_t n = retryEintr([&] { return ::read(fd.get(), buf.data(), buf.size()); });
    if (n < 0) {
      XXH3_freeState(st);
      throwErrno("read " + path.string());
    }
    if (n == 0) break;
    XXH3_64bits_update(st, buf.data(), static_cast<size_t>(n));
    entry.size += static_cast<uint64_t>(n);
  }
  entry.xxh3 = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return entry;
}

class DirectoryOutput : public CheckpointOutput {
 public:
  explicit DirectoryOutput(const fs::path& dir) : dir_(dir), made_(!pathExists(dir)) {
    std::error_code ec;
    if (!made_ && !fs::is_empty(dir, ec)) {
      throwInvalidInput("checkpoint directory " + dir.string() + " is not empty");
    }
    makeDirs(dir_ / "criu", 0700);
    makeDirs(dir_ / "volumes", 0700);
  }
  fs::path criuDir() const override { return dir_ / "criu"; }
  fs::path keep() override { return criuDir(); }  // the directory is not removed
  ByteSink& open(const std::string& kind, const std::string& name) override {
    sink_ = std::make_unique<HashingFileSink>(dir_ / stagingPath(kind, name), BundleEntry{kind, name});
    return *sink_;
  }
  void close() override {
    entries_.push_back(sink_->finish());
    sink_.reset();
  }
  void addCriuImages() override {
    for (const auto& f : sortedFiles(criuDir())) {
      entries_.push_back(hashFile(f, {"criu", f.filename().string()}));
    }
  }
  void commit(const json& info) override {
    json m = {{"format", kBundleFormat}, {"entries", entries_}, {"info", info}};
    writeFileAtomic(dir_ / "manifest.json", m.dump(2) + "\n", 0600);
  }
  void discard() override {
    sink_.reset();
    made_ ? removeTree(dir_) : emptyDir(dir_);
  }

 private:
  fs::path dir_;
  bool made_;
  std::unique_ptr<HashingFileSink> sink_;
};

class BundleOutput : public CheckpointOutput {
 public:
  BundleOutput(ByteSink& out, const BundleWriteOptions& opts, const fs::path& scratch)
      : scratch_(scratch, "checkpoint-"), owned_(std::in_place, out, opts), writer_(*owned_) {
    makeDirs(criuDir(), 0700);
  }
  BundleOutput(BundleWriter& writer, const fs::path& scratch)
      : scratch_(scratch, "checkpoint-"), writer_(writer) {
    makeDirs(criuDir(), 0700);
  }
  fs::path criuDir() const override { return scratch_.path() / "criu"; }
  fs::path keep() override { return scratch_.release() / "criu"; }
  ByteSink& open(const std::string& kind, const std::string& name) override {
    return writer_.openStream(kind, name);
  }
  void close() override { writer_.closeStream(); }
  void addCriuImages() override {
    for (const auto& f : sortedFiles(criuDir())) writer_.addFile("criu", f.filename(), f);
  }
  void commit(const json& info) override {
    wire_ = writer_.finish(info).wire_bytes;
    entries_ = writer_.entries();
  }
  void discard() override {}
  uint64_t wireBytes() const override { return wire_; }

 private:
  TempDir scratch_;
  std::optional<BundleWriter> owned_;
  BundleWriter& writer_;
  uint64_t wire_ = 0;
};

}  // namespace

std::unique_ptr<CheckpointOutput> directoryOutput(const fs::path& dir) {
  return std::make_unique<DirectoryOutput>(dir);
}

std::unique_ptr<CheckpointOutput> bundleOutput(ByteSink& out, const BundleWriteOptions& opts,
                                               const fs::path& scratch) {
  return std::make_unique<BundleOutput>(out, opts, scratch);
}

std::unique_ptr<CheckpointOutput> bundleOutput(BundleWriter& writer, const fs::path& scratch) {
  return std::make_unique<BundleOutput>(writer, scratch);
}

std::vector<BundleEntry> verifyDirectory(const fs::path& dir) {
  std::vector<BundleEntry> listed;
  try {
    listed = json::parse(readFile(dir / "manifest.json")).at("entries").get<std::vector<BundleEntry>>();
  } catch (const json::exception& e) {
    throwInvalidInput("unreadable " + (dir / "manifest.json").string() + ": " + e.what());
  }
  for (const auto& e : listed) {
    fs::path rel = stagingPath(e.kind, e.name);
    BundleEntry actual = hashFile(dir / rel, {e.kind, e.name});
    if (actual.size != e.size || actual.xxh3 != e.xxh3) {
      throwInvalidInput((dir / rel).string() + " does not match the checkpoint's manifest (damaged)");
    }
  }
  return listed;
}

}  // namespace ferry
