#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "common/error.h"

namespace ferry {

TEST(Fs, WriteFileAtomicReplacesContent) {
  TempDir t;
  fs::path f = t.path() / "x.json";
  writeFileAtomic(f, "one");
  writeFileAtomic(f, "two");
  EXPECT_EQ(readFile(f), "two");
  EXPECT_FALSE(pathExists(t.path() / "x.json.tmp"));
}

TEST(Fs, MakeDirsLeavesAnExistingDirectorysModeAlone) {
  TempDir t;
  fs::path shared = t.path() / "shared";
  makeDirs(shared, 0700);
  ASSERT_EQ(::chmod(shared.c_str(), 01777), 0);
  makeDirs(shared);  // the default 0755 must not touch it (this once made /tmp 0755)
  struct stat st;
  ASSERT_EQ(::stat(shared.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 01777u);
  makeDirs(t.path() / "new", 0710);
  ASSERT_EQ(::stat((t.path() / "new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0710u);
}

TEST(Fs, TempDirRemovesItselfWithContent) {
  fs::path p;
  {
    TempDir t;
    p = t.path();
    makeDirs(p / "a/b");
    writeFileAtomic(p / "a/b/c", "x");
  }
  EXPECT_FALSE(pathExists(p));
}

TEST(Fs, RemoveTreeDoesNotFollowSymlinks) {
  TempDir outside, t;
  writeFileAtomic(outside.path() / "keep", "precious");
  fs::create_directory_symlink(outside.path(), t.path() / "link");
  removeTree(t.path() / "link");
  EXPECT_EQ(readFile(outside.path() / "keep"), "precious");
  EXPECT_FALSE(pathExists(t.path() / "link"));
}

TEST(Fs, OpenBeneathRefusesSymlinksAndDotDot) {
  TempDir root, outside;
  writeFileAtomic(outside.path() / "secret", "s");
  fs::create_directory_symlink(outside.path(), root.path() / "esc");
  makeDirs(root.path() / "ok");
  UniqueFd rfd = openFile(root.path(), O_RDONLY | O_DIRECTORY);
  EXPECT_TRUE(openBeneath(rfd.get(), "ok", O_RDONLY | O_DIRECTORY).valid());
  EXPECT_THROW(openBeneath(rfd.get(), "esc/secret", O_RDONLY), Error);
  EXPECT_THROW(openBeneath(rfd.get(), "../" + outside.path().filename().string(), O_RDONLY), Error);
  EXPECT_THROW(openBeneath(rfd.get(), outside.path() / "secret", O_RDONLY), Error);
}

TEST(Fs, TreeSizeCountsRegularFiles) {
  TempDir t;
  writeFileAtomic(t.path() / "a", std::string(1000, 'x'));
  makeDirs(t.path() / "d");
  writeFileAtomic(t.path() / "d/b", std::string(24, 'y'));
  fs::create_symlink("a", t.path() / "s");
  EXPECT_EQ(treeSize(t.path()), 1024u);
}

}  // namespace ferry
