#include "engine/spec/selinux_label.h"

#include <gtest/gtest.h>

#include "common/error.h"

namespace ferry {

namespace {

// As container-selinux installs it (lxc_contexts of the targeted policy).
constexpr const char* kContexts = R"(process = "system_u:system_r:container_t:s0"
content = "system_u:object_r:virt_var_lib_t:s0"
file = "system_u:object_r:container_file_t:s0"
ro_file = "system_u:object_r:container_ro_file_t:s0"
sandbox_kvm_process = "system_u:system_r:container_kvm_t:s0"
# a comment
)";

}  // namespace

TEST(SelinuxLabel, ParsesThePolicysContainerContexts) {
  SelinuxLabels l = parseLxcContexts(kContexts);
  EXPECT_EQ(l.process, "system_u:system_r:container_t:s0");
  EXPECT_EQ(l.mount, "system_u:object_r:container_file_t:s0");
  EXPECT_THROW(parseLxcContexts("process = \"system_u:system_r:container_t:s0\"\n"), Error);
  EXPECT_THROW(parseLxcContexts("process = \"nonsense\"\nfile = \"a:b:c\"\n"), Error);
}

TEST(SelinuxLabel, LevelsAreReplacedWhole) {
  EXPECT_EQ(withLevel("u:r:t:s0", "s0:c1,c2"), "u:r:t:s0:c1,c2");
  EXPECT_EQ(withLevel("u:r:t:s0:c3,c4", "s0"), "u:r:t:s0");
  EXPECT_EQ(withLevel("u:r:t", "s0:c5,c6"), "u:r:t:s0:c5,c6");
  EXPECT_EQ(levelOf("u:r:t:s0:c1,c2"), "s0:c1,c2");
  EXPECT_EQ(levelOf("u:r:t"), "");
  EXPECT_THROW(withLevel("u::t:s0", "s0"), Error);
}

TEST(SelinuxLabel, MCSLevelsAreTwoDistinctOrderedCategoriesNotInUse) {
  std::set<std::string> used;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    std::string level = pickMcsLevel(seed, used);
    unsigned a = 0, b = 0;
    ASSERT_EQ(std::sscanf(level.c_str(), "s0:c%u,c%u", &a, &b), 2) << level;
    EXPECT_LT(a, b);
    EXPECT_LT(b, 1024u);
    EXPECT_FALSE(used.count(level)) << level;
    used.insert(level);
  }
  // The same seed with its first pick taken gives another.
  std::string first = pickMcsLevel(7, {});
  EXPECT_NE(pickMcsLevel(7, {first}), first);
}

TEST(SelinuxLabel, BothOrNeither) {
  // SELinux off: neither, whatever was asked.
  EXPECT_TRUE(containerLabels(false, kContexts, {"type:spc_t"}, {}, 1).empty());
  // label=disable: neither.
  EXPECT_TRUE(containerLabels(true, kContexts, {"disable"}, {}, 1).empty());
  // On: both, sharing one fresh level.
  SelinuxLabels l = containerLabels(true, kContexts, {}, {}, 1);
  ASSERT_FALSE(l.process.empty());
  ASSERT_FALSE(l.mount.empty());
  EXPECT_EQ(l.process.rfind("system_u:system_r:container_t:s0:c", 0), 0u) << l.process;
  EXPECT_EQ(levelOf(l.process), levelOf(l.mount));
  EXPECT_NE(levelOf(l.process), "s0");
}

TEST(SelinuxLabel, CallersOptionsShapeTheLabels) {
  SelinuxLabels l = containerLabels(true, kContexts,
                                    {"type:spc_t", "user:staff_u", "role:object_r", "filetype:my_file_t",
                                     "level:s0:c10,c20"},
                                    {}, 1);
  EXPECT_EQ(l.process, "staff_u:object_r:spc_t:s0:c10,c20");
  EXPECT_EQ(l.mount, "system_u:object_r:my_file_t:s0:c10,c20");
}

TEST(SelinuxLabel, BadOptionsAreRefusedWithWhatIsAccepted) {
  for (const char* bad : {"nope", "type:", "typo:x", "level", "type:a:b", "user:u:r"}) {
    try {
      validateLabelOptions({bad});
      ADD_FAILURE() << bad;
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find("label=disable"), std::string::npos) << e.what();
    }
  }
  EXPECT_NO_THROW(validateLabelOptions({"disable", "type:t", "level:s0", "filetype:f"}));
  // Refused even where SELinux is off: the option is wrong anywhere.
  EXPECT_THROW(containerLabels(false, "", {"typo:x"}, {}, 1), Error);
}

TEST(SelinuxLabel, SharedRelabelDropsTheCategories) {
  const std::string mount = "system_u:object_r:container_file_t:s0:c1,c2";
  EXPECT_EQ(relabelContext(mount, 'z'), "system_u:object_r:container_file_t:s0");
  EXPECT_EQ(relabelContext(mount, 'Z'), mount);
}

}  // namespace ferry
