// The heartbeat's load figures from /proc text.
#include "agent/host_metrics.h"

#include <gtest/gtest.h>

namespace ferry::agent {
namespace {

constexpr const char* kMeminfo =
    "MemTotal:        8000000 kB\n"
    "MemFree:         1000000 kB\n"
    "MemAvailable:    6000000 kB\n"
    "Buffers:          100000 kB\n";

TEST(HostLoad, MemoryUsedIsTotalLessAvailable) {
  HostLoad l = parseHostLoad(kMeminfo, "1.00 0.50 0.25 1/100 42\n", 4);
  EXPECT_EQ(l.memory_total, 8000000ull * 1024);
  EXPECT_EQ(l.memory_used, 2000000ull * 1024);
  EXPECT_DOUBLE_EQ(l.cpu_percent, 25.0);
}

TEST(HostLoad, CpuIsCappedAtAHundredAndZeroWithoutCores) {
  EXPECT_DOUBLE_EQ(parseHostLoad(kMeminfo, "9.00 1 1 1/1 1\n", 2).cpu_percent, 100.0);
  EXPECT_DOUBLE_EQ(parseHostLoad(kMeminfo, "9.00 1 1 1/1 1\n", 0).cpu_percent, 0.0);
}

TEST(HostLoad, MissingFiguresCountZero) {
  HostLoad l = parseHostLoad("", "", 4);
  EXPECT_EQ(l.memory_total, 0u);
  EXPECT_EQ(l.memory_used, 0u);
  EXPECT_DOUBLE_EQ(l.cpu_percent, 0.0);
}

}  // namespace
}  // namespace ferry::agent
