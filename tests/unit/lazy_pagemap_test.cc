// lazy_pagemap.h against pagemap images written as CRIU 4.1 writes them
// (the real ones are read in every post-copy migration test).
#include "engine/checkpoint/lazy_pagemap.h"

#include <cstring>
#include <string>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {
namespace {

void varint(std::string& out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
}

void u32(std::string& out, uint32_t v) { out.append(reinterpret_cast<const char*>(&v), 4); }

void message(std::string& img, const std::string& pb) {
  u32(img, static_cast<uint32_t>(pb.size()));
  img += pb;
}

std::string entry(uint64_t vaddr, uint64_t pages, uint32_t flags, bool extra = false) {
  std::string pb;
  varint(pb, 1 << 3);
  varint(pb, vaddr);
  varint(pb, 2 << 3);
  varint(pb, pages);
  if (extra) {  // a field this reader does not know: skipped
    varint(pb, (9 << 3) | 2);
    varint(pb, 3);
    pb += "abc";
  }
  varint(pb, 4 << 3);
  varint(pb, flags);
  return pb;
}

std::string image(const std::vector<std::string>& entries) {
  std::string img;
  u32(img, 0x54564319);
  u32(img, 0x56084025);
  std::string head;
  varint(head, 1 << 3);
  varint(head, 1);
  message(img, head);
  for (const auto& e : entries) message(img, e);
  return img;
}

constexpr uint32_t kParent = 1, kLazy = 2, kPresent = 4;

TEST(LazyPagemap, OnlyTheLazyEntriesOfEachProcessAreTaken) {
  std::string img = image({entry(0x400000, 3, kPresent), entry(0x7f0000000000, 600, kLazy),
                           entry(0x7f0000400000, 1, kLazy | kPresent, true),
                           entry(0x7f0000800000, 5, kParent)});
  auto got = parsePagemapImage(img, 42);
  ASSERT_EQ(got.size(), 2u);
  EXPECT_EQ(got[0].pid, 42u);
  EXPECT_EQ(got[0].vaddr, 0x7f0000000000u);
  EXPECT_EQ(got[0].pages, 600u);
  EXPECT_EQ(got[1].vaddr, 0x7f0000400000u);
  EXPECT_EQ(got[1].pages, 1u);
}

TEST(LazyPagemap, AnImagesDirectoryGivesEveryProcessAndSkipsSharedMemory) {
  TempDir dir("/tmp", "pagemap-test-");
  writeFileAtomic(dir.path() / "pagemap-1.img", image({entry(0x1000, 2, kLazy)}), 0600);
  writeFileAtomic(dir.path() / "pagemap-17.img", image({entry(0x2000, 4, kLazy)}), 0600);
  writeFileAtomic(dir.path() / "pagemap-shmem-5.img", "not read", 0600);
  writeFileAtomic(dir.path() / "pages-1.img", "not read", 0600);
  auto got = lazyPagemap(dir.path());
  ASSERT_EQ(got.size(), 2u);
  uint64_t pages = 0, pids = 0;
  for (const auto& l : got) {
    pages += l.pages;
    pids += l.pid;
  }
  EXPECT_EQ(pages, 6u);
  EXPECT_EQ(pids, 18u);
}

TEST(LazyPagemap, DamagedImagesAreInvalidInputNotCrashes) {
  std::string good = image({entry(0x1000, 2, kLazy)});
  std::vector<std::string> bad = {
      "",
      good.substr(0, 6),
      "XXXXXXXX" + good.substr(8),
      good.substr(0, good.size() - 1),  // a truncated entry
      image({entry(0x1001, 2, kLazy)}),  // not page-aligned
      image({entry(0x1000, 0, kLazy)}),  // no pages
      image({entry(0xfffffffffffff000, 2, kLazy)}),  // past the address space
      image({std::string("\x08", 1)}),  // a field cut short
      image({std::string("\x0f\x01", 2)}),  // an unknown wire type
  };
  // An entry claiming more bytes than the image has.
  std::string huge = good;
  uint32_t len = 1u << 30;
  std::memcpy(huge.data() + good.size() - entry(0x1000, 2, kLazy).size() - 4, &len, 4);
  bad.push_back(huge);
  for (size_t i = 0; i < bad.size(); ++i) {
    try {
      parsePagemapImage(bad[i], 1);
      ADD_FAILURE() << "case " << i << " was accepted";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << "case " << i << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace ferry
