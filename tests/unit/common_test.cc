// common/: the size formatter and kernel randomness.
#include <gtest/gtest.h>

#include <set>

#include "common/random.h"
#include "common/units.h"

namespace ferry {
namespace {

TEST(FormatBytes, PicksTheLargestUnitBelow1024WithOneDecimal) {
  EXPECT_EQ(formatBytes(0), "0 B");
  EXPECT_EQ(formatBytes(1023), "1023 B");
  EXPECT_EQ(formatBytes(1024), "1.0 KiB");
  EXPECT_EQ(formatBytes(1536), "1.5 KiB");
  EXPECT_EQ(formatBytes(uint64_t{3} << 20), "3.0 MiB");
  EXPECT_EQ(formatBytes((uint64_t{5} << 30) / 4), "1.2 GiB");
  EXPECT_EQ(formatBytes(uint64_t{2048} << 40), "2048.0 TiB");
}

TEST(RandomBytes, GivesTheLengthAskedForAndDiffersBetweenCalls) {
  EXPECT_EQ(randomBytes(0).size(), 0u);
  EXPECT_EQ(randomBytes(32).size(), 32u);
  // 32 random bytes repeating would mean the source is not random at all.
  EXPECT_NE(randomBytes(32), randomBytes(32));
  std::set<uint64_t> seen;
  for (int i = 0; i < 100; ++i) seen.insert(randomU64());
  EXPECT_EQ(seen.size(), 100u);
}

}  // namespace
}  // namespace ferry
