// The drain conditions without a loaded host: PSI text in, and a policy fed
// one look per heartbeat.
#include "agent/drain_policy.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace ferry::agent {
namespace {

using ::testing::HasSubstr;

constexpr const char* kPsi =
    "some avg10=12.50 avg60=3.10 avg300=0.80 total=123456\n"
    "full avg10=1.00 avg60=0.20 avg300=0.05 total=2345\n";

TEST(PsiParse, ReadsTheSomeLinesAvg10) {
  EXPECT_EQ(parsePsiSomeAvg10(kPsi), 12.5);
  EXPECT_EQ(parsePsiSomeAvg10("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n"), 0.0);
}

TEST(PsiParse, RefusesWhatIsNotPsi) {
  EXPECT_EQ(parsePsiSomeAvg10(""), std::nullopt) << "no PSI in this kernel: empty read";
  EXPECT_EQ(parsePsiSomeAvg10("full avg10=1.00 avg60=0.20\n"), std::nullopt);
  EXPECT_EQ(parsePsiSomeAvg10("some avg60=1.00 avg10=2.00\n"), std::nullopt);
  EXPECT_EQ(parsePsiSomeAvg10("some avg10=abc avg60=1.00\n"), std::nullopt);
  EXPECT_EQ(parsePsiSomeAvg10("some avg10= avg60=1.00\n"), std::nullopt);
}

HostPressure memory(double avg10) { return {.memory_some_avg10 = avg10}; }
HostPressure diskFree(double percent) { return {.disk_free_percent = percent}; }

TEST(DrainPolicy, AsksOnlyAfterThreeLooksInARow) {
  DrainPolicy p(/*memory_pressure_above=*/10, /*disk_free_below=*/0);
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  auto why = p.observe(memory(20));
  ASSERT_TRUE(why);
  EXPECT_THAT(*why, HasSubstr("memory pressure 20.0"));
}

TEST(DrainPolicy, AClearLookRestartsTheStreak) {
  DrainPolicy p(10, 0);
  p.observe(memory(20));
  p.observe(memory(20));
  EXPECT_EQ(p.observe(memory(5)), std::nullopt);
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  EXPECT_TRUE(p.observe(memory(20)));
}

TEST(DrainPolicy, AsksOncePerEpisodeAndReArmsWhenCleared) {
  DrainPolicy p(10, 0);
  for (int i = 0; i < kDrainStreak; ++i) p.observe(memory(20));
  for (int i = 0; i < 10; ++i) {
    EXPECT_EQ(p.observe(memory(20)), std::nullopt) << "asked again in the same episode";
  }
  EXPECT_EQ(p.observe(memory(1)), std::nullopt);  // cleared
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  EXPECT_EQ(p.observe(memory(20)), std::nullopt);
  EXPECT_TRUE(p.observe(memory(20))) << "a new episode asks again";
}

TEST(DrainPolicy, LowDiskAsksWithItsReason) {
  DrainPolicy p(0, /*disk_free_below=*/15);
  std::optional<std::string> why;
  for (int i = 0; i < kDrainStreak; ++i) why = p.observe(diskFree(4));
  ASSERT_TRUE(why);
  EXPECT_THAT(*why, HasSubstr("4.0"));
  EXPECT_THAT(*why, HasSubstr("free, below 15"));
}

TEST(DrainPolicy, OffOrUnknownNeverAsks) {
  DrainPolicy off(0, 0);
  EXPECT_FALSE(off.enabled());
  DrainPolicy memory_only(10, 0);
  EXPECT_TRUE(memory_only.enabled());
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(off.observe({.memory_some_avg10 = 99, .disk_free_percent = 0}), std::nullopt);
    EXPECT_EQ(memory_only.observe(diskFree(0)), std::nullopt) << "disk is not its condition";
    EXPECT_EQ(memory_only.observe({}), std::nullopt) << "no PSI: unknown, not pressure";
  }
}

TEST(DrainPolicy, AtTheLimitIsNotBeyondIt) {
  DrainPolicy p(10, 15);
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(p.observe({.memory_some_avg10 = 10, .disk_free_percent = 15}), std::nullopt);
  }
}

}  // namespace
}  // namespace ferry::agent
