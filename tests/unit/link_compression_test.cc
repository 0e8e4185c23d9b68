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
  EXPECT_FALSE(c.measure) << "no link to measure";
  EXPECT_EQ(c.reason,
            "none (the target, 127.0.0.3, is an address of this machine: no wire to save, and "
            "compressing would only add downtime)");
  EXPECT_EQ(chooseCompression("tcp://10.1.2.3:40000", kHere).level, 0)
      << "a local interface's address is this machine too, loopback or not";
  EXPECT_EQ(chooseCompression("tcp://[::1]:40000", {}).level, 0);
}

TEST(ChooseCompression, AnotherMachinesLinkIsMeasured) {
  CompressionChoice c = chooseCompression("tcp://10.9.9.9:40000", kHere);
  EXPECT_EQ(c.level, kRemoteLinkLevel);
  EXPECT_TRUE(c.measure);
  EXPECT_EQ(c.reason, "the target, 10.9.9.9, is not on this machine");
  EXPECT_TRUE(chooseCompression("tcp://db.example:7000", kHere).measure);
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
  CompressionChoice z = askedCompression(3);
  EXPECT_EQ(compressionReport(z, 96 << 20, 51 << 20),
            z.reason + "; measured: 96.0 MiB of data went as 51.0 MiB (53 %)");
  EXPECT_EQ(compressionReport(z, 0, 40), z.reason) << "nothing went as data: no ratio to state";
}

TEST(CompressionReport, AMeasuredChoiceSaysWhatWasMeasuredAndWhatWentCompressed) {
  CompressionChoice c = chooseCompression("tcp://10.9.9.9:1", {});
  RecordCompression::Figures slow{.link_bytes_per_s = 117e6, .ratio = 0.55,
                                  .bytes_per_cpu_s = 480e6, .threads = 2, .level = 1,
                                  .records = 96, .compressed_records = 96};
  EXPECT_EQ(compressionReport(c, 96 << 20, 53 << 20, &slow),
            "zstd level 1 on all 96 records (the target, 10.9.9.9, is not on this machine; its "
            "link carried 117 MB/s raw (measured before the stream); zstd level 1 made this data "
            "55 % of its size at 480 MB/s per core, 2 threads: compressed, the stream moves "
            "213 MB/s of data, raw 117 MB/s; compressed where that is at least 10 % faster); "
            "measured: 96.0 MiB of data went as 53.0 MiB (55 %)");
  c.probe = "18.0 MiB in 160 ms";
  EXPECT_NE(compressionReport(c, 96 << 20, 53 << 20, &slow)
                .find("its link carried 117 MB/s raw (measured before the stream, with 18.0 MiB "
                      "in 160 ms)"),
            std::string::npos);
  RecordCompression::Figures fast = slow;
  fast.link_bytes_per_s = 2.5e9;
  fast.compressed_records = 0;
  std::string s = compressionReport(c, 96 << 20, 96 << 20, &fast);
  EXPECT_EQ(s.rfind("none (the target, 10.9.9.9, is not on this machine; its link carried 2.5 "
                    "GB/s raw",
                    0),
            0u)
      << s;
  EXPECT_EQ(s.find("measured: "), std::string::npos) << "nothing compressed: no ratio to state";
  RecordCompression::Figures mixed = slow;
  mixed.compressed_records = 30;
  s = compressionReport(c, 96 << 20, 80 << 20, &mixed);
  EXPECT_EQ(s.rfind("zstd level 1 on 30 of 96 records, the rest raw (", 0), 0u) << s;
  EXPECT_NE(s.find("one in 8 while it goes raw"), std::string::npos) << s;
}

TEST(FormatRate, DecimalUnitsAsLinksAreRated) {
  EXPECT_EQ(formatRate(117.4e6), "117 MB/s");
  EXPECT_EQ(formatRate(1.94e9), "1.9 GB/s");
  EXPECT_EQ(formatRate(640e3), "640 kB/s");
}

TEST(LocalAddresses, ListsThisMachinesLoopback) {
  std::vector<std::string> here = localAddresses();
  EXPECT_NE(std::find(here.begin(), here.end(), "127.0.0.1"), here.end());
}

}  // namespace
}  // namespace ferry::agent
