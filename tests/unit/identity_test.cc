// User, groups, umask and working directory, resolved as libpod does.
#include "engine/spec/identity.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "engine/spec/workdir.h"

namespace ferry {
namespace {

const char* kPasswd =
    "root:x:0:0:root:/root:/bin/sh\n"
    "# a comment\n"
    "app:x:1000:1000:App:/home/app:/bin/sh\n"
    "broken line\n"
    "web:x:33:33::/var/www:/bin/false\n"
    "nobody:x:65534:65534:nobody:/:/bin/false\n";
const char* kGroup =
    "root:x:0:\n"
    "app:x:1000:\n"
    "web:x:33:\n"
    "audio:x:29:app,web\n"
    "video:x:44:app\n"
    "huge:x:70000:app\n"
    "staff:x:50:\n";

UserDb container() { return {parsePasswd(kPasswd), parseGroup(kGroup)}; }
UserDb hostDb() {
  return {parsePasswd("root:x:0:0::/root:/bin/sh\nops:x:4000:4000::/home/ops:/bin/sh\n"),
          parseGroup("ops:x:4000:\nwheel:x:10:ops\n")};
}

std::string errorOf(const IdentityRequest& r) {
  try {
    resolveIdentity(r, container(), hostDb());
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    return e.what();
  }
  ADD_FAILURE() << "accepted " << r.user;
  return "";
}

TEST(Identity, ParsesSkippingMalformedLines) {
  auto p = parsePasswd(kPasswd);
  ASSERT_EQ(p.size(), 4u);
  EXPECT_EQ(p[1].name, "app");
  EXPECT_EQ(p[1].home, "/home/app");
  auto g = parseGroup(kGroup);
  ASSERT_EQ(g.size(), 7u);
  EXPECT_EQ(g[3].members, (std::vector<std::string>{"app", "web"}));
}

TEST(Identity, ANameResolvesInTheContainersFilesWithItsGroupsAndHome) {
  Identity id = resolveIdentity({.user = "app"}, container(), hostDb());
  EXPECT_EQ(id.uid, 1000u);
  EXPECT_EQ(id.gid, 1000u);
  EXPECT_EQ(id.home, "/home/app");
  EXPECT_EQ(id.additional_gids, (std::vector<uint32_t>{29, 44, 70000}));
  EXPECT_TRUE(id.warnings.empty());
}

TEST(Identity, UidAndGroupFormsAndDefaults) {
  Identity empty = resolveIdentity({}, container(), hostDb());
  EXPECT_EQ(empty.uid, 0u);
  EXPECT_EQ(empty.home, "/root");
  Identity named_group = resolveIdentity({.user = "app:staff"}, container(), hostDb());
  EXPECT_EQ(named_group.gid, 50u);
  Identity numeric = resolveIdentity({.user = "33"}, container(), hostDb());
  EXPECT_EQ(numeric.gid, 33u);  // the entry of uid 33 gives its group
  EXPECT_EQ(numeric.home, "/var/www");
  Identity unknown = resolveIdentity({.user = "4242"}, container(), hostDb());
  EXPECT_EQ(unknown.gid, 0u);  // no entry: root's group, as libpod
  EXPECT_EQ(unknown.home, "/");
  Identity both = resolveIdentity({.user = "4242:4343"}, container(), hostDb());
  EXPECT_EQ(both.gid, 4343u);
}

TEST(Identity, HostUsersComeFromTheHostsFiles) {
  EXPECT_NE(errorOf({.user = "ops"}).find("container's /etc/passwd"), std::string::npos);
  Identity id = resolveIdentity({.user = "ops", .host_users = {"ops"}}, container(), hostDb());
  EXPECT_EQ(id.uid, 4000u);
  EXPECT_EQ(id.home, "/home/ops");
  EXPECT_EQ(id.additional_gids, (std::vector<uint32_t>{10}));
}

TEST(Identity, GroupAddAndGidsOutsideTheMappingAreSkippedWithAWarning) {
  IdentityRequest r{.user = "app", .group_add = {"staff", "2000"}, .gid_map = {{0, 100000, 65536}}};
  Identity id = resolveIdentity(r, container(), hostDb());
  EXPECT_EQ(id.additional_gids, (std::vector<uint32_t>{29, 44, 50, 2000}));
  ASSERT_EQ(id.warnings.size(), 1u);
  EXPECT_NE(id.warnings[0].find("70000"), std::string::npos);
  EXPECT_NE(errorOf({.user = "app", .group_add = {"nosuch"}}).find("nosuch"), std::string::npos);
  EXPECT_NE(errorOf({.user = "app", .group_add = {"keep-groups"}}).find("not supported"),
            std::string::npos);
  EXPECT_NE(errorOf({.user = "app:huge", .gid_map = {{0, 100000, 65536}}}).find("outside"),
            std::string::npos);
}

TEST(Identity, BadUsersAreClearErrors) {
  EXPECT_NE(errorOf({.user = "ghost"}).find("'ghost' is not in the container's /etc/passwd"),
            std::string::npos);
  EXPECT_NE(errorOf({.user = "app:ghosts"}).find("group 'ghosts'"), std::string::npos);
  EXPECT_NE(errorOf({.user = ":1"}).find("expected name|uid"), std::string::npos);
  EXPECT_NE(errorOf({.user = "app:"}).find("expected name|uid"), std::string::npos);
}

TEST(Umask, OctalAtMost0777) {
  EXPECT_EQ(parseUmask("022"), 022u);
  EXPECT_EQ(parseUmask("0027"), 027u);
  EXPECT_EQ(parseUmask("7"), 07u);
  for (const char* bad : {"", "8", "0x12", "1000", "-1", "22 "}) {
    try {
      parseUmask(bad);
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("octal"), std::string::npos) << e.what();
    }
  }
}

class WorkdirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = t_.path();
    makeDirs(root_ / "srv/app");
    makeDirs(root_ / "data");
    writeFileAtomic(root_ / "etc-file", "x");
    ::symlink("/srv/app", (root_ / "abs").c_str());  // absolute: from the container's root
    ::symlink("srv/app", (root_ / "rel").c_str());   // relative
    ::symlink("abs", (root_ / "chain").c_str());     // a chain
    ::symlink("../../../../srv", (root_ / "srv/app/up").c_str());  // ".." stops at the root
    ::symlink("/volume/sub", (root_ / "tovol").c_str());
    ::symlink("loop2", (root_ / "loop1").c_str());
    ::symlink("loop1", (root_ / "loop2").c_str());
    ::symlink("/etc-file", (root_ / "tofile").c_str());
  }
  Workdir prep(const std::string& cwd, bool create = true) {
    return prepareWorkdir(root_, cwd, {"/proc", "/volume"}, create, 1234, 5678);
  }
  std::string errorOf(const std::string& cwd, bool create = true) {
    try {
      prep(cwd, create);
    } catch (const Error& e) {
      return e.what();
    }
    ADD_FAILURE() << "accepted " << cwd;
    return "";
  }
  TempDir t_;
  fs::path root_;
};

TEST_F(WorkdirTest, SymlinksResolveInsideTheContainerRoot) {
  EXPECT_EQ(prep("/srv/app").path, "/srv/app");
  EXPECT_EQ(prep("/abs").path, "/srv/app");
  EXPECT_EQ(prep("/rel").path, "/srv/app");
  EXPECT_EQ(prep("/chain").path, "/srv/app");
  EXPECT_EQ(prep("/srv/app/up").path, "/srv");  // never above the container's root
  EXPECT_FALSE(prep("/chain").created);
}

TEST_F(WorkdirTest, OnAMountItIsTheMountsBusiness) {
  Workdir w = prep("/tovol");
  EXPECT_TRUE(w.on_mount);
  EXPECT_EQ(w.path, "/volume/sub");
  EXPECT_FALSE(pathExists(root_ / "volume"));  // nothing made under the mount point
}

TEST_F(WorkdirTest, AMissingDirectoryIsCreatedForTheUserUnlessForbidden) {
  Workdir w = prep("/abs/new/deeper");
  EXPECT_TRUE(w.created);
  EXPECT_EQ(w.path, "/srv/app/new/deeper");
  struct stat st {};
  ASSERT_EQ(::stat((root_ / "srv/app/new/deeper").c_str(), &st), 0);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  EXPECT_NE(errorOf("/missing", false).find("creating it was not allowed"), std::string::npos);
  EXPECT_FALSE(pathExists(root_ / "missing"));
}

TEST_F(WorkdirTest, MountDestinationsResolveLikeWorkdirsButMakeNothing) {
  EXPECT_EQ(resolveMountDestination(root_, "/abs/tmp", {}), "/srv/app/tmp");
  EXPECT_FALSE(pathExists(root_ / "srv/app/tmp"));  // the runtime makes it
  EXPECT_EQ(resolveMountDestination(root_, "/chain", {}), "/srv/app");
  EXPECT_EQ(resolveMountDestination(root_, "/srv/app/up/x", {}), "/srv/x");
  EXPECT_THROW(resolveMountDestination(root_, "/etc-file", {}), Error);
  EXPECT_THROW(resolveMountDestination(root_, "/loop1", {}), Error);
  EXPECT_THROW(resolveMountDestination(root_, "/", {}), Error);
}

TEST_F(WorkdirTest, NotADirectoryAndLinkLoopsAreClearErrors) {
  EXPECT_NE(errorOf("/etc-file").find("exists in the container but is not a directory"),
            std::string::npos);
  EXPECT_NE(errorOf("/tofile").find("not a directory"), std::string::npos);
  EXPECT_NE(errorOf("/loop1").find("more than 40 symbolic links"), std::string::npos);
  EXPECT_NE(errorOf("relative").find("absolute"), std::string::npos);
}

}  // namespace
}  // namespace ferry
