#include "common/fs.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <atomic>
#include <future>

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

TEST(Fs, ReadFileIfExistsSaysNoneOnlyForAMissingFile) {
  TempDir t;
  EXPECT_FALSE(readFileIfExists(t.path() / "missing"));
  writeFileAtomic(t.path() / "f", "content");
  EXPECT_EQ(readFileIfExists(t.path() / "f"), "content");
  // Present but unreadable as a file: an error, not "missing".
  EXPECT_THROW(readFileIfExists(t.path() / "f" / "below"), Error);
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

// Two locks on one path exclude each other within one process too (threads
// of the agent), and a lock file its holder removed is not a lock: one who
// waited on it takes the path's new file, so two holders never coexist.
TEST(Fs, FileLockExcludesAndSurvivesItsFileBeingRemoved) {
  TempDir dir;
  fs::path file = dir.path() / "c1";
  std::atomic<int> inside{0};
  std::atomic<bool> overlapped{false};
  auto holder = [&](bool remove) {
    FileLock l(file);
    if (++inside > 1) overlapped = true;
    std::this_thread::yield();
    --inside;
    if (remove) l.removeFile();  // the last thing done under it (fs.h)
  };
  std::vector<std::future<void>> all;
  for (int i = 0; i < 16; ++i) all.push_back(std::async(std::launch::async, holder, i % 2 == 0));
  for (auto& f : all) f.get();
  EXPECT_FALSE(overlapped) << "two holders of one lock at once";

  // A waiter for a removed file ends up holding the one now at the path.
  auto first = std::make_unique<FileLock>(file);
  struct stat old {};
  ASSERT_EQ(::stat(file.c_str(), &old), 0);
  auto waiter = std::async(std::launch::async, [&] {
    FileLock l(file);
    return fs::exists(file);  // it locked the path's file, not the removed one
  });
  // Only once the waiter is blocked on the old file does its removal test
  // anything: /proc/locks lists a blocked request as "N: -> FLOCK ... ino".
  std::string ino = ":" + std::to_string(old.st_ino) + " ";
  bool blocked = false;
  for (int i = 0; i < 10000 && !blocked; ++i) {
    std::string locks = readFile("/proc/locks");
    for (size_t at = locks.find("->"); at != std::string::npos && !blocked; at = locks.find("->", at + 2)) {
      blocked = locks.substr(at, locks.find('\n', at) - at).find(ino) != std::string::npos;
    }
    if (!blocked) ::usleep(1000);
  }
  EXPECT_TRUE(blocked) << "the waiter never blocked on the lock";
  first->removeFile();
  first.reset();
  EXPECT_TRUE(waiter.get());
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
