#include "engine/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include "engine/error.h"

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

TEST(Fs, CopyTreeKeepsTypesModesXattrsWhiteoutsAndHardlinks) {
  TempDir t;
  fs::path src = t.path() / "src";
  makeDirs(src / "dir");
  writeFileAtomic(src / "dir/file", "data", 0640);
  ASSERT_EQ(::chown((src / "dir/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(::link((src / "dir/file").c_str(), (src / "hard").c_str()), 0);
  fs::create_symlink("dir/file", src / "sym");
  // An overlay whiteout: a 0:0 character device.
  ASSERT_EQ(::mknod((src / "gone").c_str(), S_IFCHR | 0, makedev(0, 0)), 0);
  ASSERT_EQ(::setxattr((src / "dir").c_str(), "trusted.overlay.opaque", "y", 1, 0), 0);
  ASSERT_EQ(::setxattr((src / "dir/file").c_str(), "user.note", "hi", 2, 0), 0);

  fs::path dst = t.path() / "dst";
  copyTree(src, dst);

  struct stat a, b, h, w;
  ASSERT_EQ(::lstat((dst / "dir/file").c_str(), &a), 0);
  EXPECT_EQ(a.st_mode & 07777, 0640u);
  EXPECT_EQ(a.st_uid, 1234u);
  EXPECT_EQ(a.st_gid, 5678u);
  EXPECT_EQ(readFile(dst / "dir/file"), "data");
  ASSERT_EQ(::lstat((dst / "hard").c_str(), &h), 0);
  EXPECT_EQ(h.st_ino, a.st_ino) << "hardlink became a copy";
  ASSERT_EQ(::lstat((dst / "sym").c_str(), &b), 0);
  EXPECT_TRUE(S_ISLNK(b.st_mode));
  EXPECT_EQ(fs::read_symlink(dst / "sym"), "dir/file");
  ASSERT_EQ(::lstat((dst / "gone").c_str(), &w), 0);
  EXPECT_TRUE(S_ISCHR(w.st_mode));
  EXPECT_EQ(w.st_rdev, makedev(0, 0));
  char v[8] = {};
  EXPECT_EQ(::getxattr((dst / "dir").c_str(), "trusted.overlay.opaque", v, sizeof v), 1);
  EXPECT_EQ(v[0], 'y');
  EXPECT_EQ(::getxattr((dst / "dir/file").c_str(), "user.note", v, sizeof v), 2);
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
