// readBundle: the one reader of checkpoint bundles. Everything it reads is
// untrusted; it writes only beneath the staging directory.
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <xxhash.h>
#include <zstd.h>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "engine/bundle/blocks.h"
#include "engine/bundle/bundle.h"
#include "engine/bundle/bundle_format.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/units.h"

namespace ferry {

using nlohmann::json;
using namespace bundle_format;

namespace {

[[noreturn]] void corrupt(const std::string& why) { throwInvalidInput("bad bundle: " + why); }

// Reads exactly n bytes; false on a clean EOF before the first byte when
// eof_ok, otherwise a truncated bundle is an error.
bool readExact(ByteSource& in, char* buf, size_t n, bool eof_ok) {
  size_t got = 0;
  while (got < n) {
    size_t r = in.read(buf + got, n - got);
    if (r == 0) {
      if (got == 0 && eof_ok) return false;
      corrupt("truncated (the stream ends inside a record)");
    }
    got += r;
  }
  return true;
}

struct OpenStream {
  uint32_t id = 0;
  BundleEntry entry;
  UniqueFd fd;
  std::unique_ptr<DivertedStream> diverted;  // the "pages" stream, not a file
  XXH3_state_t* hash = nullptr;
  ~OpenStream() {
    if (hash) XXH3_freeState(hash);
  }
};

class Reader {
 public:
  Reader(ByteSource& in, const fs::path& staging, const BundleLimits& limits,
         const MetadataCheck& check, bool extract_all, const DivertPages& pages = {})
      : in_(in), staging_(staging), limits_(limits), check_(check), extract_all_(extract_all),
        pages_(pages),
        root_(openFile(staging, O_RDONLY | O_DIRECTORY)), dctx_(ZSTD_createDCtx()) {}
  ~Reader() { ZSTD_freeDCtx(dctx_); }

  BundleReadResult run() {
    readFileHeader();
    for (;;) {
      RecordHeader h;
      if (!readExact(in_, reinterpret_cast<char*>(&h), sizeof h, true)) {
        corrupt("truncated (no manifest at the end)");
      }
      wire_ += sizeof h;
      std::string raw = readPayload(h);
      if (h.type == kManifest) return finish(raw);
      handle(h, raw);
    }
  }

 private:
  void readFileHeader() {
    char header[16];
    if (!readExact(in_, header, sizeof header, true)) corrupt("empty input");
    if (std::memcmp(header, kMagic, sizeof kMagic) != 0) {
      throwInvalidInput("not a ferry checkpoint bundle (bad magic)");
    }
    uint32_t version;
    std::memcpy(&version, header + 8, 4);
    if (version != kBundleFormat) {
      throw Error(ErrorCategory::kIncompatible,
                  "bundle format " + std::to_string(version) + " is not supported (this ferry reads " +
                      std::to_string(kBundleFormat) + ")");
    }
    wire_ += sizeof header;
  }

  std::string readPayload(const RecordHeader& h) {
    if (h.magic != kRecordMagic) corrupt("bad record magic at byte " + std::to_string(wire_ - 32));
    if (h.type < kOpen || h.type > kLastType) corrupt("unknown record type " + std::to_string(h.type));
    if (h.codec > kZstd) corrupt("unknown codec " + std::to_string(h.codec));
    if (h.raw_len > kBundleMaxRecord) corrupt("record larger than 4 MiB");
    size_t max_wire = h.codec == kZstd ? ZSTD_compressBound(h.raw_len) : h.raw_len;
    if (h.wire_len > max_wire || (h.codec == kRaw && h.wire_len != h.raw_len)) {
      corrupt("record lengths do not add up");
    }
    std::string wire(h.wire_len, '\0');
    readExact(in_, wire.data(), wire.size(), false);
    wire_ += wire.size();
    std::string raw = h.codec == kZstd ? decompress(wire, h.raw_len) : std::move(wire);
    if (recordChecksum(h, raw) != h.checksum) {
      corrupt("checksum mismatch in a record of stream " + std::to_string(h.stream) +
              " (the bundle is damaged)");
    }
    raw_ += raw.size();
    checkLimits();
    return raw;
  }

  std::string decompress(const std::string& wire, uint32_t raw_len) {
    unsigned long long declared = ZSTD_getFrameContentSize(wire.data(), wire.size());
    if (declared != raw_len) corrupt("compressed frame does not declare its record's size");
    std::string raw(raw_len, '\0');
    size_t n = ZSTD_decompressDCtx(dctx_, raw.data(), raw.size(), wire.data(), wire.size());
    if (ZSTD_isError(n) || n != raw_len) corrupt("compressed frame does not decompress");
    return raw;
  }

  void checkLimits() { checkExpansion(limits_, raw_, wire_, "bundle"); }

  void handle(const RecordHeader& h, const std::string& raw) {
    switch (h.type) {
      case kOpen: return open(h.stream, raw);
      case kData: return data(h.stream, raw);
      case kClose: return close(h.stream, raw);
      case kBlocks: return blocks(raw);
      case kRefs: return refs(h.stream, raw);
    }
  }

  void blocks(const std::string& raw) {
    if (current_) corrupt("pre-copy blocks inside a stream");
    if (!store_) store_ = std::make_shared<BlockStore>(staging_ / ".precopy-blocks");
    std::string_view p = raw;
    while (!p.empty()) {
      uint32_t len;
      if (p.size() < 4) corrupt("a pre-copy block is cut short");
      std::memcpy(&len, p.data(), 4);
      p.remove_prefix(4);
      if (len == 0 || len > kMaxContentBlock || len > p.size()) corrupt("a pre-copy block has a bad length");
      store_->add(p.substr(0, len));
      block_bytes_ += len;
      p.remove_prefix(len);
    }
  }

  void refs(uint32_t id, const std::string& raw) {
    OpenStream& s = expect(id);
    if (raw.empty() || raw.size() % kRefSize != 0) corrupt("a references record has a bad size");
    if (!store_) corrupt("a reference names a block that was never sent");
    std::vector<BlockStore::Ref> list(raw.size() / kRefSize);
    uint64_t total = 0;
    for (size_t i = 0; i < list.size(); ++i) {
      const char* r = raw.data() + i * kRefSize;
      std::memcpy(&list[i].length, r, 4);
      std::memcpy(&list[i].hash.lo, r + 4, 8);
      std::memcpy(&list[i].hash.hi, r + 12, 8);
      total += list[i].length;
    }
    // References stand for their bytes: the limits see those.
    raw_ += total;
    ref_bytes_ += total;
    checkLimits();
    store_->copyOut(list, [&](std::string_view d) {
      if (s.fd) writeAll(s.fd.get(), d, s.entry.name);
      if (s.diverted) s.diverted->write(d);
      XXH3_64bits_update(s.hash, d.data(), d.size());
      s.entry.size += d.size();
    });
  }

  void open(uint32_t id, const std::string& raw) {
    if (current_) corrupt("stream opened inside another");
    if (entries_.size() >= limits_.max_streams) corrupt("too many streams");
    json j;
    try {
      j = json::parse(raw);
      current_ = std::make_unique<OpenStream>();
      current_->entry.kind = j.at("kind").get<std::string>();
      current_->entry.name = j.at("name").get<std::string>();
    } catch (const json::exception& e) {
      corrupt(std::string("unreadable stream header: ") + e.what());
    }
    current_->id = id;
    if (entries_.empty() && check_ && current_->entry.kind != "metadata") {
      corrupt("the first stream must be the metadata");
    }
    fs::path rel = stagingPath(current_->entry.kind, current_->entry.name);
    current_->hash = XXH3_createState();
    XXH3_64bits_reset(current_->hash);
    // Verifying only: a stream other than the metadata and the changes list
    // is checked as it passes and never written.
    std::string kind = current_->entry.kind;
    if (!extract_all_ && kind != "metadata" && kind != "changes") {
      if (!seen_.insert(rel.string()).second) corrupt("bundle entry " + rel.string() + " appears twice");
      return;
    }
    if (kind == "pages") {
      if (!pages_) {
        corrupt("it streams the memory through CRIU's page server, which only a migration's "
                "target can take");
      }
      if (!seen_.insert(rel.string()).second) corrupt("a second pages stream");
      current_->diverted = pages_();
      return;
    }
    if (rel.has_parent_path()) ::mkdirat(root_.get(), rel.parent_path().c_str(), 0700);
    // O_EXCL: a name seen twice is refused; openBeneath: never through a symlink.
    current_->fd = withContext("bundle entry " + rel.string(), [&] {
      return openBeneath(root_.get(), rel, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0600);
    });
  }

  OpenStream& expect(uint32_t id) {
    if (!current_ || current_->id != id) corrupt("record for a stream that is not open");
    return *current_;
  }

  void data(uint32_t id, const std::string& raw) {
    OpenStream& s = expect(id);
    if (s.fd) writeAll(s.fd.get(), raw, s.entry.name);
    if (s.diverted) s.diverted->write(raw);
    XXH3_64bits_update(s.hash, raw.data(), raw.size());
    s.entry.size += raw.size();
  }

  void close(uint32_t id, const std::string& raw) {
    OpenStream& s = expect(id);
    if (!raw.empty()) corrupt("close record with a payload");
    s.entry.xxh3 = XXH3_64bits_digest(s.hash);
    if (s.diverted) s.diverted->finish();
    entries_.push_back(s.entry);
    std::string kind = s.entry.kind;
    current_.reset();
    if (kind == "changes") checkChangesList(readFile(staging_ / "rootfs-changes.json"));
    if (kind == "metadata" && check_) {
      json meta;
      try {
        meta = json::parse(readFile(staging_ / "checkpoint.json"));
      } catch (const json::exception& e) {
        corrupt(std::string("unreadable checkpoint.json: ") + e.what());
      }
      check_(meta);
    }
  }

  BundleReadResult finish(const std::string& raw) {
    if (current_) corrupt("manifest inside an open stream");
    BundleReadResult result;
    std::vector<BundleEntry> listed;
    try {
      json m = json::parse(raw);
      if (m.at("format").get<uint32_t>() != kBundleFormat) corrupt("manifest format mismatch");
      listed = m.at("entries").get<std::vector<BundleEntry>>();
      result.info = m.value("info", json::object());
    } catch (const json::exception& e) {
      corrupt(std::string("unreadable manifest: ") + e.what());
    }
    if (listed.size() != entries_.size()) corrupt("manifest lists a different number of entries");
    for (size_t i = 0; i < listed.size(); ++i) {
      const BundleEntry &l = listed[i], &r = entries_[i];
      if (l.kind != r.kind || l.name != r.name || l.size != r.size || l.xxh3 != r.xxh3) {
        corrupt("entry " + r.kind + "/" + r.name + " does not match the manifest (size or checksum)");
      }
    }
    char extra;
    if (in_.read(&extra, 1) != 0) corrupt("data after the manifest");
    writeFileAtomic(staging_ / "manifest.json", raw, 0600);
    result.entries = entries_;
    result.wire_bytes = wire_;
    result.block_bytes = block_bytes_;
    result.ref_bytes = ref_bytes_;
    // The blocks are in the streams now; their file goes with staging.
    if (store_) store_->keepFile();
    result.blocks = std::move(store_);
    return result;
  }

  ByteSource& in_;
  fs::path staging_;
  BundleLimits limits_;
  const MetadataCheck& check_;
  bool extract_all_;
  DivertPages pages_;
  std::set<std::string> seen_;  // names of streams not written (verifying only)
  UniqueFd root_;
  ZSTD_DCtx* dctx_;
  std::unique_ptr<OpenStream> current_;
  std::vector<BundleEntry> entries_;
  std::shared_ptr<BlockStore> store_;  // pre-copy blocks, once the first arrive
  uint64_t wire_ = 0;
  uint64_t raw_ = 0;
  uint64_t block_bytes_ = 0;
  uint64_t ref_bytes_ = 0;
};

}  // namespace

void checkChangesList(const std::string& text) {
  json list;
  try {
    list = json::parse(text);
  } catch (const json::exception& e) {
    corrupt(std::string("unreadable rootfs-changes.json: ") + e.what());
  }
  if (!list.is_array()) corrupt("rootfs-changes.json is not a list");
  for (const auto& c : list) {
    if (!c.is_object() || !c.contains("mark") || !c.contains("path") || !c["mark"].is_string() ||
        !c["path"].is_string()) {
      corrupt("rootfs-changes.json: an entry is not {mark, path}");
    }
    std::string mark = c["mark"], path = c["path"];
    if (mark != "A" && mark != "C" && mark != "D") corrupt("rootfs-changes.json: bad mark '" + mark + "'");
    // As strict as a tar member name: relative, no "." or "..". Any other
    // byte may be in a real file name; whoever prints one escapes it.
    bool bad = path.empty() || path.front() == '/' || path.size() > 4096 ||
               path.find('\0') != std::string::npos;
    for (size_t pos = 0; !bad && pos <= path.size();) {
      size_t end = path.find('/', pos);
      if (end == std::string::npos) end = path.size();
      std::string_view part(path.data() + pos, end - pos);
      bad = part == ".." || part == "." || part.empty();
      pos = end + 1;
    }
    if (bad) corrupt("rootfs-changes.json: bad path entry");
  }
}

void checkExpansion(const BundleLimits& limits, uint64_t raw, uint64_t wire,
                    const std::string& what) {
  if (raw > limits.max_total_bytes) {
    if (!limits.max_total_reason.empty()) {
      throw Error(ErrorCategory::kPermanent, "the " + what + " is larger than " +
                                                 limits.max_total_reason + " (" +
                                                 std::to_string(limits.max_total_bytes) +
                                                 " bytes); free disk there and try again");
    }
    throwInvalidInput(what + " exceeds the size limit of " +
                      std::to_string(limits.max_total_bytes) + " bytes");
  }
  if (raw > (uint64_t{64} << 20) && raw / std::max<uint64_t>(wire, 1) > limits.max_ratio) {
    throwInvalidInput(what + " decompresses more than " + std::to_string(limits.max_ratio) +
                      " times its size: refused as a decompression bomb");
  }
}

BundleLimits boundedByFreeDisk(BundleLimits limits, const fs::path& dir, const std::string& host) {
  struct statvfs vfs;
  if (::statvfs(dir.c_str(), &vfs) != 0) return limits;
  uint64_t free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
  uint64_t margin = uint64_t{256} << 20;
  uint64_t budget = free_bytes > margin ? free_bytes - margin : 0;
  if (budget < limits.max_total_bytes) {
    limits.max_total_bytes = budget;
    limits.max_total_reason = "what " + host + " has free for it (" + formatBytes(free_bytes) +
                              " free in " + dir.string() + ", less a 256 MiB margin)";
  }
  return limits;
}

namespace {

void requireEmptyStaging(const fs::path& staging) {
  std::error_code ec;
  if (!fs::is_directory(staging, ec) || !fs::is_empty(staging, ec)) {
    throw Error(ErrorCategory::kPermanent, "internal: staging " + staging.string() + " must be an empty directory");
  }
}

}  // namespace

BundleReadResult readBundle(ByteSource& in, const fs::path& staging, const BundleLimits& limits,
                            const MetadataCheck& check, const DivertPages& pages) {
  requireEmptyStaging(staging);
  return Reader(in, staging, limits, check, true, pages).run();
}

BundleReadResult verifyBundle(ByteSource& in, const fs::path& staging, const BundleLimits& limits) {
  requireEmptyStaging(staging);
  return Reader(in, staging, limits, {}, false).run();
}

}  // namespace ferry
