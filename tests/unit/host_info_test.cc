#include "engine/runtime/host_probe.h"

#include <linux/magic.h>

#include <gtest/gtest.h>

#include "common/fs.h"
#include "engine/runtime/page_server_guard.h"

namespace ferry {

TEST(HostInfo, ParsesToolVersions) {
  EXPECT_EQ(parseCriuVersion("Version: 4.1.1\n"), "4.1.1");
  EXPECT_EQ(parseCriuVersion("Version: 3.17.1\nGitID: v3.17.1\n"), "3.17.1");
  EXPECT_EQ(parseRuncVersion("runc version 1.1.5+ds1\ncommit: 1.1.5+ds1-1+deb12u1\nspec: 1.0.2-dev\n"),
            "1.1.5+ds1");
  EXPECT_EQ(parseConmonVersion("conmon version 2.1.6\ncommit: unknown\n"), "2.1.6");
  EXPECT_EQ(parseCriuVersion("garbage"), "");
}

TEST(HostInfo, ParsesCpuFlagsFromTheFirstProcessor) {
  std::string cpuinfo =
      "processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: sse2 fpu avx2 sse2\n\n"
      "processor\t: 1\nflags\t\t: fpu\n";
  EXPECT_EQ(parseCpuFlags(cpuinfo), (std::vector<std::string>{"avx2", "fpu", "sse2"}));
  EXPECT_TRUE(parseCpuFlags("processor: 0\n").empty());
}

TEST(HostInfo, ParsesOsRelease) {
  std::string os = "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\n"
                   "VERSION_ID=\"12\"\nID=debian\n";
  EXPECT_EQ(osReleaseValue(os, "ID"), "debian");
  EXPECT_EQ(osReleaseValue(os, "VERSION_ID"), "12");
  EXPECT_EQ(osReleaseValue(os, "NAME"), "Debian GNU/Linux");
  EXPECT_EQ(osReleaseValue(os, "MISSING"), "");
}

TEST(HostInfo, CgroupVersionFromFsMagic) {
  EXPECT_EQ(cgroupVersionFromFsType(CGROUP2_SUPER_MAGIC), 2);
  EXPECT_EQ(cgroupVersionFromFsType(TMPFS_MAGIC), 1);
  EXPECT_EQ(cgroupVersionFromFsType(0x1234), 0);
}

TEST(HostInfo, JsonRoundTrip) {
  HostInfo h;
  h.host_name = "hostA";
  h.kernel = "6.18.0";
  h.arch = "x86_64";
  h.cpu_flags = {"avx2", "sse2"};
  h.page_size = 4096;
  h.criu_version = "4.1.1";
  h.runtime_version = "1.1.5";
  h.cgroup_version = 1;
  h.uffd = true;
  h.postcopy_unavailable = "turned off on this host";
  h.nftables_lock = true;
  nlohmann::json j = h;
  EXPECT_EQ(j["nftables_lock"], true);
  EXPECT_EQ(nlohmann::json(j.get<HostInfo>()), j);
}

// A checkpoint of a ferry older than the nftables lock was locked with
// CRIU's default, iptables.
TEST(HostInfo, AnOlderCheckpointsLockIsIptables) {
  HostInfo h;
  h.nftables_lock = true;
  nlohmann::json j = h;
  j.erase("nftables_lock");
  EXPECT_FALSE(j.get<HostInfo>().nftables_lock);
}

// A host's metadata from a ferry older than post-copy never says it can.
TEST(HostInfo, AnOlderHostsMetadataHasNoPostcopy) {
  HostInfo h;
  h.host_name = "old";
  nlohmann::json j = h;
  j.erase("postcopy_unavailable");
  EXPECT_EQ(j.get<HostInfo>().postcopy_unavailable, "its ferry is older than post-copy");
}

TEST(HostInfo, PostcopyNeedsUffdThePipeSizeUnprivilegedUffdAndThePageServerGuard) {
  EXPECT_EQ(postcopyUnavailable(true, kPostcopyPipeBytes, true, true), "");
  EXPECT_NE(postcopyUnavailable(false, kPostcopyPipeBytes, true, true).find("userfaultfd"),
            std::string::npos);
  std::string pipe = postcopyUnavailable(true, 1048576, true, true);
  EXPECT_NE(pipe.find("/proc/sys/fs/pipe-max-size is 1048576 bytes"), std::string::npos) << pipe;
  EXPECT_NE(pipe.find("sysctl fs.pipe-max-size=4194304"), std::string::npos) << pipe;
  std::string uffd = postcopyUnavailable(true, kPostcopyPipeBytes, false, true);
  EXPECT_NE(uffd.find("sysctl vm.unprivileged_userfaultfd=1"), std::string::npos) << uffd;
  std::string guard = postcopyUnavailable(true, kPostcopyPipeBytes, true, false);
  EXPECT_NE(guard.find("nftables table ferry_page_server is missing"), std::string::npos) << guard;
}

TEST(HostInfo, CollectsThisHost) {
  LocalCommandRunner runner;
  EngineConfig cfg = withDefaults({.host_name = "probe"});
  HostInfo h = collectHostInfo(cfg, runner);
  EXPECT_EQ(h.host_name, "probe");
  EXPECT_FALSE(h.kernel.empty());
  EXPECT_FALSE(h.arch.empty());
  EXPECT_GT(h.page_size, 0u);
  EXPECT_GT(h.memory_bytes, 0u);
  EXPECT_NE(h.cgroup_version, 0);
  EXPECT_FALSE(h.distribution.empty());
  // Its post-copy verdict is the one its settings give.
  uint64_t pipe = std::stoull(readFile("/proc/sys/fs/pipe-max-size"));
  bool unprivileged = readFile("/proc/sys/vm/unprivileged_userfaultfd").rfind("1", 0) == 0;
  EXPECT_NE(h.postcopy_unavailable.find("start its agent with --postcopy"), std::string::npos)
      << "post-copy is opt-in: " << h.postcopy_unavailable;
  cfg.postcopy = true;
  EXPECT_EQ(collectHostInfo(cfg, runner).postcopy_unavailable,
            postcopyUnavailable(h.uffd, pipe, unprivileged, pageServerGuardInstalled(runner)));
}

}  // namespace ferry
