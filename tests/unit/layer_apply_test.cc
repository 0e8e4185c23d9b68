// applyLayer's contract on its own; image import's use of it (rootfs
// tarballs, OCI layers, hostile archives) is covered in image_store_test.cc.
#include "engine/layer_apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/fs.h"

namespace ferry {
namespace {

struct Member {
  std::string path;
  bool is_dir = false;
  std::string data;
};

Member file(std::string path, std::string data = "") { return {std::move(path), false, data}; }
Member dir(std::string path) { return {std::move(path), true, ""}; }

la_ssize_t appendTo(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

void check(archive* a, int r) {
  if (r < ARCHIVE_WARN) throw std::runtime_error(archive_error_string(a));
}

std::string tarBytes(const std::vector<Member>& members) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  check(a, archive_write_open(a, &out, nullptr, appendTo, nullptr));
  for (const Member& m : members) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, m.path.c_str());
    archive_entry_set_filetype(e, m.is_dir ? AE_IFDIR : AE_IFREG);
    archive_entry_set_perm(e, m.is_dir ? 0755 : 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(m.data.size()));
    check(a, archive_write_header(a, e));
    if (archive_write_data(a, m.data.data(), m.data.size()) < 0) check(a, ARCHIVE_FATAL);
    archive_entry_free(e);
  }
  check(a, archive_write_close(a));
  archive_write_free(a);
  return out;
}

class LayerApplyTest : public ::testing::Test {
 protected:
  void SetUp() override { makeDirs(root_); }

  // Applies a tar of `members`, preceded by `prefix` bytes the fd is already past.
  size_t apply(const std::vector<Member>& members, Whiteouts whiteouts,
               const std::string& prefix = "") {
    fs::path tar = base_.path() / "layer.tar";
    writeFileAtomic(tar, prefix + tarBytes(members));
    UniqueFd archive_fd = openFile(tar, O_RDONLY);
    if (::lseek(archive_fd.get(), static_cast<off_t>(prefix.size()), SEEK_SET) < 0) {
      throw std::runtime_error("lseek");
    }
    UniqueFd root_fd = openFile(root_, O_RDONLY | O_DIRECTORY);
    return applyLayer(archive_fd.get(), root_fd.get(), whiteouts);
  }

  TempDir base_;
  fs::path root_ = base_.path() / "rootfs";
};

TEST_F(LayerApplyTest, AsFilesExtractsWhiteoutNamesLiterallyAndCountsMembers) {
  writeFileAtomic(root_ / "x", "lower");
  EXPECT_EQ(apply({file(".wh.x"), dir("d"), file("d/.wh..wh..opq")}, Whiteouts::kAsFiles), 3u);
  EXPECT_EQ(readFile(root_ / "x"), "lower");
  EXPECT_TRUE(fs::is_regular_file(root_ / ".wh.x"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "d/.wh..wh..opq"));
}

TEST_F(LayerApplyTest, ApplyDeletesWhatTheTreeHadAndSparesWhatTheLayerBrings) {
  makeDirs(root_ / "opq/sub");
  writeFileAtomic(root_ / "opq/lower", "l");
  writeFileAtomic(root_ / "gone", "l");
  writeFileAtomic(root_ / "kept", "l");
  apply({file("opq/mine", "m"), file("opq/.wh..wh..opq"), file("late", "n"), file(".wh.late"),
         file(".wh.gone"), file(".wh.absent")},
        Whiteouts::kApply);
  EXPECT_EQ(readFile(root_ / "opq/mine"), "m");
  EXPECT_FALSE(pathExists(root_ / "opq/lower"));
  EXPECT_FALSE(pathExists(root_ / "opq/sub"));
  EXPECT_FALSE(pathExists(root_ / "opq/.wh..wh..opq"));
  EXPECT_EQ(readFile(root_ / "late"), "n");
  EXPECT_FALSE(pathExists(root_ / "gone"));
  EXPECT_FALSE(pathExists(root_ / ".wh.gone"));
  EXPECT_EQ(readFile(root_ / "kept"), "l");
}

TEST_F(LayerApplyTest, ReadsFromTheCurrentOffsetOfTheArchiveFd) {
  EXPECT_EQ(apply({file("f", "data")}, Whiteouts::kAsFiles, std::string(1000, 'j')), 1u);
  EXPECT_EQ(readFile(root_ / "f"), "data");
}

TEST_F(LayerApplyTest, CallersCwdAndUmaskAreUntouched) {
  fs::path cwd = fs::current_path();
  mode_t mask = ::umask(027);
  apply({dir("d"), file("d/f", "x")}, Whiteouts::kApply);
  EXPECT_EQ(fs::current_path(), cwd);
  EXPECT_EQ(::umask(mask), 027u);
}

TEST_F(LayerApplyTest, HostileMemberFailsAsInvalidInputNamingItAndWritesNothingOutside) {
  try {
    apply({file("ok"), file("../escape", "x")}, Whiteouts::kApply);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    ASSERT_FALSE(e.context().empty());
    EXPECT_EQ(e.context().front(), "archive member '../escape'");
  }
  EXPECT_FALSE(pathExists(base_.path() / "escape"));
}

TEST_F(LayerApplyTest, WhiteoutNamingNoFileIsRejected) {
  writeFileAtomic(root_ / "x", "lower");
  EXPECT_THROW(apply({file(".wh.")}, Whiteouts::kApply), Error);
  EXPECT_EQ(readFile(root_ / "x"), "lower");
}

}  // namespace
}  // namespace ferry
