#include "engine/image/image_store.h"

#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <thread>

#include "common/error.h"
#include "common/sha256.h"
#include "tests/support/oci_layout.h"

namespace ferry {
namespace {

using nlohmann::json;

// --- building archives ---------------------------------------------------

struct Member {
  std::string path;
  char type = 'f';   // f file, d dir, l symlink, h hardlink
  std::string data;  // content, or link target
  int mode = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1600000000;
  std::vector<std::pair<std::string, std::string>> xattrs;
};

Member member(std::string path, char type, std::string data, int mode) {
  Member m;
  m.path = std::move(path);
  m.type = type;
  m.data = std::move(data);
  m.mode = mode;
  return m;
}
Member file(std::string path, std::string data = "") { return member(path, 'f', data, 0644); }
Member dir(std::string path) { return member(path, 'd', "", 0755); }
Member symlink(std::string path, std::string target) { return member(path, 'l', target, 0777); }
Member hardlink(std::string path, std::string target) { return member(path, 'h', target, 0644); }

enum class Compression { kNone, kGzip, kZstd };

la_ssize_t appendTo(archive*, void* out, const void* buf, size_t n) {
  static_cast<std::string*>(out)->append(static_cast<const char*>(buf), n);
  return static_cast<la_ssize_t>(n);
}

void check(archive* a, int r) {
  if (r < ARCHIVE_WARN) throw std::runtime_error(archive_error_string(a));
}

void writeMember(archive* a, const Member& m) {
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, m.path.c_str());
  archive_entry_set_perm(e, static_cast<mode_t>(m.mode));
  archive_entry_set_uid(e, m.uid);
  archive_entry_set_gid(e, m.gid);
  archive_entry_set_mtime(e, m.mtime, 0);
  for (const auto& [k, v] : m.xattrs)
    archive_entry_xattr_add_entry(e, k.c_str(), v.data(), v.size());
  bool regular = m.type == 'f';
  archive_entry_set_filetype(e, m.type == 'd' ? AE_IFDIR : m.type == 'l' ? AE_IFLNK : AE_IFREG);
  if (m.type == 'l') archive_entry_set_symlink(e, m.data.c_str());
  if (m.type == 'h') archive_entry_set_hardlink(e, m.data.c_str());
  archive_entry_set_size(e, regular ? static_cast<la_int64_t>(m.data.size()) : 0);
  check(a, archive_write_header(a, e));
  if (regular && archive_write_data(a, m.data.data(), m.data.size()) < 0) {
    throw std::runtime_error(archive_error_string(a));
  }
  archive_entry_free(e);
}

std::string tarBytes(const std::vector<Member>& members, Compression c = Compression::kNone) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  if (c == Compression::kGzip) check(a, archive_write_add_filter_gzip(a));
  if (c == Compression::kZstd) check(a, archive_write_add_filter_zstd(a));
  // No zero padding after a compressed stream: zstd readers take it for a frame.
  archive_write_set_bytes_in_last_block(a, 1);
  check(a, archive_write_open(a, &out, nullptr, appendTo, nullptr));
  for (const Member& m : members) writeMember(a, m);
  check(a, archive_write_close(a));
  archive_write_free(a);
  return out;
}

std::string zipBytes() {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_zip(a);
  check(a, archive_write_open(a, &out, nullptr, appendTo, nullptr));
  writeMember(a, file("hello", "hi"));
  check(a, archive_write_close(a));
  archive_write_free(a);
  return out;
}

// Every file and directory below `root`, as tar members.
std::vector<Member> treeMembers(const fs::path& root) {
  std::vector<Member> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    std::string rel = fs::relative(e.path(), root).string();
    out.push_back(e.is_directory() ? dir(rel) : file(rel, readFile(e.path())));
  }
  return out;
}

// Writes an OCI image layout the way skopeo or buildah would, its layers
// from tar members.
class OciBuilder : public ferry::testing::OciLayoutWriter {
 public:
  using OciLayoutWriter::OciLayoutWriter;

  json layer(const std::vector<Member>& members, Compression c = Compression::kGzip) {
    std::string type = "application/vnd.oci.image.layer.v1.tar";
    if (c == Compression::kGzip) type += "+gzip";
    if (c == Compression::kZstd) type += "+zstd";
    return blob(tarBytes(members, c), type);
  }
};

// --- fixture -------------------------------------------------------------

class ImageStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    makeDirs(inputs_);
    makeDirs(outside_);
    writeFileAtomic(outside_ / "victim", "host data");
  }

  fs::path input(const std::string& name, const std::string& bytes) {
    writeFileAtomic(inputs_ / name, bytes);
    return inputs_ / name;
  }

  std::vector<std::string> storeEntries() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(store_dir_)) out.push_back(e.path().filename());
    return out;
  }

  // The two-layer image the whiteout tests and the tar variant share.
  json buildTwoLayerLayout(const fs::path& where) {
    OciBuilder oci(where);
    json l1 = oci.layer({dir("etc"), file("etc/os-release", "v1"), file("etc/keep", "k"),
                         dir("opt"), dir("opt/app"), file("opt/app/old"), dir("opt/app/sub"),
                         file("opt/app/sub/deep"), dir("var"), file("var/log")});
    // Same-layer member before the opaque marker: must survive it.
    Member etc = dir("etc");
    etc.mtime = 1700000000;  // changed by this layer: its time must win
    json l2 = oci.layer({etc, file("etc/.wh.os-release"), dir("opt/app"), file("opt/app/new", "n"),
                         file("opt/app/.wh..wh..opq"), file(".wh.var"), file("etc/added", "a")},
                        Compression::kZstd);
    json cfg = oci.config({{"Env", {"PATH=/usr/bin", "A=1"}},
                           {"Entrypoint", {"/bin/app"}},
                           {"Cmd", {"--serve"}},
                           {"WorkingDir", "/srv"},
                           {"User", "1000:1000"}});
    oci.index({oci.manifest(cfg, {l1, l2})});
    return cfg;
  }

  void expectTwoLayerRootfs(const ImageRecord& r, const json& cfg) {
    EXPECT_EQ(r.id, cfg["digest"].get<std::string>().substr(7));
    EXPECT_EQ(r.format, "oci-layout");
    fs::path root = store_.rootfs(r.id);
    EXPECT_FALSE(fs::exists(root / "etc/os-release"));
    EXPECT_FALSE(fs::exists(root / "etc/.wh.os-release"));
    EXPECT_EQ(readFile(root / "etc/keep"), "k");
    EXPECT_EQ(readFile(root / "etc/added"), "a");
    struct stat st;
    ASSERT_EQ(::lstat((root / "etc").c_str(), &st), 0);
    EXPECT_EQ(st.st_mtim.tv_sec, 1700000000);
    EXPECT_FALSE(fs::exists(root / "opt/app/old"));
    EXPECT_FALSE(fs::exists(root / "opt/app/sub"));
    EXPECT_EQ(readFile(root / "opt/app/new"), "n");
    EXPECT_FALSE(fs::exists(root / "opt/app/.wh..wh..opq"));
    EXPECT_FALSE(fs::exists(root / "var"));
    ImageConfig want{{"PATH=/usr/bin", "A=1"}, {"/bin/app"}, {"--serve"}, "/srv", "1000:1000"};
    EXPECT_EQ(r.config, want);
  }

  // An import that must fail as bad input, leaving the store empty.
  void expectRejected(const fs::path& source, const std::string& why, ImageStore* store = nullptr) {
    try {
      (store ? *store : store_).import("bad", source);
      ADD_FAILURE() << "import of " << source << " succeeded";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
      EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
      ASSERT_FALSE(e.context().empty());
      EXPECT_EQ(e.context().front(), "importing image 'bad' from " + source.string());
    }
    EXPECT_TRUE(storeEntries().empty()) << storeEntries().front();
  }

  TempDir root_;
  fs::path store_dir_ = root_.path() / "images";
  fs::path inputs_ = root_.path() / "inputs";
  fs::path outside_ = root_.path() / "outside";
  ImageStore store_{store_dir_};
};

// --- rootfs tarballs ------------------------------------------------------

TEST_F(ImageStoreTest, RootfsTarKeepsContentOwnersModesTimesXattrsAndLinks) {
  Member top = dir("./");
  top.mtime = 1400000000;
  top.mode = 0711;
  Member etc = dir("etc");
  etc.mode = 0750;
  etc.uid = 1234;
  etc.mtime = 1500000000;
  Member host = file("etc/hostname", "box\n");
  host.mode = 04750;
  host.uid = 1234;
  host.gid = 2345;
  host.xattrs = {{"user.ferry", "yes"}, {"trusted.overlay.opaque", "y"}};
  fs::path tar =
      input("rootfs.tar",
            tarBytes({top, etc, host, hardlink("etc/name2", "etc/hostname"),
                      symlink("bin", "usr/bin"), file("usr/share/Főtanúsítvány.crt", "cert")}));
  ImageRecord r = store_.import("base:1", tar);

  EXPECT_EQ(r.id, sha256File(tar));
  EXPECT_EQ(r.names, std::vector<std::string>{"base:1"});
  EXPECT_EQ(r.format, "rootfs-tar");
  EXPECT_EQ(r.source, tar.string());
  EXPECT_EQ(r.size_bytes, 12u);  // by name: the hardlinked "box\n" counts twice, plus "cert"
  fs::path root = store_.rootfs(r.id);
  EXPECT_EQ(root, store_dir_ / r.id / "rootfs");
  struct stat st;
  ASSERT_EQ(::lstat(root.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0711u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1400000000);
  ASSERT_EQ(::lstat((root / "etc").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  ASSERT_EQ(::lstat((root / "etc/hostname").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 04750u);
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 2345u);
  EXPECT_EQ(st.st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(st.st_nlink, 2u);
  char value[8] = {};
  EXPECT_EQ(::lgetxattr((root / "etc/hostname").c_str(), "user.ferry", value, sizeof value), 3);
  EXPECT_STREQ(value, "yes");
  EXPECT_LT(::lgetxattr((root / "etc/hostname").c_str(), "trusted.overlay.opaque", value, 8), 0)
      << "overlay xattrs from an image must be dropped";
  EXPECT_EQ(fs::read_symlink(root / "bin"), "usr/bin");
  EXPECT_EQ(readFile(root / "usr/share/Főtanúsítvány.crt"), "cert");
  EXPECT_EQ(json::parse(readFile(store_dir_ / r.id / "image.json")).get<ImageRecord>(), r);
  EXPECT_EQ(storeEntries(), std::vector<std::string>{r.id});
}

class CompressedRootfsTest : public ImageStoreTest,
                             public ::testing::WithParamInterface<Compression> {};

TEST_P(CompressedRootfsTest, ImportsAndIdsTheCompressedBytes) {
  std::string bytes = tarBytes({dir("etc"), file("etc/motd", "hello")}, GetParam());
  fs::path tar = input("rootfs.tar.x", bytes);
  ImageRecord r = store_.import("", tar);
  EXPECT_EQ(r.id, sha256Hex(bytes));
  EXPECT_TRUE(r.names.empty());
  EXPECT_EQ(readFile(store_.rootfs(r.id) / "etc/motd"), "hello");
}

INSTANTIATE_TEST_SUITE_P(Filters, CompressedRootfsTest,
                         ::testing::Values(Compression::kNone, Compression::kGzip,
                                           Compression::kZstd));

// --- OCI layouts ----------------------------------------------------------

TEST_F(ImageStoreTest, OciLayoutAppliesLayersWithWhiteoutsAndOpaqueDirs) {
  json cfg = buildTwoLayerLayout(inputs_ / "layout");
  ImageRecord r = store_.import("app", inputs_ / "layout");
  expectTwoLayerRootfs(r, cfg);
}

TEST_F(ImageStoreTest, OciLayoutInACompressedTarGivesTheSameImage) {
  json cfg = buildTwoLayerLayout(inputs_ / "layout");
  fs::path tar =
      input("layout.tar.gz", tarBytes(treeMembers(inputs_ / "layout"), Compression::kGzip));
  ImageRecord r = store_.import("app", tar);
  expectTwoLayerRootfs(r, cfg);
  EXPECT_EQ(storeEntries().size(), 1u) << "the unpacked layout must not stay behind";
}

TEST_F(ImageStoreTest, LaterLayerFileReplacesWholeDirectory) {
  OciBuilder oci(inputs_ / "layout");
  json l1 = oci.layer({dir("d"), dir("d/sub"), file("d/sub/x")});
  json l2 = oci.layer({file("d", "now a file")});
  oci.index({oci.manifest(oci.config(json::object()), {l1, l2})});
  ImageRecord r = store_.import("", inputs_ / "layout");
  EXPECT_EQ(readFile(store_.rootfs(r.id) / "d"), "now a file");
}

TEST_F(ImageStoreTest, PicksTheManifestWhoseRefNameIsTheImageName) {
  OciBuilder oci(inputs_ / "layout");
  json m1 = oci.manifest(oci.config({{"Cmd", {"one"}}}), {oci.layer({file("one")})});
  json m2 = oci.manifest(oci.config({{"Cmd", {"two"}}}), {oci.layer({file("two")})});
  m1["annotations"] = {{"org.opencontainers.image.ref.name", "v1"}};
  m2["annotations"] = {{"org.opencontainers.image.ref.name", "v2"}};
  oci.index({m1, m2});
  EXPECT_EQ(store_.import("v2", inputs_ / "layout").config.cmd, std::vector<std::string>{"two"});
  EXPECT_EQ(store_.import("other", inputs_ / "layout").config.cmd, std::vector<std::string>{"one"});
}

TEST_F(ImageStoreTest, FollowsANestedIndexToLinuxAmd64) {
  OciBuilder oci(inputs_ / "layout");
  json arm = oci.manifest(oci.config({{"Cmd", {"arm"}}}), {oci.layer({file("arm")})});
  json amd = oci.manifest(oci.config({{"Cmd", {"amd"}}}), {oci.layer({file("amd")})});
  arm["platform"] = {{"os", "linux"}, {"architecture", "arm64"}};
  amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  oci.index({oci.imageIndex({arm, amd})});
  ImageRecord r = store_.import("multi", inputs_ / "layout");
  EXPECT_EQ(r.config.cmd, std::vector<std::string>{"amd"});
  EXPECT_TRUE(fs::exists(store_.rootfs(r.id) / "amd"));
}

TEST_F(ImageStoreTest, LayerWhoseDigestDoesNotMatchIsRejectedAndNothingIsLeft) {
  OciBuilder oci(inputs_ / "layout");
  json layer = oci.layer({file("f", "good")}, Compression::kNone);
  oci.index({oci.manifest(oci.config(json::object()), {layer})});
  std::string bytes = readFile(oci.blobPath(layer));
  bytes[600] ^= 1;  // inside the content of "f": same size, other digest
  writeFileAtomic(oci.blobPath(layer), bytes);
  expectRejected(inputs_ / "layout", "content does not match digest");
  expectRejected(input("layout.tar", tarBytes(treeMembers(inputs_ / "layout"))),
                 "content does not match digest");
}

// A tar whose only member "big" is sparse: `apparent` bytes long, holding
// 4 KiB of data at its start (the tar itself stays a few KiB).
std::string sparseTar(uint64_t apparent) {
  std::string out;
  archive* a = archive_write_new();
  archive_write_set_format_pax(a);
  check(a, archive_write_open(a, &out, nullptr, appendTo, nullptr));
  archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "big");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(apparent));
  archive_entry_sparse_add_entry(e, 0, 4096);
  check(a, archive_write_header(a, e));
  std::string data(4096, 'x');
  if (archive_write_data(a, data.data(), data.size()) < 0) check(a, ARCHIVE_FATAL);
  archive_entry_free(e);
  check(a, archive_write_close(a));
  archive_write_free(a);
  return out;
}

// Issue 14, hole 5: "a 67 KB file became 2 GiB; a 1 TiB sparse file was
// accepted". A bounded store refuses both with the bundle reader's message,
// and nothing of the import stays.
TEST_F(ImageStoreTest, SparseMemberOverTheSizeLimitIsRefusedBeforeItIsWritten) {
  ImageStore limited(store_dir_, {.max_total_bytes = uint64_t{1} << 30});
  std::string tar = sparseTar(uint64_t{1} << 40);
  ASSERT_LT(tar.size(), 64u << 10);
  expectRejected(input("sparse.tar", tar), "image exceeds the size limit of 1073741824 bytes",
                 &limited);
}

TEST_F(ImageStoreTest, ZeroFilledMemberOverTheRatioIsRefusedAndNothingIsLeft) {
  ImageStore limited(store_dir_, {.max_ratio = 100});
  // 80 MiB of zeros gzip to about 80 KiB: some 1000 times.
  std::string tar = tarBytes({file("zeros", std::string(80u << 20, '\0'))}, Compression::kGzip);
  ASSERT_LT(tar.size(), 1u << 20);
  expectRejected(input("zeros.tar.gz", tar),
                 "image decompresses more than 100 times its size: refused as a decompression bomb",
                 &limited);
}

TEST_F(ImageStoreTest, LimitsCountEveryLayerOfAnOciImage) {
  ImageStore limited(store_dir_, {.max_total_bytes = 6000});
  OciBuilder oci(inputs_ / "layout");
  json one = oci.layer({file("a", std::string(4000, 'a'))}, Compression::kNone);
  json two = oci.layer({file("b", std::string(4000, 'b'))}, Compression::kNone);
  oci.index({oci.manifest(oci.config(json::object()), {one, two})});
  expectRejected(inputs_ / "layout", "image exceeds the size limit of 6000 bytes", &limited);
}

TEST_F(ImageStoreTest, DigestThatIsAPathIsRejected) {
  OciBuilder oci(inputs_ / "layout");
  json m = oci.manifest(oci.config(json::object()), {});
  m["digest"] = "sha256:../../../outside/victim";
  oci.index({m});
  expectRejected(inputs_ / "layout", "malformed digest");
}

// --- hostile archives -----------------------------------------------------

TEST_F(ImageStoreTest, DotDotMembersAreRejectedAndWriteNothingOutside) {
  for (int depth = 1; depth <= 4; ++depth) {
    std::string up;
    for (int i = 0; i < depth; ++i) up += "../";
    fs::path tar = input("escape.tar", tarBytes({file("ok"), file(up + "ferry-escape")}));
    expectRejected(tar, "'..'");
    for (fs::path p = store_dir_; p != p.parent_path(); p = p.parent_path()) {
      EXPECT_FALSE(fs::exists(p / "ferry-escape")) << p;
    }
  }
}

TEST_F(ImageStoreTest, AbsoluteMemberIsRejectedAndWritesNothingOutside) {
  fs::path target = outside_ / "planted";
  expectRejected(input("abs.tar", tarBytes({file("ok"), file(target.string(), "x")})), "absolute");
  EXPECT_FALSE(fs::exists(target));
}

TEST_F(ImageStoreTest, MemberBelowASymlinkDoesNotWriteOutside) {
  fs::path tar = input("through.tar",
                       tarBytes({symlink("link", outside_.string()), file("link/planted", "x")}));
  // One archive making a symlink and then writing beneath it is refused.
  expectRejected(tar, "through the symlink 'link' this archive made");
  EXPECT_FALSE(fs::exists(outside_ / "planted"));
}

TEST_F(ImageStoreTest, DirectoryReplacedBySymlinkDoesNotChmodOutside) {
  ASSERT_EQ(::chmod(outside_.c_str(), 0755), 0);
  Member d = dir("d");
  d.mode = 0700;
  fs::path tar = input("swap.tar", tarBytes({d, symlink("d", outside_.string())}));
  try {
    store_.import("", tar);
  } catch (const Error&) {
    // Refusing is fine; touching the outside is not.
  }
  struct stat st;
  ASSERT_EQ(::stat(outside_.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
}

TEST_F(ImageStoreTest, HardlinksOutsideTheRootfsAreRejected) {
  fs::path secret = outside_ / "victim";
  expectRejected(input("h1.tar", tarBytes({hardlink("h", secret.string())})), "absolute");
  expectRejected(input("h2.tar", tarBytes({hardlink("h", "../../../outside/victim")})), "'..'");
  expectRejected(
      input("h3.tar", tarBytes({symlink("link", outside_.string()), hardlink("h", "link/victim")})),
      "hardlink target 'link/victim'");
  struct stat st;
  ASSERT_EQ(::stat(secret.c_str(), &st), 0);
  EXPECT_EQ(st.st_nlink, 1u);
}

TEST_F(ImageStoreTest, WhiteoutBelowASymlinkDeletesNothingOutside) {
  writeFileAtomic(outside_ / "victim2", "host data");
  writeFileAtomic(outside_ / "victim3", "host data");
  OciBuilder oci(inputs_ / "layout");
  json l1 = oci.layer({symlink("link", outside_.string()), symlink("rel", "../../../outside"),
                       symlink("opq", outside_.string())});
  json l2 = oci.layer({file("link/.wh.victim"), file("rel/.wh.victim2"), file("opq/.wh..wh..opq")});
  oci.index({oci.manifest(oci.config(json::object()), {l1, l2})});
  ImageRecord r = store_.import("", inputs_ / "layout");
  EXPECT_EQ(readFile(outside_ / "victim"), "host data");
  EXPECT_EQ(readFile(outside_ / "victim2"), "host data");
  EXPECT_EQ(readFile(outside_ / "victim3"), "host data");
  EXPECT_TRUE(fs::is_symlink(store_.rootfs(r.id) / "link"));
}

TEST_F(ImageStoreTest, NonTarInputsAreRejectedClearly) {
  expectRejected(input("a.zip", zipBytes()), "not a tar archive");
  expectRejected(input("notes.txt", "just some text, long enough to not be anything\n"),
                 "not a tar archive");
  makeDirs(inputs_ / "plain-dir");
  expectRejected(inputs_ / "plain-dir", "not an OCI image layout");
}

// --- names, lookup, removal -------------------------------------------------

TEST_F(ImageStoreTest, ReimportIsIdempotentAndNamesMoveToTheNewImage) {
  fs::path one = input("one.tar", tarBytes({file("one")}));
  fs::path two = input("two.tar", tarBytes({file("two")}));
  ImageRecord a = store_.import("app", one);
  ImageRecord again = store_.import("alias", one);
  EXPECT_EQ(again.id, a.id);
  EXPECT_EQ(again.names, (std::vector<std::string>{"app", "alias"}));
  EXPECT_EQ(store_.list().size(), 1u);

  ImageRecord b = store_.import("app", two);
  EXPECT_EQ(store_.resolve("app").id, b.id);
  EXPECT_EQ(store_.resolve(a.id).names, std::vector<std::string>{"alias"});
  EXPECT_EQ(store_.list().size(), 2u);
  EXPECT_EQ(storeEntries().size(), 2u);
}

TEST_F(ImageStoreTest, ConcurrentImportsOfTheSameContentMakeOneImageWithBothNames) {
  fs::path tar = input("t.tar", tarBytes({file("x", "same")}));
  std::vector<std::thread> threads;
  std::vector<std::string> errors(4);
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&, i] {
      try {
        store_.import("n" + std::to_string(i), tar);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& e : errors) EXPECT_EQ(e, "");
  ASSERT_EQ(store_.list().size(), 1u);
  std::vector<std::string> names = store_.list().front().names;
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"n0", "n1", "n2", "n3"}));
  EXPECT_EQ(storeEntries().size(), 1u);
}

TEST_F(ImageStoreTest, FindsByNameFullIdAndUniquePrefixOfTwelve) {
  ImageRecord r =
      store_.import("docker.io/library/base:3.19", input("t.tar", tarBytes({file("x")})));
  EXPECT_EQ(store_.find("docker.io/library/base:3.19")->id, r.id);
  EXPECT_EQ(store_.find(r.id)->id, r.id);
  EXPECT_EQ(store_.resolve(r.id.substr(0, 12)).id, r.id);
  EXPECT_FALSE(store_.find(r.id.substr(0, 11)).has_value());
  EXPECT_FALSE(store_.find("nope").has_value());
}

TEST_F(ImageStoreTest, ResolveOfAnUnknownImageSaysHowToImportIt) {
  try {
    store_.resolve("web");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_EQ(e.message(), "no image 'web' on this host; import it with 'image import NAME FILE'");
  }
}

TEST_F(ImageStoreTest, InvalidNamesAreRejectedBeforeAnyWork) {
  fs::path tar = input("t.tar", tarBytes({file("x")}));
  for (const std::string& bad : std::vector<std::string>{
           "-x", ".x", "a b", "a\nb", "x;rm", std::string(129, 'a'), std::string(64, 'a')}) {
    EXPECT_THROW(store_.import(bad, tar), Error) << bad;
  }
  EXPECT_TRUE(storeEntries().empty());
  EXPECT_NO_THROW(store_.import(std::string(128, 'a'), tar));
}

TEST_F(ImageStoreTest, RemoveDeletesTheImageAndItsFiles) {
  ImageRecord r = store_.import("gone", input("t.tar", tarBytes({file("x")})));
  store_.remove("gone");
  EXPECT_FALSE(store_.find(r.id).has_value());
  EXPECT_TRUE(storeEntries().empty());
  EXPECT_THROW(store_.remove("gone"), Error);
}

TEST(ImageRecordJson, RoundTrips) {
  ImageRecord r{std::string(64, 'a'),
                {"x", "y"},
                "/src.tar",
                "oci-layout",
                1700000000,
                42,
                ImageConfig{{"A=1"}, {"/e"}, {"c"}, "/w", "u"}};
  json j = r;
  EXPECT_EQ(j["created_unix"], 1700000000);
  EXPECT_EQ(j["config"]["workdir"], "/w");
  EXPECT_EQ(j.get<ImageRecord>(), r);
}

}  // namespace
}  // namespace ferry

namespace ferry {
namespace {

// What a migration sends to a host that lacks the image: the very file it
// was imported from, which imports there under the same id.
TEST_F(ImageStoreTest, TheImportedFileIsKeptSoThatItCanBeSentOn) {
  fs::path one = input("one.tar", tarBytes({file("one")}));
  ImageRecord a = store_.import("app", one);
  auto kept = store_.sourceFile(a.id);
  ASSERT_TRUE(kept);
  EXPECT_EQ(readFile(*kept), readFile(one));
  ImageStore elsewhere(inputs_ / "other-store");
  EXPECT_EQ(elsewhere.import("app", *kept).id, a.id);

  buildTwoLayerLayout(inputs_ / "layout");
  fs::path tar =
      input("layout.tar.gz", tarBytes(treeMembers(inputs_ / "layout"), Compression::kGzip));
  ImageRecord from_tar = store_.import("layout-tar", tar);
  ASSERT_TRUE(store_.sourceFile(from_tar.id));
  EXPECT_EQ(elsewhere.import("layout-tar", *store_.sourceFile(from_tar.id)).id, from_tar.id);
  // A layout imported from a directory has no one file to send.
  ImageStore third(inputs_ / "third-store");
  EXPECT_FALSE(third.sourceFile(third.import("layout-dir", inputs_ / "layout").id));
}

}  // namespace
}  // namespace ferry
