#include "compat/compat.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace ferry {

namespace {

HostInfo host(const std::string& name) {
  HostInfo h;
  h.host_name = name;
  h.engine_version = "0.1.0";
  h.kernel = "6.18.44-fc-v782";
  h.arch = "x86_64";
  h.cpu_flags = {"aes", "avx", "avx2", "fpu", "sse2"};
  h.page_size = 4096;
  h.criu_version = "4.1.1";
  h.runtime_name = "runc";
  h.runtime_version = "1.1.5+ds1";
  h.conmon_version = "2.1.6";
  h.cgroup_version = 2;
  h.distribution = "debian";
  h.distribution_version = "12";
  h.selinux_mode = "disabled";
  return h;
}

CompatInput identical() {
  return {.source = host("hostA"),
          .target = host("hostB"),
          .image_name = "demo:latest",
          .image_id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
          .image_present = true};
}

// The one finding `in` produces; fails the test when there is not exactly one.
Finding only(const CompatInput& in) {
  auto findings = checkCompatibility(in, {});
  EXPECT_EQ(findings.size(), 1u) << (findings.empty() ? "" : findings[0].message);
  return findings.empty() ? Finding{} : findings[0];
}

// Checks a finding's name, severity, and that its message names both hosts
// and every value in `mentions`.
void expectFinding(const Finding& f, const std::string& check, Severity severity,
                   const std::vector<std::string>& mentions) {
  EXPECT_EQ(f.check, check);
  EXPECT_EQ(f.severity, severity);
  EXPECT_FALSE(f.ignored);
  EXPECT_EQ(f.message.rfind(check + ": ", 0), 0u) << f.message;
  for (const auto& m : std::vector<std::string>{"hostA", "hostB"}) {
    EXPECT_NE(f.message.find(m), std::string::npos) << m << " missing from: " << f.message;
  }
  for (const auto& m : mentions) {
    EXPECT_NE(f.message.find(m), std::string::npos) << m << " missing from: " << f.message;
  }
}

}  // namespace

TEST(Compat, IdenticalHostsHaveNoFindings) {
  EXPECT_TRUE(checkCompatibility(identical(), {}).empty());
  EXPECT_TRUE(enforceCompatibility({}, "hostA", "hostB").empty());
}

TEST(Compat, ArchRefuses) {
  auto in = identical();
  in.target.arch = "aarch64";
  Finding f = only(in);
  expectFinding(f, "arch", Severity::kRefuse, {"x86_64", "aarch64"});
  EXPECT_EQ(f.message,
            "arch: hostA is x86_64, hostB is aarch64; a checkpoint cannot move between "
            "architectures -- restore it on an x86_64 host");
}

TEST(Compat, CgroupVersionRefuses) {
  auto in = identical();
  in.target.cgroup_version = 1;
  expectFinding(only(in), "cgroup", Severity::kRefuse, {"cgroup v2", "cgroup v1"});
}

TEST(Compat, RuntimeNameRefusesWithoutAVersionWarning) {
  auto in = identical();
  in.target.runtime_name = "crun";
  in.target.runtime_version = "1.14";
  expectFinding(only(in), "runtime", Severity::kRefuse, {"runc", "crun"});
}

TEST(Compat, OlderCriuRefusesNewerPasses) {
  auto in = identical();
  in.target.criu_version = "3.17";
  expectFinding(only(in), "criu-version", Severity::kRefuse, {"4.1.1", "3.17"});
  in.target.criu_version = "4.2";
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
}

TEST(Compat, UnreportedCriuRefusesNamingTheHost) {
  auto in = identical();
  in.target.criu_version = "";
  Finding f = only(in);
  expectFinding(f, "criu-version", Severity::kRefuse, {"hostB did not report a CRIU version"});
  in = identical();
  in.source.criu_version = "";
  expectFinding(only(in), "criu-version", Severity::kRefuse,
                {"hostA did not report a CRIU version"});
}

TEST(Compat, MissingCpuFlagsRefuseExtraOnesPass) {
  auto in = identical();
  in.target.cpu_flags = {"fpu", "sse2"};
  expectFinding(only(in), "cpu-flags", Severity::kRefuse, {"3 CPU flags", "aes, avx, avx2"});
  in.target.cpu_flags = {"aes", "avx", "avx2", "avx512f", "fpu", "sse2"};
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
}

TEST(Compat, CpuFlagListStopsAtEight) {
  auto in = identical();
  in.source.cpu_flags = {"f01", "f02", "f03", "f04", "f05", "f06", "f07", "f08", "f09", "f10"};
  Finding f = only(in);
  expectFinding(f, "cpu-flags", Severity::kRefuse,
                {"10 CPU flags", "f01, f02, f03, f04, f05, f06, f07, f08 and 2 more"});
  EXPECT_EQ(f.message.find("f09"), std::string::npos);
}

TEST(Compat, PageSizeRefuses) {
  auto in = identical();
  in.target.page_size = 65536;
  expectFinding(only(in), "page-size", Severity::kRefuse, {"4096", "65536"});
}

// A dump locks the network with the method its CRIU was told; the restore
// unlocks it with the same one, read from the checkpoint.
TEST(Compat, AnNftablesLockNeedsATargetThatCanUnlockIt) {
  auto in = identical();
  in.source.nftables_lock = true;
  in.target.nftables_lock = false;
  expectFinding(only(in), "network-lock", Severity::kRefuse,
                {"hostA's CRIU locked", "nftables", "hostB's CRIU cannot unlock",
                 "network_lock_nftables"});
  in.target.nftables_lock = true;
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
  // An iptables lock (every older checkpoint) restores anywhere.
  in.source.nftables_lock = false;
  in.target.nftables_lock = false;
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
  in.target.nftables_lock = true;
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
}

TEST(Compat, MissingImageRefuses) {
  auto in = identical();
  in.image_present = false;
  expectFinding(only(in), "image", Severity::kRefuse,
                {"import image demo:latest (sha256:0123456789ab) on hostB first"});
}

TEST(Compat, OlderKernelWarnsNewerPasses) {
  auto in = identical();
  in.target.kernel = "6.1.0-28-amd64";
  expectFinding(only(in), "kernel", Severity::kWarn, {"6.1.0-28-amd64", "6.18.44-fc-v782"});
  in.target.kernel = "6.18.44";  // same numeric part, other suffix
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
}

TEST(Compat, DistributionWarns) {
  auto in = identical();
  in.target.distribution_version = "13";
  expectFinding(only(in), "distribution", Severity::kWarn, {"debian 12", "debian 13"});
  in.target.distribution = "fedora";
  in.target.distribution_version = "41";
  expectFinding(only(in), "distribution", Severity::kWarn, {"debian 12", "fedora 41"});
}

TEST(Compat, RuntimeMinorWarnsPatchDoesNot) {
  auto in = identical();
  in.target.runtime_version = "1.1.12";
  EXPECT_TRUE(checkCompatibility(in, {}).empty());
  in.target.runtime_version = "1.2.0-rc1";
  expectFinding(only(in), "runtime-version", Severity::kWarn, {"runc 1.1.5+ds1", "runc 1.2.0-rc1"});
}

TEST(Compat, SelinuxModeWarns) {
  auto in = identical();
  in.target.selinux_mode = "enforcing";
  expectFinding(only(in), "selinux", Severity::kWarn,
                {"disabled", "enforcing", "applied only where SELinux is enabled"});
}

TEST(Compat, RefusalsComeFirst) {
  auto in = identical();
  in.target.selinux_mode = "enforcing";
  in.target.kernel = "5.10";
  in.target.page_size = 16384;
  in.target.arch = "aarch64";
  auto findings = checkCompatibility(in, {"arch"});
  std::vector<std::string> order;
  for (const auto& f : findings) order.push_back(f.check);
  EXPECT_EQ(order, (std::vector<std::string>{"page-size", "arch", "kernel", "selinux"}));
}

TEST(Compat, IgnoredRefusalBecomesAWarningAndEnforcePasses) {
  auto in = identical();
  in.target.arch = "aarch64";
  in.target.kernel = "6.1";
  auto findings = checkCompatibility(in, {"arch", "selinux"});
  ASSERT_EQ(findings.size(), 2u);
  EXPECT_EQ(findings[0].check, "arch");
  EXPECT_EQ(findings[0].severity, Severity::kWarn);
  EXPECT_TRUE(findings[0].ignored);
  EXPECT_EQ(findings[0].message.rfind("ignored on purpose: arch: hostA is x86_64", 0), 0u);
  EXPECT_FALSE(findings[1].ignored);  // a warning stays a plain warning
  auto warnings = enforceCompatibility(findings, "hostA", "hostB");
  EXPECT_EQ(warnings.size(), 2u);
}

TEST(Compat, EnforceListsEveryRefusal) {
  auto in = identical();
  in.target.arch = "aarch64";
  in.target.criu_version = "3.17";
  in.image_present = false;
  in.target.kernel = "6.1";
  auto findings = checkCompatibility(in, {});
  try {
    enforceCompatibility(findings, "hostA", "hostB");
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
    const std::string& m = e.message();
    EXPECT_EQ(m.rfind("checkpoint from hostA cannot be restored on hostB:\n", 0), 0u) << m;
    EXPECT_NE(m.find("\n  arch: hostA is x86_64, hostB is aarch64"), std::string::npos) << m;
    EXPECT_NE(m.find("\n  criu-version: "), std::string::npos) << m;
    EXPECT_NE(m.find("\n  image: "), std::string::npos) << m;
    EXPECT_EQ(m.find("kernel"), std::string::npos) << m;  // warnings are not refusals
    std::string tail = "\n(override one on purpose with --ignore CHECK)";
    EXPECT_EQ(m.substr(m.size() - tail.size()), tail);
  }
}

TEST(Compat, UnknownIgnoreNameIsRejected) {
  try {
    checkCompatibility(identical(), {"arch", "archh"});
    FAIL() << "expected kInvalidInput";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(e.message().find("archh"), std::string::npos);
    for (const auto& name : compatCheckNames()) {
      EXPECT_NE(e.message().find(name), std::string::npos) << name;
    }
  }
}

TEST(Compat, CheckNames) {
  EXPECT_EQ(compatCheckNames(),
            (std::vector<std::string>{"arch", "cgroup", "runtime", "criu-version", "cpu-flags",
                                      "page-size", "network-lock", "image", "kernel", "distribution",
                                      "runtime-version", "selinux"}));
}

TEST(Compat, FindingJson) {
  Finding f{"arch", Severity::kWarn, "ignored on purpose: arch: ...", true};
  nlohmann::json j = f;
  EXPECT_EQ(j, (nlohmann::json{{"check", "arch"},
                               {"severity", "warn"},
                               {"message", "ignored on purpose: arch: ..."},
                               {"ignored", true}}));
  EXPECT_EQ(nlohmann::json(j.get<Finding>()), j);
  j["severity"] = "fatal";
  EXPECT_THROW(j.get<Finding>(), Error);
}

TEST(Compat, CompareVersions) {
  EXPECT_EQ(compareVersions("1.1.5+ds1", "1.1.5"), 0);
  EXPECT_EQ(compareVersions("1.2.0-rc1", "1.2"), 0);
  EXPECT_EQ(compareVersions("6.18.44-fc-v782", "6.18.44"), 0);
  EXPECT_GT(compareVersions("4.1.1", "4.1"), 0);
  EXPECT_LT(compareVersions("3.17", "4.1"), 0);
  EXPECT_GT(compareVersions("1.10", "1.9"), 0);
  EXPECT_LT(compareVersions("", "0.1"), 0);
  EXPECT_EQ(compareVersions("", "0"), 0);
}

}  // namespace ferry
