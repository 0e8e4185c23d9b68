#include "common/ipv4.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/error.h"
#include "tests/support/error_of.h"

namespace ferry {
namespace {

using test::errorOf;

TEST(Ipv4, AddressesParseStrictlyAndPrintBack) {
  EXPECT_EQ(parseIpv4("10.66.0.1").value, 0x0A420001u);
  EXPECT_EQ(toString(parseIpv4("255.255.255.255")), "255.255.255.255");
  EXPECT_EQ(toString(parseIpv4("0.0.0.0")), "0.0.0.0");
  for (const char* bad : {"", "10.66.0", "10.66.0.1.2", "10.66.0.256", "10.066.0.1", "10.66.0.1 ",
                          "a.b.c.d", "10..0.1", "-1.0.0.0", "10.66.0.1/32"}) {
    std::string e = errorOf([&] { parseIpv4(bad, "--ip"); });
    EXPECT_NE(e.find("--ip '" + std::string(bad) + "'"), std::string::npos) << bad << ": " << e;
  }
}

TEST(Ipv4, RangesParseAndSayWhatWasMeantWhenHostBitsAreSet) {
  Cidr c = parseCidr("10.66.0.0/16");
  EXPECT_EQ(toString(c), "10.66.0.0/16");
  EXPECT_EQ(c.size(), 65536u);
  EXPECT_EQ(toString(c.firstHost()), "10.66.0.1");
  EXPECT_EQ(toString(c.lastHost()), "10.66.255.254");
  EXPECT_EQ(toString(c.broadcast()), "10.66.255.255");
  EXPECT_TRUE(c.contains(parseIpv4("10.66.200.3")));
  EXPECT_FALSE(c.contains(parseIpv4("10.67.0.1")));
  EXPECT_EQ(parseCidr("0.0.0.0/0").size(), uint64_t{1} << 32);
  Cidr one = parseCidr("10.1.2.3/32");
  EXPECT_EQ(one.firstHost(), one.lastHost());
  EXPECT_NE(errorOf([] { parseCidr("10.66.1.0/16"); }).find("did you mean 10.66.0.0/16?"),
            std::string::npos);
  for (const char* bad : {"10.66.0.0", "10.66.0.0/", "10.66.0.0/33", "10.66.0.0/016", "10.66.0.0/1a",
                          "/16", "10.66.0.0/16/1"}) {
    EXPECT_NE(errorOf([&] { parseCidr(bad, "--network-cidr"); }).find("--network-cidr"),
              std::string::npos)
        << bad;
  }
}

TEST(Ipv4, OverlapIsAnySharedAddress) {
  EXPECT_TRUE(overlaps(parseCidr("10.66.0.0/16"), parseCidr("10.66.3.0/24")));
  EXPECT_TRUE(overlaps(parseCidr("10.66.3.0/24"), parseCidr("10.66.0.0/16")));
  EXPECT_TRUE(overlaps(parseCidr("0.0.0.0/0"), parseCidr("192.0.2.0/24")));
  EXPECT_FALSE(overlaps(parseCidr("10.66.0.0/16"), parseCidr("10.67.0.0/16")));
  EXPECT_FALSE(overlaps(parseCidr("10.88.0.0/16"), parseCidr("10.89.0.0/24")));
}

TEST(Ipv4, TheMacFollowsTheAddress) {
  EXPECT_EQ(macFor(parseIpv4("10.66.0.1")), "02:66:0a:42:00:01");
  EXPECT_EQ(macFor(parseIpv4("192.168.255.254")), "02:66:c0:a8:ff:fe");
  EXPECT_NE(macFor(parseIpv4("10.66.0.1")), macFor(parseIpv4("10.66.0.2")));
}

}  // namespace
}  // namespace ferry
