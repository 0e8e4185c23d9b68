// writeTreeArchive's contract, and the round trip a migration makes of a
// container's rootfs diff: changes made through a real overlay mount, the
// upperdir archived, applied with Whiteouts::kToOverlay onto a fresh upperdir,
// and the two merged views compared. Runs as root: overlay mounts, device
// nodes and trusted.* xattrs need it.
#include "engine/image/tree_archive.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/byte_stream.h"
#include "common/error.h"
#include "common/fs.h"
#include "tests/support/ci.h"
#include "tests/support/string_stream.h"
#include "engine/image/layer_apply.h"
#include "engine/store/overlay.h"

namespace ferry {
namespace {

constexpr off_t kMiB = 1 << 20;

using testing::StringSink;

// --- Trees as seen by a reader ---------------------------------------------

using Tree = std::map<std::string, std::string>;  // relative path -> description

std::string xattrsOf(const fs::path& p) {
  std::string names(65536, '\0');
  ssize_t len = ::llistxattr(p.c_str(), names.data(), names.size());
  std::vector<std::string> out;
  for (size_t i = 0; i < static_cast<size_t>(std::max<ssize_t>(len, 0));) {
    std::string name = names.c_str() + i;
    i += name.size() + 1;
    std::string value(65536, '\0');
    ssize_t vlen = ::lgetxattr(p.c_str(), name.c_str(), value.data(), value.size());
    value.resize(static_cast<size_t>(std::max<ssize_t>(vlen, 0)));
    out.push_back(" " + name + "=" + value);
  }
  std::sort(out.begin(), out.end());
  std::string joined;
  for (const auto& x : out) joined += x;
  return joined;
}

// Type, mode, owner, mtime, content, link target, device number, xattrs and
// hardlink identity (the first path of the same inode) of every entry.
Tree snapshot(const fs::path& root) {
  std::vector<fs::path> paths{root};
  for (const auto& e : fs::recursive_directory_iterator(root)) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  Tree tree;
  std::map<std::pair<dev_t, ino_t>, std::string> first;
  for (const auto& p : paths) {
    std::string rel = p == root ? "." : p.lexically_relative(root).string();
    struct stat st;
    if (::lstat(p.c_str(), &st) != 0) throw std::runtime_error("lstat " + p.string());
    std::ostringstream d;
    d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " mtime "
      << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
    if (!S_ISDIR(st.st_mode)) {
      d << " links " << st.st_nlink << " first "
        << first.try_emplace({st.st_dev, st.st_ino}, rel).first->second;
    }
    if (S_ISREG(st.st_mode))
      d << " size " << st.st_size << " data " << std::hash<std::string>{}(readFile(p));
    if (S_ISLNK(st.st_mode)) d << " -> " << fs::read_symlink(p).string();
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
      d << " dev " << major(st.st_rdev) << ":" << minor(st.st_rdev);
    d << xattrsOf(p);
    tree[rel] = d.str();
  }
  return tree;
}

void expectSameTree(const Tree& want, const Tree& got) {
  for (const auto& [path, what] : want) {
    auto it = got.find(path);
    if (it == got.end()) {
      ADD_FAILURE() << path << " is missing";
    } else {
      EXPECT_EQ(it->second, what) << path;
    }
  }
  for (const auto& [path, what] : got) {
    if (!want.contains(path)) ADD_FAILURE() << path << " should not be there: " << what;
  }
}

// --- Making trees ------------------------------------------------------------

void check(bool ok, const std::string& what) {
  if (!ok) throw std::runtime_error(what + ": " + std::strerror(errno));
}

void appendTo(const fs::path& p, std::string_view data) {
  UniqueFd fd = openFile(p, O_WRONLY | O_APPEND);
  writeAll(fd.get(), data, p);
}

// 10 MiB with 4 KiB of data at 5 MiB.
void makeSparse(const fs::path& p) {
  UniqueFd fd = openFile(p, O_WRONLY | O_CREAT | O_EXCL, 0644);
  check(::ftruncate(fd.get(), 10 * kMiB) == 0, "truncate");
  std::string data(4096, 's');
  check(::pwrite(fd.get(), data.data(), data.size(), 5 * kMiB) == 4096, "pwrite");
}

blkcnt_t blocksOf(const fs::path& p) {
  struct stat st;
  check(::lstat(p.c_str(), &st) == 0, "lstat " + p.string());
  return st.st_blocks;
}

void setXattr(const fs::path& p, const std::string& name, std::string_view value) {
  check(::lsetxattr(p.c_str(), name.c_str(), value.data(), value.size(), 0) == 0,
        "setxattr " + name + " on " + p.string());
}

// Adds the same kinds of entries to `dir`, whatever it is (a merged overlay
// view, or a plain tree).
void addEntries(const fs::path& dir) {
  writeFileAtomic(dir / "new.txt", "new", 0644);
  check(::chmod((dir / "new.txt").c_str(), 04755) == 0, "chmod");
  setXattr(dir / "new.txt", "trusted.ferry", "t");
  makeDirs(dir / "links", 0750);
  writeFileAtomic(dir / "links/one", "L");
  check(::chown((dir / "links/one").c_str(), 1000, 1001) == 0, "chown");
  check(::link((dir / "links/one").c_str(), (dir / "links/two").c_str()) == 0, "link");
  fs::create_symlink("links/one", dir / "sym");
  makeSparse(dir / "sparse");
  check(::mkfifo((dir / "fifo").c_str(), 0640) == 0, "mkfifo");
  check(::mknod((dir / "null").c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0, "mknod");
}

void requireRoot() {
  if (::geteuid() == 0) return;
  if (::ferry::testing::underCi()) FAIL() << "CI must run this as root (overlay mounts, mknod)";
  GTEST_SKIP() << "skipped on this machine: needs root (overlay mounts, mknod)";
}

// Unmounts on destruction, also when a test fails half way.
class Mount {
 public:
  explicit Mount(const OverlayPaths& p) : target_(p.target) { mountOverlay(p); }
  ~Mount() {
    try {
      unmountIfMounted(target_);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "unmount " << target_ << ": " << e.what();
    }
  }

 private:
  fs::path target_;
};

std::vector<std::string> memberNames(const std::string& tar) {
  std::unique_ptr<archive, int (*)(archive*)> a(archive_read_new(), &archive_read_free);
  archive_read_support_format_tar(a.get());
  if (archive_read_open_memory(a.get(), tar.data(), tar.size()) != ARCHIVE_OK) {
    throw std::runtime_error("not a tar");
  }
  std::vector<std::string> names;
  archive_entry* e;
  while (archive_read_next_header(a.get(), &e) == ARCHIVE_OK)
    names.emplace_back(archive_entry_pathname(e));
  return names;
}

class TreeArchiveTest : public ::testing::Test {
 protected:
  void SetUp() override { requireRoot(); }

  fs::path at(const std::string& rel) const { return base_.path() / rel; }

  TempDir base_;
};

// --- Round trips -------------------------------------------------------------

TEST_F(TreeArchiveTest, OverlayUpperRoundTripsThroughKToOverlay) {
  fs::path lower = at("lower");
  makeDirs(lower / "deldir/sub");
  makeDirs(lower / "opq/oldsub");
  makeDirs(lower / "etc");
  for (const char* f : {"keep.txt", "change.txt", "delete.txt", "deldir/a", "deldir/sub/c",
                        "opq/old1", "opq/oldsub/old2", "etc/hosts"}) {
    writeFileAtomic(lower / f, f);
  }
  Tree before;
  {
    Mount m({lower, at("upper"), at("work"), at("merged")});
    fs::path merged = at("merged");
    addEntries(merged);
    appendTo(merged / "change.txt", " changed");
    check(::unlink((merged / "delete.txt").c_str()) == 0, "unlink");
    removeTree(merged / "deldir");
    removeTree(merged / "opq");
    makeDirs(merged / "opq");
    writeFileAtomic(merged / "opq/fresh", "fresh");
    setXattr(merged / "etc/hosts", "user.note", "hi");
    before = snapshot(merged);
  }

  fs::path tar = at("upper.tar");
  std::vector<TreeChange> changes;
  {
    UniqueFd fd = openFile(tar, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FdSink sink(fd.get(), tar);
    TreeArchiveStats stats =
        writeTreeArchive(at("upper"), TreeKind::kOverlayUpper, sink, lower, &changes);
    EXPECT_GT(stats.entries, 15u);
    EXPECT_LT(stats.data_bytes, 64u * 1024);
  }
  EXPECT_LT(fs::file_size(tar), 1u * kMiB) << "the sparse file's holes were stored";

  std::vector<std::pair<char, std::string>> got;
  for (const auto& c : changes) got.emplace_back(c.mark, c.path);
  std::sort(got.begin(), got.end());
  std::vector<std::pair<char, std::string>> want = {
      {'A', "fifo"},       {'A', "links"},      {'A', "links/one"}, {'A', "links/two"},
      {'A', "new.txt"},    {'A', "null"},       {'A', "opq/fresh"}, {'A', "sparse"},
      {'A', "sym"},        {'C', "change.txt"}, {'C', "etc/hosts"}, {'D', "deldir"},
      {'D', "delete.txt"}, {'D', "opq/old1"},   {'D', "opq/oldsub"}};
  EXPECT_EQ(got, want);

  makeDirs(at("upper2"));
  {
    UniqueFd in = openFile(tar, O_RDONLY);
    UniqueFd root = openFile(at("upper2"), O_RDONLY | O_DIRECTORY);
    applyLayer(in.get(), root.get(), Whiteouts::kToOverlay);
  }
  Mount m({lower, at("upper2"), at("work2"), at("merged2")});
  fs::path merged = at("merged2");
  expectSameTree(before, snapshot(merged));
  EXPECT_FALSE(pathExists(merged / "delete.txt"));
  EXPECT_FALSE(pathExists(merged / "deldir"));
  std::vector<std::string> opq;
  for (const auto& e : fs::directory_iterator(merged / "opq")) opq.push_back(e.path().filename());
  EXPECT_EQ(opq, std::vector<std::string>{"fresh"});
  EXPECT_LT(blocksOf(merged / "sparse") * 512, kMiB) << "the sparse file was filled in";
}

TEST_F(TreeArchiveTest, PlainTreeRoundTripsWithAtimesAndSkipsSockets) {
  fs::path src = at("src");
  makeDirs(src / "d/e", 02750);
  check(::chown((src / "d").c_str(), 7, 8) == 0, "chown");
  addEntries(src);
  check(::mknod((src / "d/whiteout-like").c_str(), S_IFCHR, makedev(0, 0)) == 0, "mknod");
  writeFileAtomic(src / "d/.wh.kept", "a plain tree has no markers");
  writeFileAtomic(src / "d/empty", "");
  writeFileAtomic(src / "d/caf\xc3\xa9", "u");  // names are bytes: UTF-8 or not
  writeFileAtomic(src / "d/raw\xff", "r");
  {
    UniqueFd sock(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{.sun_family = AF_UNIX};
    std::string path = (src / "sock").string();
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    check(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0, "bind");
  }
  Tree before = snapshot(src);
  before.erase("sock");
  // After the snapshot, which reads files and so may move atimes.
  timespec times[2] = {{1000000000, 123}, {UTIME_OMIT, UTIME_OMIT}};
  check(::utimensat(AT_FDCWD, (src / "d/empty").c_str(), times, 0) == 0, "utimensat");

  StringSink sink;
  TreeArchiveStats stats = writeTreeArchive(src, TreeKind::kPlain, sink);
  EXPECT_EQ(stats.entries, before.size());
  // new.txt, links/one once, sparse's data, .wh.kept, café, raw
  EXPECT_EQ(stats.data_bytes, 3u + 1 + 4096 + 27 + 1 + 1);
  fs::path tar = at("plain.tar");
  writeFileAtomic(tar, sink.data);
  makeDirs(at("dst"));
  UniqueFd in = openFile(tar, O_RDONLY);
  UniqueFd root = openFile(at("dst"), O_RDONLY | O_DIRECTORY);
  applyLayer(in.get(), root.get(), Whiteouts::kAsFiles);

  struct stat st;
  ASSERT_EQ(::lstat(at("dst/d/empty").c_str(), &st), 0);  // before snapshot reads it
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 123);
  expectSameTree(before, snapshot(at("dst")));
  EXPECT_LT(blocksOf(at("dst/sparse")) * 512, kMiB);
}

// --- The archive itself ------------------------------------------------------

TEST_F(TreeArchiveTest, MembersAreSortedParentsFirstAndTheSameTreeGivesTheSameBytes) {
  fs::path src = at("src");
  makeDirs(src / "b/c");
  makeDirs(src / "a");
  writeFileAtomic(src / "a.txt", "x");
  writeFileAtomic(src / "b/c/f", "y");
  StringSink first, second;  // no symlinks: readlink would touch their atimes
  writeTreeArchive(src, TreeKind::kPlain, first);
  writeTreeArchive(src, TreeKind::kPlain, second);
  EXPECT_EQ(first.data, second.data);
  EXPECT_EQ(memberNames(first.data),
            (std::vector<std::string>{"./", "a/", "a.txt", "b/", "b/c/", "b/c/f"}));
}

TEST_F(TreeArchiveTest, OverlayUpperMarkersFollowTheirDirectory) {
  fs::path upper = at("upper");
  makeDirs(upper / "o/z");
  makeDirs(upper / "d");
  setXattr(upper / "o", "trusted.overlay.opaque", "y");
  check(::mknod((upper / "d/gone").c_str(), S_IFCHR, makedev(0, 0)) == 0, "mknod");
  check(::link((upper / "d/gone").c_str(), (upper / "d/gone2").c_str()) == 0, "link");
  StringSink sink;
  writeTreeArchive(upper, TreeKind::kOverlayUpper, sink);
  // Whiteouts sharing one inode (overlayfs links them) are not hardlinks.
  EXPECT_EQ(memberNames(sink.data),
            (std::vector<std::string>{"./", "d/", "d/.wh.gone", "d/.wh.gone2", "o/",
                                      "o/.wh..wh..opq", "o/z/"}));
  EXPECT_EQ(sink.data.find("trusted.overlay"), std::string::npos);
}

TEST_F(TreeArchiveTest, UpperNameThatLooksLikeAMarkerIsIncompatibleNamingThePath) {
  makeDirs(at("upper/d"));
  writeFileAtomic(at("upper/d/.wh.x"), "");
  StringSink sink;
  try {
    writeTreeArchive(at("upper"), TreeKind::kOverlayUpper, sink);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible) << e.what();
    EXPECT_NE(std::string(e.what()).find(at("upper/d/.wh.x").string()), std::string::npos)
        << e.what();
  }
}

TEST_F(TreeArchiveTest, MetacopyUpperIsIncompatible) {
  makeDirs(at("upper"));
  writeFileAtomic(at("upper/f"), "");
  setXattr(at("upper/f"), "trusted.overlay.metacopy", "");
  StringSink sink;
  try {
    writeTreeArchive(at("upper"), TreeKind::kOverlayUpper, sink);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible) << e.what();
  }
}

TEST_F(TreeArchiveTest, SinkErrorsKeepTheirCategory) {
  class FullSink : public ByteSink {
   public:
    void write(std::string_view) override { throw Error(ErrorCategory::kRetryable, "peer away"); }
  } sink;
  makeDirs(at("src"));
  writeFileAtomic(at("src/f"), std::string(300000, 'x'));
  try {
    writeTreeArchive(at("src"), TreeKind::kPlain, sink);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
    EXPECT_EQ(e.message(), "peer away");
  }
}

}  // namespace
}  // namespace ferry
