// Record layout shared by the bundle writer and reader (see bundle.h).
#pragma once

#include <bit>
#include <cstdint>
#include <string>
#include <string_view>

#include <xxhash.h>

namespace ferry::bundle_format {

constexpr char kMagic[8] = {'F', 'E', 'R', 'R', 'Y', 'B', 'N', '1'};
constexpr uint32_t kRecordMagic = 0x4B484346;  // "FCHK"
enum RecordType : uint8_t {
  kOpen = 1,
  kData = 2,
  kClose = 3,
  kManifest = 4,
  kBlocks = 5,  // pre-copy: blocks for the receiver to keep (between streams)
  kRefs = 6,    // data of the open stream, as references to kept blocks
  kLastType = kRefs
};
// A reference: u32 length, XXH3-128 of the block (low, high 64 bits).
inline constexpr size_t kRefSize = 20;
enum Codec : uint8_t { kRaw = 0, kZstd = 1 };

struct RecordHeader {
  uint32_t magic = kRecordMagic;
  uint8_t type = 0;
  uint8_t codec = kRaw;
  uint16_t reserved = 0;
  uint32_t stream = 0;
  uint32_t raw_len = 0;
  uint32_t wire_len = 0;
  uint32_t reserved2 = 0;
  uint64_t checksum = 0;
};
static_assert(sizeof(RecordHeader) == 32);
// Headers are written as the in-memory struct: the format is little-endian.
static_assert(std::endian::native == std::endian::little);

inline uint64_t recordChecksum(RecordHeader h, std::string_view raw) {
  h.checksum = 0;
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, &h, sizeof h);
  XXH3_64bits_update(st, raw.data(), raw.size());
  uint64_t v = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return v;
}

// One whole record (header + payload) for `raw`, zstd-compressed at `level`
// when that makes it smaller (level 0: raw). Exposed so tests can build
// hostile bundles with valid checksums.
std::string buildRecord(uint8_t type, uint32_t stream, const std::string& raw, int level);

}  // namespace ferry::bundle_format
