// CRIU's image format (criu/image.c, criu/include/magic.h): a u32 common
// magic and the image's own, then protobuf messages, each after its u32
// length. A pagemap image holds a pagemap_head, then pagemap_entry
// messages (images/pagemap.proto): vaddr = 1, nr_pages = 2, in_parent = 3,
// flags = 4 (PE_PARENT 1, PE_LAZY 2, PE_PRESENT 4).
#include "engine/checkpoint/lazy_pagemap.h"

#include <cstring>
#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {

namespace {

constexpr uint32_t kCommonMagic = 0x54564319, kPagemapMagic = 0x56084025;
constexpr uint32_t kLazy = 1 << 1;
constexpr size_t kMaxEntry = 1 << 16;

[[noreturn]] void bad(uint64_t pid, const std::string& what) {
  throwInvalidInput("pagemap-" + std::to_string(pid) + ".img is not a CRIU pagemap: " + what);
}

// A protobuf varint; false at the end of `in` mid-varint.
bool varint(std::string_view& in, uint64_t& v) {
  v = 0;
  for (int shift = 0; shift < 64 && !in.empty(); shift += 7) {
    uint8_t b = static_cast<uint8_t>(in.front());
    in.remove_prefix(1);
    v |= uint64_t{b & 0x7fu} << shift;
    if (!(b & 0x80)) return true;
  }
  return false;
}

struct Entry {
  uint64_t vaddr = 0, pages = 0, flags = 0;
  bool has_vaddr = false, has_pages = false;
};

Entry parseEntry(std::string_view msg, uint64_t pid) {
  Entry e;
  while (!msg.empty()) {
    uint64_t key, v;
    if (!varint(msg, key)) bad(pid, "a truncated field");
    switch (key & 7) {
      case 0:
        if (!varint(msg, v)) bad(pid, "a truncated varint");
        if ((key >> 3) == 1) {
          e.vaddr = v;
          e.has_vaddr = true;
        } else if ((key >> 3) == 2) {
          e.pages = v;
          e.has_pages = true;
        } else if ((key >> 3) == 4) {
          e.flags = v;
        }
        break;
      case 1:
        if (msg.size() < 8) bad(pid, "a truncated field");
        msg.remove_prefix(8);
        break;
      case 2:
        if (!varint(msg, v) || v > msg.size()) bad(pid, "a truncated field");
        msg.remove_prefix(v);
        break;
      case 5:
        if (msg.size() < 4) bad(pid, "a truncated field");
        msg.remove_prefix(4);
        break;
      default:
        bad(pid, "an unknown field type");
    }
  }
  return e;
}

}  // namespace

std::vector<LazyPages> parsePagemapImage(std::string_view bytes, uint64_t pid) {
  uint32_t magic[2];
  if (bytes.size() < sizeof magic) bad(pid, "too short");
  std::memcpy(magic, bytes.data(), sizeof magic);
  if (magic[0] != kCommonMagic || magic[1] != kPagemapMagic) bad(pid, "wrong magic");
  bytes.remove_prefix(sizeof magic);
  std::vector<LazyPages> out;
  bool head = true;
  while (!bytes.empty()) {
    uint32_t len;
    if (bytes.size() < sizeof len) bad(pid, "a truncated entry");
    std::memcpy(&len, bytes.data(), sizeof len);
    bytes.remove_prefix(sizeof len);
    if (len > kMaxEntry || len > bytes.size()) bad(pid, "a truncated entry");
    std::string_view msg = bytes.substr(0, len);
    bytes.remove_prefix(len);
    if (head) {  // pagemap_head {pages_id}
      head = false;
      continue;
    }
    Entry e = parseEntry(msg, pid);
    if (!e.has_vaddr || !e.has_pages) bad(pid, "an entry without its address or size");
    if (!(e.flags & kLazy)) continue;
    if (e.pages == 0 || e.pages > UINT32_MAX || e.vaddr % 4096 != 0 ||
        e.vaddr > UINT64_MAX - e.pages * 4096) {
      bad(pid, "an entry of no pages or outside the address space");
    }
    out.push_back({pid, e.vaddr, static_cast<uint32_t>(e.pages)});
  }
  if (head) bad(pid, "no header");
  return out;
}

std::vector<LazyPages> lazyPagemap(const std::filesystem::path& images) {
  std::vector<LazyPages> out;
  for (const auto& f : std::filesystem::directory_iterator(images)) {
    const std::string name = f.path().filename().string();
    // pagemap-PID.img; pagemap-shmem-ID.img holds shared memory, never lazy.
    constexpr std::string_view kPrefix = "pagemap-", kSuffix = ".img";
    if (name.size() <= kPrefix.size() + kSuffix.size() || name.rfind(kPrefix, 0) != 0 ||
        name.compare(name.size() - kSuffix.size(), kSuffix.size(), kSuffix) != 0) {
      continue;
    }
    std::string id = name.substr(kPrefix.size(), name.size() - kPrefix.size() - kSuffix.size());
    if (id.empty() || id.size() > 10 || id.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    auto ranges = parsePagemapImage(readFile(f.path()), std::stoull(id));
    out.insert(out.end(), ranges.begin(), ranges.end());
  }
  return out;
}

}  // namespace ferry
