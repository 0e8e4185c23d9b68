// applyLayer's contract on its own; image import's use of it (rootfs
// tarballs, OCI layers, hostile archives) is covered in image_store_test.cc.
#include "engine/image/layer_apply.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <selinux/selinux.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <cstring>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {
namespace {

struct Member {
  std::string path;
  bool is_dir = false;
  std::string data;
  std::string symlink;  // target, for a symlink
  std::vector<std::pair<std::string, std::string>> xattrs;
};

Member file(std::string path, std::string data = "") { return {std::move(path), false, data}; }
Member dir(std::string path) { return {std::move(path), true, ""}; }
Member symlink(std::string path, std::string target) {
  return {std::move(path), false, "", std::move(target)};
}

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
    archive_entry_set_filetype(e, m.is_dir ? AE_IFDIR : m.symlink.empty() ? AE_IFREG : AE_IFLNK);
    archive_entry_set_perm(e, m.is_dir ? 0755 : 0644);
    archive_entry_set_size(e, static_cast<la_int64_t>(m.data.size()));
    if (!m.symlink.empty()) archive_entry_set_symlink(e, m.symlink.c_str());
    for (const auto& [name, value] : m.xattrs) {
      archive_entry_xattr_add_entry(e, name.c_str(), value.data(), value.size());
    }
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
               const std::string& prefix = "", ExtractBudget* budget = nullptr) {
    fs::path tar = base_.path() / "layer.tar";
    writeFileAtomic(tar, prefix + tarBytes(members));
    UniqueFd archive_fd = openFile(tar, O_RDONLY);
    if (::lseek(archive_fd.get(), static_cast<off_t>(prefix.size()), SEEK_SET) < 0) {
      throw std::runtime_error("lseek");
    }
    UniqueFd root_fd = openFile(root_, O_RDONLY | O_DIRECTORY);
    return applyLayer(archive_fd.get(), root_fd.get(), whiteouts, budget);
  }

  TempDir base_;
  fs::path root_ = base_.path() / "rootfs";
};

TEST_F(LayerApplyTest, BudgetCountsApparentBytesAcrossCallsAndRefusesPastIt) {
  ExtractBudget budget{.limits = {.max_total_bytes = 5000}};
  apply({file("a", std::string(3000, 'a'))}, Whiteouts::kAsFiles, "", &budget);
  EXPECT_EQ(budget.raw, 3000u);
  EXPECT_GT(budget.wire, 3000u);
  try {
    apply({file("b", std::string(3000, 'b'))}, Whiteouts::kAsFiles, "", &budget);
    ADD_FAILURE() << "6000 bytes passed a budget of 5000";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("image exceeds the size limit of 5000 bytes"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(root_ / "b"));  // refused on its header, before a byte
}

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

std::string xattr(const fs::path& p, const char* name) {
  std::string value(256, '\0');
  ssize_t n = ::lgetxattr(p.c_str(), name, value.data(), value.size());
  if (n < 0) return "<" + std::string(std::strerror(errno)) + ">";
  value.resize(static_cast<size_t>(n));
  return value;
}

bool isWhiteout(const fs::path& p) {
  struct stat st;
  return ::lstat(p.c_str(), &st) == 0 && S_ISCHR(st.st_mode) && st.st_rdev == makedev(0, 0);
}

const std::string kNoData = "<" + std::string(std::strerror(ENODATA)) + ">";

TEST_F(LayerApplyTest, ToOverlayTurnsMarkersIntoWhiteoutsAndOpaqueDirsWhateverTheOrder) {
  EXPECT_EQ(apply({dir("d"), file("d/.wh.gone"), dir("o"), file("o/.wh..wh..opq"),
                   file("o/mine", "m"), file(".wh.late"), file("late", "n"), file(".wh.re"),
                   dir("re"), file("re/x", "x"), file("missing/.wh.y"), file("o/.wh.gone", "")},
                  Whiteouts::kToOverlay),
            12u);
  EXPECT_TRUE(isWhiteout(root_ / "d/gone"));
  EXPECT_FALSE(pathExists(root_ / "d/.wh.gone"));
  EXPECT_EQ(xattr(root_ / "o", "trusted.overlay.opaque"), "y");
  EXPECT_EQ(readFile(root_ / "o/mine"), "m");
  EXPECT_FALSE(pathExists(root_ / "o/.wh..wh..opq"));
  EXPECT_TRUE(isWhiteout(root_ / "o/gone"));
  EXPECT_EQ(readFile(root_ / "late"), "n");  // this layer's own file hides lower's already
  EXPECT_EQ(xattr(root_ / "re", "trusted.overlay.opaque"), "y");  // replaces lower's re
  EXPECT_EQ(readFile(root_ / "re/x"), "x");
  EXPECT_TRUE(isWhiteout(root_ / "missing/y"));
  EXPECT_EQ(xattr(root_ / "d", "trusted.overlay.opaque"), kNoData);
}

TEST_F(LayerApplyTest, ToOverlayDropsOverlayXattrsTheArchiveBrings) {
  Member d = dir("d");
  d.xattrs = {{"trusted.overlay.opaque", "y"}, {"trusted.overlay.redirect", "/etc"}};
  apply({d}, Whiteouts::kToOverlay);
  EXPECT_EQ(xattr(root_ / "d", "trusted.overlay.opaque"), kNoData);
  EXPECT_EQ(xattr(root_ / "d", "trusted.overlay.redirect"), kNoData);
}

TEST_F(LayerApplyTest, ToOverlayRefusesAnUpperdirThatIsNotEmpty) {
  writeFileAtomic(root_ / "old", "x");
  try {
    apply({file(".wh.old")}, Whiteouts::kToOverlay);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
  }
  EXPECT_EQ(readFile(root_ / "old"), "x");
}

TEST_F(LayerApplyTest, ToOverlayWhiteoutNamingNoFileIsRejected) {
  EXPECT_THROW(apply({file("d/.wh..")}, Whiteouts::kToOverlay), Error);
}

TEST_F(LayerApplyTest, ToOverlayMarkersThroughASymlinkedParentMakeNothingOutside) {
  fs::path outside = base_.path() / "outside";
  makeDirs(outside);
  apply({symlink("abs", outside.string()), file("abs/.wh.x"), file("abs/.wh..wh..opq"),
         symlink("rel", "../outside"), file("rel/.wh.y"), file("rel/sub/.wh.z")},
        Whiteouts::kToOverlay);
  EXPECT_TRUE(fs::is_empty(outside));
  EXPECT_EQ(xattr(outside, "trusted.overlay.opaque"), kNoData);
  EXPECT_TRUE(fs::is_symlink(root_ / "abs"));
  EXPECT_TRUE(fs::is_symlink(root_ / "rel"));
}

TEST_F(LayerApplyTest, SelinuxLabelIsAppliedOnlyWhereSelinuxIsEnabled) {
  bool enabled = ::is_selinux_enabled() > 0;
  // A label this host accepts where it enforces them: the one the root has.
  std::string label = enabled ? xattr(root_, "security.selinux") : "system_u:object_r:etc_t:s0";
  Member f = file("f", "x");
  f.xattrs = {{"security.selinux", label}, {"user.kept", "k"}};
  apply({f}, Whiteouts::kApply);
  EXPECT_EQ(xattr(root_ / "f", "user.kept"), "k");
  EXPECT_EQ(xattr(root_ / "f", "security.selinux"), enabled ? label : kNoData);
}

}  // namespace
}  // namespace ferry
