#include "engine/bundle/bundle.h"

#include <fcntl.h>
#include <time.h>
#include <xxhash.h>
#include <zstd.h>

#include <cstring>
#include <deque>
#include <optional>
#include <set>

#include "common/fs.h"
#include "common/names.h"
#include "common/error.h"
#include "engine/bundle/bundle_format.h"
#include "common/fs.h"
#include "common/names.h"

namespace ferry {

using nlohmann::json;

namespace bundle_format {

std::string buildRecord(uint8_t type, uint32_t stream, const std::string& raw, int level) {
  RecordHeader h;
  h.type = type;
  h.stream = stream;
  h.raw_len = static_cast<uint32_t>(raw.size());
  std::string wire;
  if (level > 0 && !raw.empty()) {
    wire.resize(ZSTD_compressBound(raw.size()));
    size_t n = ZSTD_compress(wire.data(), wire.size(), raw.data(), raw.size(), level);
    if (ZSTD_isError(n)) {
      throw Error(ErrorCategory::kPermanent, std::string("zstd: ") + ZSTD_getErrorName(n));
    }
    wire.resize(n);
    if (n < raw.size()) h.codec = kZstd;
  }
  const std::string& payload = h.codec == kZstd ? wire : raw;
  h.wire_len = static_cast<uint32_t>(payload.size());
  h.checksum = recordChecksum(h, raw);
  std::string out(reinterpret_cast<const char*>(&h), sizeof h);
  out += payload;
  return out;
}

}  // namespace bundle_format

using namespace bundle_format;

namespace {

bool plainName(const std::string& n) {
  return !n.empty() && n != "." && n != ".." && n.size() <= 255 &&
         n.find('/') == std::string::npos && n.find('\0') == std::string::npos;
}

}  // namespace

void to_json(json& j, const BundleEntry& e) {
  j = json{{"kind", e.kind}, {"name", e.name}, {"size", e.size}, {"xxh3", e.xxh3}};
}
void from_json(const json& j, BundleEntry& e) {
  j.at("kind").get_to(e.kind);
  j.at("name").get_to(e.name);
  j.at("size").get_to(e.size);
  j.at("xxh3").get_to(e.xxh3);
}

fs::path stagingPath(const std::string& kind, const std::string& name) {
  auto fixed = [&](const char* expected, const char* file) -> fs::path {
    if (name != expected) throwInvalidInput("bundle " + kind + " entry must be named " + expected);
    return file;
  };
  if (kind == "metadata") return fixed("checkpoint.json", "checkpoint.json");
  if (kind == "spec") return fixed("config.json", "config.json");
  if (kind == "rootfs") return fixed("rootfs.tar", "rootfs.tar");
  if (kind == "changes") return fixed("rootfs-changes.json", "rootfs-changes.json");
  if (kind == "log") return fixed("ctr.log", "ctr.log");
  if (kind == "criu") {
    if (!plainName(name)) throwInvalidInput("bad CRIU image name in bundle: '" + name + "'");
    return fs::path("criu") / name;
  }
  if (kind == "pages") return fixed("page-server", "page-server");  // never written there
  if (kind == "volume") {
    validateName(name, "volume name in bundle");
    return fs::path("volumes") / (name + ".tar");
  }
  throwInvalidInput("unknown bundle entry kind '" + kind + "'");
}

// ---- writer ---------------------------------------------------------------

namespace {

// How a stream is cut into blocks for references, or not at all.
std::optional<Chunking> chunkingFor(const std::string& kind, const std::string& name) {
  if (kind == "criu") return name.starts_with("pages-") ? Chunking::kPages : Chunking::kContent;
  if (kind == "rootfs" || kind == "volume" || kind == "log") return Chunking::kContent;
  if (kind == "pages") return Chunking::kPages;  // its pages are page-aligned (page_stream.h)
  return std::nullopt;
}

void appendU32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

constexpr size_t kMaxRefsPerRecord = 16384;  // 320 KiB of references

}  // namespace

class BundleWriter::StreamSink : public ByteSink {
 public:
  StreamSink(BundleWriter& w, uint32_t id, BundleEntry entry)
      : w_(w), id_(id), entry_(std::move(entry)), hash_(XXH3_createState()) {
    XXH3_64bits_reset(hash_);
    if (w_.opts_.known && w_.opts_.known->size() > 0) {
      if (auto how = chunkingFor(entry_.kind, entry_.name)) chunker_.emplace(*how);
    }
  }
  ~StreamSink() override { XXH3_freeState(hash_); }

  void write(std::string_view data) override {
    XXH3_64bits_update(hash_, data.data(), data.size());
    entry_.size += data.size();
    if (chunker_) {
      chunker_->feed(data, [this](std::string_view b) { block(b); });
      return;
    }
    while (!data.empty()) {
      size_t take = std::min(data.size(), kBundleChunk - buf_.size());
      buf_.append(data.substr(0, take));
      data.remove_prefix(take);
      if (buf_.size() == kBundleChunk) flush();
    }
  }
  void flush() {
    if (buf_.empty()) return;
    w_.emit(kData, std::exchange(buf_, std::string()), true);
  }
  BundleEntry finish() {
    if (chunker_) chunker_->finish([this](std::string_view b) { block(b); });
    flushRefs();
    flush();
    entry_.xxh3 = XXH3_64bits_digest(hash_);
    return entry_;
  }
  uint32_t id() const { return id_; }

 private:
  // A block the receiver holds goes as a reference, any other as data;
  // runs of each become one record.
  void block(std::string_view b) {
    BlockHash h = hashBlock(b);
    if (w_.opts_.known->contains(h)) {
      flush();
      appendU32(refs_, static_cast<uint32_t>(b.size()));
      refs_.append(reinterpret_cast<const char*>(&h.lo), 8);
      refs_.append(reinterpret_cast<const char*>(&h.hi), 8);
      w_.stats_.ref_bytes += b.size();
      w_.stats_.raw_bytes += b.size();
      if (refs_.size() >= kMaxRefsPerRecord * kRefSize) flushRefs();
      return;
    }
    flushRefs();
    buf_.append(b);
    if (buf_.size() >= kBundleChunk) flush();
  }
  void flushRefs() {
    if (refs_.empty()) return;
    w_.emit(kRefs, std::exchange(refs_, std::string()), false);
  }

  BundleWriter& w_;
  uint32_t id_;
  BundleEntry entry_;
  XXH3_state_t* hash_;
  std::string buf_;
  std::string refs_;
  std::optional<Chunker> chunker_;
};

class BundleWriter::BlocksSink : public ByteSink {
 public:
  BlocksSink(BundleWriter& w, Chunking how) : w_(w), chunker_(how) {}
  void write(std::string_view data) override {
    stats_.scanned += data.size();
    chunker_.feed(data, [this](std::string_view b) { block(b); });
  }
  BlocksStats finish() {
    chunker_.finish([this](std::string_view b) { block(b); });
    flush();
    return stats_;
  }

 private:
  void block(std::string_view b) {
    if (!w_.opts_.known->insert(hashBlock(b))) return;
    appendU32(batch_, static_cast<uint32_t>(b.size()));
    batch_.append(b);
    stats_.sent += b.size();
    w_.stats_.block_bytes += b.size();
    if (batch_.size() >= kBundleChunk) flush();
  }
  void flush() {
    if (batch_.empty()) return;
    w_.emit(kBlocks, std::exchange(batch_, std::string()), true);
  }

  BundleWriter& w_;
  Chunker chunker_;
  std::string batch_;
  BlocksStats stats_;
};

BundleWriter::BundleWriter(ByteSink& out, BundleWriteOptions opts) : out_(out), opts_(opts) {
  if (opts_.threads < 1) opts_.threads = 1;
  std::string header(kMagic, sizeof kMagic);
  uint32_t version = kBundleFormat, zero = 0;
  header.append(reinterpret_cast<const char*>(&version), 4);
  header.append(reinterpret_cast<const char*>(&zero), 4);
  out_.write(header);
  stats_.wire_bytes += header.size();
}

BundleWriter::~BundleWriter() {
  // Let running compressions end before their writer goes; their results are
  // dropped (an unfinished bundle has no manifest and no reader accepts it).
  for (auto& f : pending_) {
    if (f.valid()) f.wait();
  }
}

void BundleWriter::emit(uint8_t type, std::string payload, bool compressible) {
  uint32_t id = current_ ? current_->id() : 0;
  int level = !compressible ? 0 : opts_.adaptive ? opts_.adaptive->next() : opts_.level;
  stats_.raw_bytes += type == kData ? payload.size() : 0;
  RecordCompression* measure = level > 0 ? opts_.adaptive : nullptr;
  pending_.push_back(std::async(std::launch::async, [type, id, p = std::move(payload), level,
                                                     measure] {
    if (!measure) return buildRecord(type, id, p, level);
    // This thread's CPU time: what compressing cost, whatever shares the cores.
    auto cpu = [] {
      timespec ts{};
      ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
      return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
    };
    int64_t t0 = cpu();
    std::string record = buildRecord(type, id, p, level);
    measure->observe(p.size(), record.size() - sizeof(RecordHeader), cpu() - t0);
    return record;
  }));
  drain(static_cast<size_t>(opts_.threads) * 2);
}

void BundleWriter::drain(size_t keep) {
  while (pending_.size() > keep) {
    std::string record = pending_.front().get();
    pending_.pop_front();
    try {
      out_.write(record);
    } catch (...) {
      broken_ = true;
      throw;
    }
    stats_.wire_bytes += record.size();
  }
}

ByteSink& BundleWriter::openBlocks(Chunking how) {
  if (finished_ || current_ || blocks_ || !opts_.known) {
    throw Error(ErrorCategory::kPermanent, "internal: pre-copy blocks opened out of order");
  }
  blocks_ = std::make_unique<BlocksSink>(*this, how);
  return *blocks_;
}

BundleWriter::BlocksStats BundleWriter::closeBlocks() {
  if (!blocks_) throw Error(ErrorCategory::kPermanent, "internal: no pre-copy blocks open");
  auto sink = std::move(blocks_);
  return sink->finish();
}

ByteSink& BundleWriter::openStream(const std::string& kind, const std::string& name) {
  if (finished_ || current_ || blocks_) {
    throw Error(ErrorCategory::kPermanent, "internal: bundle stream opened out of order");
  }
  stagingPath(kind, name);  // the writer never writes what a reader would refuse
  current_ = std::make_unique<StreamSink>(*this, next_id_++, BundleEntry{kind, name});
  emit(kOpen, json{{"kind", kind}, {"name", name}}.dump(), false);
  return *current_;
}

void BundleWriter::closeStream() {
  if (!current_) throw Error(ErrorCategory::kPermanent, "internal: no bundle stream open");
  entries_.push_back(current_->finish());
  emit(kClose, "", false);
  current_.reset();
}

void BundleWriter::addFile(const std::string& kind, const std::string& name, const fs::path& file) {
  ByteSink& sink = openStream(kind, name);
  UniqueFd fd = openFile(file, O_RDONLY);
  std::string buf(kBundleChunk, '\0');
  for (;;) {
    ssize_t n = retryEintr([&] { return ::read(fd.get(), buf.data(), buf.size()); });
    if (n < 0) throwErrno("read " + file.string());
    if (n == 0) break;
    sink.write(std::string_view(buf.data(), static_cast<size_t>(n)));
  }
  closeStream();
}

BundleWriteStats BundleWriter::finish(const json& info) {
  if (current_) closeStream();
  json manifest = {{"format", kBundleFormat}, {"entries", entries_}, {"info", info}};
  emit(kManifest, manifest.dump(), false);
  drain(0);
  finished_ = true;
  return stats_;
}

}  // namespace ferry
