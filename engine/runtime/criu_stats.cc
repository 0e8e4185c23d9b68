#include "engine/runtime/criu_stats.h"

#include <cstring>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

namespace {

// CRIU's image magics (criu/include/magic.h).
constexpr uint32_t kImgCommonMagic = 0x54564319;
constexpr uint32_t kImgServiceMagic = 0x55105940;
constexpr uint32_t kStatsMagic = 0x57093306;

[[noreturn]] void bad(const std::string& why) {
  throw Error(ErrorCategory::kInvalidInput, "not a CRIU stats image: " + why);
}

class Reader {
 public:
  explicit Reader(std::string_view b) : b_(b) {}
  bool done() const { return b_.empty(); }
  uint32_t u32() {
    if (b_.size() < 4) bad("truncated");
    uint32_t v;
    std::memcpy(&v, b_.data(), 4);  // CRIU writes host byte order (x86: little)
    b_.remove_prefix(4);
    return v;
  }
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (b_.empty()) bad("truncated varint");
      uint8_t c = static_cast<uint8_t>(b_.front());
      b_.remove_prefix(1);
      v |= uint64_t(c & 0x7f) << shift;
      if (!(c & 0x80)) return v;
    }
    bad("varint too long");
  }
  std::string_view bytes(size_t n) {
    if (b_.size() < n) bad("truncated field");
    auto out = b_.substr(0, n);
    b_.remove_prefix(n);
    return out;
  }
  // Skips a field of the given wire type.
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: bytes(8); break;
      case 2: bytes(varint()); break;
      case 5: bytes(4); break;
      default: bad("unknown wire type " + std::to_string(wire));
    }
  }

 private:
  std::string_view b_;
};

// Calls f(field_number, value) for every varint field of a message.
template <class F>
void eachVarint(std::string_view msg, F&& f) {
  Reader r(msg);
  while (!r.done()) {
    uint64_t key = r.varint();
    auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (wire == 0) {
      f(field, r.varint());
    } else {
      r.skip(wire);
    }
  }
}

CriuDumpStats parseDump(std::string_view msg) {
  CriuDumpStats s;
  eachVarint(msg, [&](uint32_t field, uint64_t v) {
    switch (field) {
      case 1: s.freezing_time_us = static_cast<uint32_t>(v); break;
      case 2: s.frozen_time_us = static_cast<uint32_t>(v); break;
      case 3: s.memdump_time_us = static_cast<uint32_t>(v); break;
      case 4: s.memwrite_time_us = static_cast<uint32_t>(v); break;
      case 5: s.pages_scanned = v; break;
      case 6: s.pages_skipped_parent = v; break;
      case 7: s.pages_written = v; break;
      default: break;
    }
  });
  return s;
}

CriuRestoreStats parseRestore(std::string_view msg) {
  CriuRestoreStats s;
  eachVarint(msg, [&](uint32_t field, uint64_t v) {
    switch (field) {
      case 1: s.pages_compared = v; break;
      case 2: s.pages_skipped_cow = v; break;
      case 3: s.forking_time_us = static_cast<uint32_t>(v); break;
      case 4: s.restore_time_us = static_cast<uint32_t>(v); break;
      case 5: s.pages_restored = v; break;
      default: break;
    }
  });
  return s;
}

}  // namespace

CriuStats parseCriuStats(std::string_view image) {
  Reader r(image);
  uint32_t magic = r.u32();
  if (magic == kImgServiceMagic || magic == kImgCommonMagic) magic = r.u32();
  if (magic != kStatsMagic) bad("magic 0x" + [&] {
    char buf[16];
    std::snprintf(buf, sizeof buf, "%08x", magic);
    return std::string(buf);
  }());
  uint32_t size = r.u32();
  Reader entry(r.bytes(size));
  CriuStats stats;
  while (!entry.done()) {
    uint64_t key = entry.varint();
    auto field = static_cast<uint32_t>(key >> 3), wire = static_cast<uint32_t>(key & 7);
    if (wire != 2) {
      entry.skip(wire);
      continue;
    }
    std::string_view sub = entry.bytes(entry.varint());
    if (field == 1) stats.dump = parseDump(sub);
    if (field == 2) stats.restore = parseRestore(sub);
  }
  return stats;
}

std::optional<CriuStats> readCriuStats(const std::filesystem::path& file) {
  if (!pathExists(file)) return std::nullopt;
  return withContext("reading " + file.string(), [&] { return parseCriuStats(readFile(file)); });
}

void to_json(nlohmann::json& j, const CriuDumpStats& s) {
  j = {{"freezing_time_us", s.freezing_time_us}, {"frozen_time_us", s.frozen_time_us},
       {"memdump_time_us", s.memdump_time_us},   {"memwrite_time_us", s.memwrite_time_us},
       {"pages_scanned", s.pages_scanned},       {"pages_skipped_parent", s.pages_skipped_parent},
       {"pages_written", s.pages_written}};
}

void from_json(const nlohmann::json& j, CriuDumpStats& s) {
  s.freezing_time_us = j.value("freezing_time_us", 0u);
  s.frozen_time_us = j.value("frozen_time_us", 0u);
  s.memdump_time_us = j.value("memdump_time_us", 0u);
  s.memwrite_time_us = j.value("memwrite_time_us", 0u);
  s.pages_scanned = j.value("pages_scanned", uint64_t{0});
  s.pages_skipped_parent = j.value("pages_skipped_parent", uint64_t{0});
  s.pages_written = j.value("pages_written", uint64_t{0});
}

void to_json(nlohmann::json& j, const CriuRestoreStats& s) {
  j = {{"pages_compared", s.pages_compared}, {"pages_skipped_cow", s.pages_skipped_cow},
       {"forking_time_us", s.forking_time_us}, {"restore_time_us", s.restore_time_us},
       {"pages_restored", s.pages_restored}};
}

}  // namespace ferry
