#include "engine/runtime/criu_stats.h"

#include <cstring>

#include <gtest/gtest.h>

#include "common/error.h"

namespace ferry {

namespace {

void putU32(std::string& s, uint32_t v) { s.append(reinterpret_cast<const char*>(&v), 4); }
void putVarint(std::string& s, uint64_t v) {
  while (v >= 0x80) {
    s.push_back(static_cast<char>((v & 0x7f) | 0x80));
    v >>= 7;
  }
  s.push_back(static_cast<char>(v));
}
void putField(std::string& s, uint32_t field, uint64_t v) {
  putVarint(s, field << 3);
  putVarint(s, v);
}
void putMessage(std::string& s, uint32_t field, const std::string& msg) {
  putVarint(s, (field << 3) | 2);
  putVarint(s, msg.size());
  s += msg;
}

// A stats image as CRIU writes it: service magic, stats magic, size, entry.
std::string statsImage(const std::string& entry) {
  std::string img;
  putU32(img, 0x55105940);
  putU32(img, 0x57093306);
  putU32(img, static_cast<uint32_t>(entry.size()));
  return img + entry;
}

}  // namespace

TEST(CriuStats, ParsesDumpStats) {
  std::string dump;
  putField(dump, 1, 1500);     // freezing_time
  putField(dump, 2, 250000);   // frozen_time
  putField(dump, 3, 1000);
  putField(dump, 4, 2000);
  putField(dump, 5, 300000);   // pages_scanned (> 2^16: multi-byte varint)
  putField(dump, 6, 0);
  putField(dump, 7, 262144);   // pages_written
  putField(dump, 9, 0);        // pages_lazy: ignored
  std::string entry;
  putMessage(entry, 1, dump);
  CriuStats s = parseCriuStats(statsImage(entry));
  ASSERT_TRUE(s.dump);
  EXPECT_FALSE(s.restore);
  EXPECT_EQ(s.dump->freezing_time_us, 1500u);
  EXPECT_EQ(s.dump->frozen_time_us, 250000u);
  EXPECT_EQ(s.dump->pages_scanned, 300000u);
  EXPECT_EQ(s.dump->pages_written, 262144u);
}

TEST(CriuStats, ParsesRestoreStats) {
  std::string r;
  putField(r, 1, 10);
  putField(r, 2, 20);
  putField(r, 3, 300);
  putField(r, 4, 4000);
  putField(r, 5, 50);
  std::string entry;
  putMessage(entry, 2, r);
  CriuStats s = parseCriuStats(statsImage(entry));
  ASSERT_TRUE(s.restore);
  EXPECT_EQ(s.restore->restore_time_us, 4000u);
  EXPECT_EQ(s.restore->pages_restored, 50u);
}

TEST(CriuStats, RejectsWrongMagicAndTruncation) {
  std::string entry;
  putMessage(entry, 1, std::string("\x08\x01", 2));
  std::string good = statsImage(entry);
  EXPECT_NO_THROW(parseCriuStats(good));
  std::string bad_magic = good;
  bad_magic[4] ^= 1;
  EXPECT_THROW(parseCriuStats(bad_magic), Error);
  for (size_t cut : {size_t{3}, size_t{10}, good.size() - 1}) {
    EXPECT_THROW(parseCriuStats(good.substr(0, cut)), Error) << "cut at " << cut;
  }
}

}  // namespace ferry
