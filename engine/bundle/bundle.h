// The checkpoint bundle: one byte stream carrying everything a checkpoint
// holds, written to any ByteSink (a file for `checkpoint --export`, a network
// stream for a migration) and read back from any ByteSource.
//
// Format (version 1), all integers little-endian:
//   header   "FERRYBN1" u32 version u32 0
//   record*  u32 magic "FCHK", u8 type, u8 codec, u16 0, u32 stream id,
//            u32 raw length, u32 wire length, u32 0, u64 checksum; payload
//   types    1 open a stream (payload: JSON {"kind","name"})
//            2 data (payload: up to 4 MiB of the stream, raw or one zstd frame)
//            3 close a stream
//            4 manifest, the last record (payload: JSON, see below)
//            5 blocks, between streams (payload: u32 length + bytes, repeated):
//              pre-copy blocks for the receiver to keep (blocks.h)
//            6 refs, data of the open stream given as references to blocks
//              the receiver keeps (payload: u32 length + XXH3-128, repeated)
//   checksum XXH3-64 over the record header (checksum field zero) and the raw
//            payload: a flipped bit anywhere is caught. Corruption detection,
//            not authentication -- who may send a bundle is the transport's
//            business (CurveZMQ and a one-time token in the cluster).
// Each data record is an independent zstd frame, so frames compress (and can
// decompress) in parallel; codec 0 (raw) where compression would only cost.
// The manifest lists every stream with its size and XXH3-64, plus free-form
// "info" (CRIU statistics, sizes); nothing may follow it.
// A migration with pre-copy sends blocks while the container runs, then the
// checkpoint with references to them: the manifest's sizes and checksums are
// over the rebuilt streams, so a wrong block cannot go unnoticed.
//
// Streams, by kind (the layout a reader extracts into a staging directory):
//   metadata  checkpoint.json (first: a reader can refuse before the rest)
//   spec      config.json
//   criu      criu/NAME            one per CRIU image file
//   rootfs    rootfs.tar           the rootfs diff, an OCI layer
//   changes   rootfs-changes.json  A/C/D list of the rootfs diff
//   volume    volumes/NAME.tar     one per named volume
//   log       ctr.log              the container's output (its last 16 MiB)
//   pages     page-server          a migration's memory as CRIU's page server
//                                  takes it (checkpoint/page_stream.h): never
//                                  extracted, handed to the reader's caller
//   manifest  manifest.json        (written by the reader from record 4)
#pragma once

#include <cstdint>
#include <filesystem>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/bundle/blocks.h"
#include "engine/bundle/record_compression.h"
#include "common/byte_stream.h"

namespace ferry {

namespace fs = std::filesystem;

inline constexpr uint32_t kBundleFormat = 1;
inline constexpr size_t kBundleChunk = 1 << 20;          // what the writer cuts
inline constexpr size_t kBundleMaxRecord = 4 << 20;      // what a reader accepts

struct BundleEntry {
  std::string kind;
  std::string name;
  uint64_t size = 0;
  uint64_t xxh3 = 0;
};
void to_json(nlohmann::json& j, const BundleEntry& e);
void from_json(const nlohmann::json& j, BundleEntry& e);

// The file an entry lives in, relative to a staging directory. Throws Error
// kInvalidInput for an unknown kind or a name that is not a plain file name.
fs::path stagingPath(const std::string& kind, const std::string& name);

struct BundleWriteOptions {
  int level = 3;    // zstd level; 0 stores raw
  int threads = 2;  // frames compressed at once
  // When set, it chooses each record's level (record_compression.h) and
  // `level` is unused; it must outlive the writer.
  RecordCompression* adaptive = nullptr;
  // The blocks the receiver keeps (pre-copy). When set, CRIU images, the
  // rootfs diff and volumes are cut into blocks and each block the receiver
  // holds goes as a reference; openBlocks() adds to it.
  BlockIndex* known = nullptr;
};

struct BundleWriteStats {
  uint64_t raw_bytes = 0;    // stream bytes, however they went
  uint64_t wire_bytes = 0;   // everything written to the sink
  uint64_t ref_bytes = 0;    // stream bytes that went as references
  uint64_t block_bytes = 0;  // pre-copy blocks sent (before compression)
};

// Writes a bundle. Streams are written one after another: open, write, close.
// Not thread-safe; compression runs on up to `threads` helper threads while
// the caller goes on producing. Blocks on the sink.
class BundleWriter {
 public:
  BundleWriter(ByteSink& out, BundleWriteOptions opts);
  ~BundleWriter();

  // A sink for one stream, valid until closeStream().
  ByteSink& openStream(const std::string& kind, const std::string& name);
  void closeStream();
  // Opens, copies a file and closes.
  void addFile(const std::string& kind, const std::string& name, const fs::path& file);
  // Pre-copy, between streams: a sink whose bytes are cut into blocks
  // (`how`), of which those the receiver does not hold yet are sent for it
  // to keep and added to the options' `known` (which must be set).
  ByteSink& openBlocks(Chunking how);
  struct BlocksStats {
    uint64_t scanned = 0;  // bytes written to the sink
    uint64_t sent = 0;     // bytes of new blocks among them
  };
  BlocksStats closeBlocks();
  // Writes the manifest; nothing may be written after it.
  BundleWriteStats finish(const nlohmann::json& info);

  const std::vector<BundleEntry>& entries() const { return entries_; }
  const BundleWriteStats& stats() const { return stats_; }
  // The sink failed (the peer is gone): nothing more can be written.
  bool broken() const { return broken_; }

 private:
  class StreamSink;
  class BlocksSink;
  void emit(uint8_t type, std::string payload, bool compressible);
  void drain(size_t keep);

  ByteSink& out_;
  BundleWriteOptions opts_;
  std::unique_ptr<StreamSink> current_;
  std::unique_ptr<BlocksSink> blocks_;
  uint32_t next_id_ = 1;
  std::vector<BundleEntry> entries_;
  std::deque<std::future<std::string>> pending_;  // records, in order
  BundleWriteStats stats_;
  bool finished_ = false;
  bool broken_ = false;
};

struct BundleLimits {
  uint64_t max_total_bytes = uint64_t{256} << 30;  // all streams together
  // Why max_total_bytes is what it is, for the error when a bundle exceeds
  // it (e.g. "the free disk of hostB's staging"); empty: the fixed limit.
  std::string max_total_reason;
  // Raw bytes per wire byte, checked on totals once 64 MiB are out. High
  // because touched-but-zero memory pages compress extremely well.
  uint64_t max_ratio = 20000;
  size_t max_streams = 100000;
};

// The limits as they apply to `raw` bytes written from `wire` bytes read of an
// untrusted input that `what` names ("bundle", "image"): throws Error
// kPermanent when raw exceeds a max_total_bytes that has a reason (free
// disk), else kInvalidInput, for too many bytes or, once 64 MiB are out, too
// many per wire byte. Bundles, images and ferry-inspect all check with it.
void checkExpansion(const BundleLimits& limits, uint64_t raw, uint64_t wire,
                    const std::string& what);

// `limits` with max_total_bytes lowered, where it is less, to the free disk of
// the file system holding `dir` less a 256 MiB margin (a full disk is refused
// cleanly, not hit), with the reason saying so for `host`.
BundleLimits boundedByFreeDisk(BundleLimits limits, const fs::path& dir, const std::string& host);

// Called with checkpoint.json's content once the metadata stream is complete
// and before anything else is extracted; throwing refuses the bundle.
using MetadataCheck = std::function<void(const nlohmann::json& metadata)>;

struct BundleReadResult {
  std::vector<BundleEntry> entries;
  nlohmann::json info;   // the manifest's "info"
  uint64_t wire_bytes = 0;
  uint64_t block_bytes = 0;  // pre-copy blocks kept (a migration's)
  uint64_t ref_bytes = 0;    // stream bytes rebuilt from them
  // The pre-copy blocks (null when none came), their file left in staging:
  // post-copy serves the pages it holds from them.
  std::shared_ptr<BlockStore> blocks;
};

// Checks a rootfs-changes.json as strictly as tar member names: a list of
// {"mark": "A"|"C"|"D", "path": relative, no "."/".." or empty components}.
// readBundle runs it on the changes stream. Throws Error kInvalidInput.
void checkChangesList(const std::string& text);

// A stream the reader hands to its caller instead of writing it to staging:
// the "pages" stream.
class DivertedStream : public ByteSink {
 public:
  // The stream ended (each record's checksum held; the manifest's check of
  // the whole comes at the bundle's end). Throwing refuses the bundle.
  virtual void finish() = 0;
};
// Called when the "pages" stream opens; unset, a bundle with one is refused.
using DivertPages = std::function<std::unique_ptr<DivertedStream>()>;

// Reads a whole bundle into `staging` (which must exist and be empty),
// verifying every record's checksum, every stream's size and checksum against
// the manifest, and the limits (references count as the bytes they stand
// for). Pre-copy blocks are kept in staging/.precopy-blocks (left there on
// success: removing staging removes them).
// Files are created beneath staging only (never through a symlink, never
// twice). Throws Error kInvalidInput naming what is wrong (truncated, bad
// checksum, unknown kind, limit exceeded, ...); on failure the caller
// discards staging.
// A "pages" stream goes to what `pages` returns (at most one such stream).
BundleReadResult readBundle(ByteSource& in, const fs::path& staging, const BundleLimits& limits,
                            const MetadataCheck& check = {}, const DivertPages& pages = {});

// Verifies a bundle as readBundle does, writing to `staging` only its
// metadata (checkpoint.json), rootfs-changes.json, the manifest and any
// pre-copy blocks (references are checked against them): every other stream
// is checksummed as it passes and dropped. For showing a bundle
// (ferry-inspect) without unpacking what it holds.
BundleReadResult verifyBundle(ByteSource& in, const fs::path& staging, const BundleLimits& limits);

}  // namespace ferry
