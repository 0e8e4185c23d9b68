// Content-addressed blocks: what pre-copy moves while a container runs.
//
// Bytes are cut into blocks and each block is known by the XXH3-128 of its
// content. The sender remembers which blocks the receiver holds (BlockIndex);
// the receiver keeps the blocks it was sent (BlockStore). A later checkpoint
// then sends a block the receiver holds as a 20-byte reference instead of its
// bytes (bundle.h, record types "blocks" and "refs").
//
// Two ways to cut, so that the same content is cut the same way wherever it
// appears:
//   kPages    fixed 4 KiB blocks: memory, read page by page from a running
//             process, lands page-aligned in CRIU's pages-*.img.
//   kContent  content-defined blocks (a gear rolling hash: 2 KiB min, about
//             8 KiB on average, 64 KiB max) for tar streams, where an added or
//             grown file shifts everything after it: the cut points move with
//             the content, so the blocks after a change still match.
//
// A hash names content only for blocks that crossed an authenticated stream
// and were hashed by the receiver itself; a sender can reference only what it
// sent before in the same stream. Not thread-safe.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>

#include "common/fd.h"

namespace ferry {

inline constexpr size_t kPageBlock = 4096;
inline constexpr size_t kMinContentBlock = 2048;
inline constexpr size_t kMaxContentBlock = 64 * 1024;

struct BlockHash {
  uint64_t lo = 0;
  uint64_t hi = 0;
  bool operator==(const BlockHash&) const = default;
};
struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const { return static_cast<size_t>(h.lo); }
};

BlockHash hashBlock(std::string_view block);

enum class Chunking { kPages, kContent };

// Cuts a byte stream into blocks as it is fed; the blocks do not depend on
// how the stream was split into feed() calls.
class Chunker {
 public:
  using Emit = std::function<void(std::string_view block)>;
  explicit Chunker(Chunking how) : how_(how) {}
  // Emits every block that is complete in what was fed so far.
  void feed(std::string_view data, const Emit& emit);
  // Emits what is left as the last block (none when nothing is left).
  void finish(const Emit& emit);

 private:
  // Length of the first block of `buf`, or 0 when more bytes are needed.
  size_t cut(std::string_view buf, bool last) const;

  Chunking how_;
  std::string pending_;
};

// The sender's view: the blocks the receiver holds.
class BlockIndex {
 public:
  bool contains(const BlockHash& h) const { return known_.count(h) != 0; }
  // True when h was not known before.
  bool insert(const BlockHash& h) { return known_.insert(h).second; }
  size_t size() const { return known_.size(); }

 private:
  std::unordered_set<BlockHash, BlockHashHasher> known_;
};

// The receiver's blocks, in one append-only file, removed with the store
// unless kept.
class BlockStore {
 public:
  // Creates `file` (which must not exist).
  explicit BlockStore(std::filesystem::path file);
  ~BlockStore();
  // Leaves the file for its directory's owner to remove (freeing gigabytes
  // of cached pages takes a good part of a second: a restore should not
  // wait for it, nor share the CPU with it).
  void keepFile() { keep_ = true; }
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  // Keeps a block (once: a block already held is not written again).
  void add(std::string_view block);
  // Writes the referenced blocks, in order, to `out` (in pieces of up to
  // 1 MiB, reading runs that lie side by side in the file at once). Throws
  // Error kInvalidInput when a reference names a block this store does not
  // hold or gives another length for it.
  struct Ref {
    BlockHash hash;
    uint32_t length = 0;
  };
  void copyOut(const std::vector<Ref>& refs, const std::function<void(std::string_view)>& out);

  uint64_t bytes() const { return end_; }
  size_t blocks() const { return index_.size(); }

 private:
  struct Location {
    uint64_t offset;
    uint32_t length;
  };
  std::filesystem::path file_;
  UniqueFd fd_;
  bool keep_ = false;
  uint64_t end_ = 0;
  std::unordered_map<BlockHash, Location, BlockHashHasher> index_;
};

}  // namespace ferry
