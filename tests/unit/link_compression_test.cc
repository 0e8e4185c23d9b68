// The per-link compression choice of a migration stream, and what its
// figures say about it.
#include "agent/link_compression.h"

#include <gtest/gtest.h>

#include <algorithm>

namespace ferry::agent {
namespace {

const std::vector<std::string> kHere = {"127.0.0.1", "::1", "10.1.2.3",
                                        "fe80::1c2d:3eff:fe4f:5061"};

TEST(EndpointHost, TakesTheHostOfTcpEndpoints) {
  EXPECT_EQ(endpointHost("tcp://127.0.0.3:41234"), "127.0.0.3");
  EXPECT_EQ(endpointHost("tcp://[::1]:41234"), "::1");
  EXPECT_EQ(endpointHost("tcp://[fe80::1]:9"), "fe80::1");
  EXPECT_EQ(endpointHost("tcp://db.example:7000"), "db.example");
  EXPECT_EQ(endpointHost("ipc:///run/x"), "");
  EXPECT_EQ(endpointHost("tcp://[::1"), "");
}

TEST(LocalAddress, LoopbackIsAllOf127And1AndLocalhost) {
  for (const char* a :
       {"127.0.0.1", "127.0.0.3", "127.255.0.9", "::1", "::ffff:127.0.0.2", "localhost"}) {
    EXPECT_TRUE(isLoopbackAddress(a)) << a;
    EXPECT_TRUE(isLocalAddress(a, {})) << a << ": loopback is local without any interface list";
  }
  for (const char* a : {"128.0.0.1", "10.1.2.3", "::2", "", "db.example"})
    EXPECT_FALSE(isLoopbackAddress(a)) << a;
}

TEST(LocalAddress, AnInterfaceAddressIsLocalComparedByValue) {
  EXPECT_TRUE(isLocalAddress("10.1.2.3", kHere));
  EXPECT_TRUE(isLocalAddress("::ffff:10.1.2.3", kHere)) << "v4-mapped is the same address";
  EXPECT_TRUE(isLocalAddress("FE80::1C2D:3EFF:FE4F:5061", kHere)) << "IPv6 text differs, value not";
  EXPECT_TRUE(isLocalAddress("0.0.0.0", {})) << "connecting to the unspecified address stays here";
  EXPECT_TRUE(isLocalAddress("::", {}));
  EXPECT_FALSE(isLocalAddress("10.1.2.4", kHere));
  EXPECT_FALSE(isLocalAddress("db.example", kHere)) << "names are not resolved";
  EXPECT_FALSE(isLocalAddress("", kHere));
}

TEST(ChooseCompression, NoneToThisMachineSaidWithTheAddress) {
  CompressionChoice c = chooseCompression("tcp://127.0.0.3:40000", {});
  EXPECT_EQ(c.level, 0);
  EXPECT_EQ(c.reason,
            "none (the target, 127.0.0.3, is an address of this machine: no wire to save, and "
            "compressing would only add downtime)");
  EXPECT_EQ(chooseCompression("tcp://10.1.2.3:40000", kHere).level, 0)
      << "a local interface's address is this machine too, loopback or not";
  EXPECT_EQ(chooseCompression("tcp://[::1]:40000", {}).level, 0);
}

TEST(ChooseCompression, ZstdToAnotherMachineSaidWithTheReason) {
  CompressionChoice c = chooseCompression("tcp://10.9.9.9:40000", kHere);
  EXPECT_EQ(c.level, kRemoteLinkLevel);
  EXPECT_EQ(c.reason,
            "zstd level 1 (the target, 10.9.9.9, is not on this machine: over a network link "
            "slower than the compressor, about 3 Gbit/s per core, compressing saves more time "
            "than it costs)");
  EXPECT_EQ(chooseCompression("tcp://db.example:7000", kHere).level, kRemoteLinkLevel);
}

TEST(ChooseCompression, AnAskedLevelIsKeptAndSaidSo) {
  EXPECT_EQ(askedCompression(3).level, 3);
  EXPECT_EQ(askedCompression(3).reason, "zstd level 3 (as asked)");
  EXPECT_EQ(askedCompression(0).level, 0);
  EXPECT_EQ(askedCompression(0).reason, "none (as asked)");
}

TEST(CompressionReport, AddsWhatCompressionAchievedOnlyWhenItRan) {
  CompressionChoice none = chooseCompression("tcp://127.0.0.3:1", {});
  EXPECT_EQ(compressionReport(none, 100 << 20, 100 << 20), none.reason);
  CompressionChoice z = chooseCompression("tcp://10.9.9.9:1", {});
  EXPECT_EQ(compressionReport(z, 96 << 20, 51 << 20),
            z.reason + "; measured: 96.0 MiB of data went as 51.0 MiB (53 %)");
  EXPECT_EQ(compressionReport(z, 0, 40), z.reason) << "nothing went as data: no ratio to state";
}

TEST(LocalAddresses, ListsThisMachinesLoopback) {
  std::vector<std::string> here = localAddresses();
  EXPECT_NE(std::find(here.begin(), here.end(), "127.0.0.1"), here.end());
}

}  // namespace
}  // namespace ferry::agent
