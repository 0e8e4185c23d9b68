#include "engine/bundle/bundle.h"

#include <cstring>
#include <random>
#include <set>

#include <gtest/gtest.h>

#include "engine/bundle/bundle_format.h"
#include "common/error.h"
#include "common/fs.h"
#include "tests/support/bundle_bytes.h"
#include "tests/support/string_stream.h"

namespace ferry {
namespace {

using nlohmann::json;
using bundle_format::buildRecord;

using testing::bundleFileHeader;
using testing::randomBytes;
using testing::StringSink;
using testing::StringSource;

// A bundle with metadata, a CRIU image larger than a chunk (half random,
// half zeros), a rootfs layer and a volume.
std::string sampleBundle(int level, std::vector<BundleEntry>* entries = nullptr) {
  StringSink out;
  BundleWriter w(out, {.level = level, .threads = 2});
  w.openStream("metadata", "checkpoint.json").write(R"({"format":1,"name":"web"})");
  w.closeStream();
  ByteSink& pages = w.openStream("criu", "pages-1.img");
  pages.write(randomBytes(kBundleChunk + 12345, 1));
  pages.write(std::string(2 * kBundleChunk, '\0'));
  w.closeStream();
  w.openStream("rootfs", "rootfs.tar").write("layer bytes");
  w.closeStream();
  w.openStream("volume", "data").write("");
  w.closeStream();
  w.finish({{"note", "sample"}});
  if (entries) *entries = w.entries();
  return out.data;
}

BundleReadResult readInto(const std::string& bytes, const fs::path& dir, BundleLimits limits = {},
                          const MetadataCheck& check = {}) {
  StringSource src(bytes);
  return readBundle(src, dir, limits, check);
}

BundleReadResult verifyInto(const std::string& bytes, const fs::path& dir, BundleLimits limits = {}) {
  StringSource src(bytes);
  return verifyBundle(src, dir, limits);
}

// Both readers refuse it, for the same reason.
void expectRejected(const std::string& bytes, const std::string& needle, BundleLimits limits = {}) {
  for (bool verify_only : {false, true}) {
    TempDir t;
    try {
      verify_only ? verifyInto(bytes, t.path(), limits) : readInto(bytes, t.path(), limits);
      ADD_FAILURE() << (verify_only ? "verifying" : "reading") << " accepted; expected: " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  }
}

std::string openRecord(uint32_t id, const std::string& kind, const std::string& name) {
  return buildRecord(bundle_format::kOpen, id, json{{"kind", kind}, {"name", name}}.dump(), 0);
}

}  // namespace

TEST(Bundle, RoundTripCompressedAndRaw) {
  for (int level : {0, 1, 3}) {
    std::vector<BundleEntry> written;
    std::string bytes = sampleBundle(level, &written);
    TempDir t;
    BundleReadResult r = readInto(bytes, t.path());
    ASSERT_EQ(r.entries.size(), 4u);
    EXPECT_EQ(json(r.entries), json(written));
    EXPECT_EQ(r.info["note"], "sample");
    std::string pages = readFile(t.path() / "criu/pages-1.img");
    EXPECT_EQ(pages.size(), 3 * kBundleChunk + 12345);
    EXPECT_EQ(pages.substr(0, kBundleChunk + 12345), randomBytes(kBundleChunk + 12345, 1));
    EXPECT_EQ(readFile(t.path() / "rootfs.tar"), "layer bytes");
    EXPECT_EQ(readFile(t.path() / "volumes/data.tar"), "");
    EXPECT_TRUE(pathExists(t.path() / "manifest.json"));
    if (level > 0) {
      EXPECT_LT(bytes.size(), pages.size()) << "zeros were not compressed";
    } else {
      EXPECT_GT(bytes.size(), pages.size());
    }
  }
}

// A writer whose records' levels a measured link chooses (record_compression.h):
// the compressing threads report each record back, the choice follows, and
// the bundle reads back exactly whatever each record's codec.
TEST(Bundle, AMeasuredLinkChoosesRecordByRecordAndTheBundleReadsBack) {
  // Compressible (zeros) then incompressible (random) pages, 24 MiB each.
  std::string zeros(24 * kBundleChunk, '\0');
  std::string noise = randomBytes(24 * kBundleChunk, 7);
  for (double link : {50e6, 1e12}) {  // slower than any compressor; faster than any
    RecordCompression rc(link, 2, 1);
    StringSink out;
    {
      BundleWriter w(out, {.threads = 2, .adaptive = &rc});
      w.openStream("metadata", "checkpoint.json").write(R"({"format":1,"name":"web"})");
      w.closeStream();
      ByteSink& pages = w.openStream("criu", "pages-1.img");
      pages.write(zeros);
      pages.write(noise);
      w.closeStream();
      w.finish({});
    }
    RecordCompression::Figures f = rc.figures();
    EXPECT_EQ(f.records, 48u + 1) << "the metadata record too";
    EXPECT_GT(f.bytes_per_cpu_s, 0) << "the threads reported CPU time";
    if (link < 1e9) {
      // Zeros: compressed all along; noise: raw once its ratio was learnt
      // (it never shrinks), but for the samples.
      EXPECT_GT(f.compressed_records, 24u);
      EXPECT_LT(f.compressed_records, 49u) << "the noise never went raw";
    } else {
      // Faster than the compressor: raw after the warm-up (and the records
      // issued meanwhile), one in eight sampled.
      EXPECT_LT(f.compressed_records, 4u + 6u + 49u / RecordCompression::kSampleEvery + 1);
    }
    TempDir t;
    readInto(out.data, t.path());
    std::string back = readFile(t.path() / "criu/pages-1.img");
    EXPECT_TRUE(back == zeros + noise) << "pages differ";
  }
}

TEST(Bundle, MetadataCheckRunsBeforeAnythingElseIsExtracted) {
  std::string bytes = sampleBundle(1);
  TempDir t;
  EXPECT_THROW(readInto(bytes, t.path(), {},
                        [](const json& meta) {
                          EXPECT_EQ(meta["name"], "web");
                          throw Error(ErrorCategory::kIncompatible, "refused");
                        }),
               Error);
  EXPECT_FALSE(pathExists(t.path() / "criu")) << "extraction went on after a refusal";
}

TEST(Bundle, EveryFlippedByteIsCaught) {
  std::string good = sampleBundle(1);
  std::mt19937 rng(7);
  std::vector<size_t> positions = {0, 9, 16, 20, 40, good.size() / 2, good.size() - 1};
  for (int i = 0; i < 40; ++i) positions.push_back(rng() % good.size());
  for (size_t pos : positions) {
    std::string bad = good;
    bad[pos] = static_cast<char>(bad[pos] ^ 0x10);
    TempDir t, v;
    EXPECT_THROW(readInto(bad, t.path()), Error) << "flip at byte " << pos << " went unnoticed";
    EXPECT_THROW(verifyInto(bad, v.path()), Error) << "verifying missed the flip at byte " << pos;
  }
}

// ferry-inspect's reader: the same checks, and nothing but the metadata,
// the changes list and the manifest written.
TEST(Bundle, VerifyingChecksEveryStreamAndWritesOnlyTheMetadata) {
  std::vector<BundleEntry> written;
  StringSink out;
  {
    BundleWriter w(out, {.level = 1, .threads = 2});
    w.openStream("metadata", "checkpoint.json").write(R"({"format":1,"name":"web"})");
    w.closeStream();
    w.openStream("changes", "rootfs-changes.json").write(R"([{"mark":"A","path":"srv/x"}])");
    w.closeStream();
    // 256 MiB of zeros, as touched memory: a few KiB on the wire.
    ByteSink& pages = w.openStream("criu", "pages-1.img");
    for (int i = 0; i < 256; ++i) pages.write(std::string(1 << 20, '\0'));
    w.closeStream();
    w.openStream("volume", "data").write("volume bytes");
    w.closeStream();
    w.finish({{"note", "sample"}});
    written = w.entries();
  }
  TempDir t;
  BundleReadResult r = verifyInto(out.data, t.path());
  EXPECT_EQ(json(r.entries), json(written));
  EXPECT_EQ(r.info["note"], "sample");
  EXPECT_EQ(r.wire_bytes, out.data.size());
  std::set<std::string> names;
  uint64_t on_disk = 0;
  for (const auto& e : fs::recursive_directory_iterator(t.path())) {
    names.insert(fs::relative(e.path(), t.path()).string());
    if (e.is_regular_file()) on_disk += e.file_size();
  }
  EXPECT_EQ(names, (std::set<std::string>{"checkpoint.json", "rootfs-changes.json", "manifest.json"}));
  EXPECT_LT(on_disk, 4096u);
  EXPECT_EQ(readFile(t.path() / "checkpoint.json"), R"({"format":1,"name":"web"})");
}

TEST(Bundle, TruncationAnywhereIsCaught) {
  std::string good = sampleBundle(1);
  for (size_t cut : {size_t{0}, size_t{5}, size_t{16}, size_t{30}, good.size() / 3, good.size() - 1}) {
    TempDir t;
    EXPECT_THROW(readInto(good.substr(0, cut), t.path()), Error) << "cut at " << cut;
  }
  expectRejected(good.substr(0, good.size() - 1), "truncated");
}

TEST(Bundle, HostileNamesAndStructure) {
  std::string h = bundleFileHeader();
  auto manifest = [](json entries) {
    return buildRecord(bundle_format::kManifest, 0, json{{"format", 1}, {"entries", entries}}.dump(), 0);
  };
  expectRejected(h + openRecord(1, "criu", "../escape"), "bad CRIU image name");
  expectRejected(h + openRecord(1, "criu", "/etc/passwd"), "bad CRIU image name");
  expectRejected(h + openRecord(1, "volume", "../../x"), "invalid volume name");
  expectRejected(h + openRecord(1, "binary", "x"), "unknown bundle entry kind");
  expectRejected(h + openRecord(1, "rootfs", "other.tar"), "must be named rootfs.tar");
  // The same file twice.
  std::string twice = h + openRecord(1, "criu", "a.img") +
                      buildRecord(bundle_format::kClose, 1, "", 0) + openRecord(2, "criu", "a.img");
  expectRejected(twice, "bundle entry criu/a.img");
  // Data for a stream that is not open.
  expectRejected(h + buildRecord(bundle_format::kData, 9, "x", 0), "not open");
  // A manifest that lies about an entry.
  std::string lie = h + openRecord(1, "criu", "a.img") + buildRecord(bundle_format::kData, 1, "abc", 0) +
                    buildRecord(bundle_format::kClose, 1, "", 0) +
                    manifest(json::array({{{"kind", "criu"}, {"name", "a.img"}, {"size", 4}, {"xxh3", 0}}}));
  expectRejected(lie, "does not match the manifest");
  // Anything after the manifest.
  expectRejected(h + manifest(json::array()) + "x", "after the manifest");
  expectRejected("NOTABUNDLE000000", "not a ferry checkpoint bundle");
}

TEST(Bundle, ZstdBombAndLimits) {
  // A frame that expands beyond what its record declares.
  std::string big(kBundleMaxRecord + 1, '\0');
  std::string rec = buildRecord(bundle_format::kData, 1, big, 3);
  expectRejected(bundleFileHeader() + openRecord(1, "criu", "p.img") + rec, "larger than 4 MiB");
  // A record declaring a small size whose frame holds more.
  std::string frame = buildRecord(bundle_format::kData, 1, std::string(1 << 20, '\0'), 3);
  bundle_format::RecordHeader hdr;
  std::memcpy(&hdr, frame.data(), sizeof hdr);
  hdr.raw_len = 4096;
  std::memcpy(frame.data(), &hdr, sizeof hdr);
  expectRejected(bundleFileHeader() + openRecord(1, "criu", "p.img") + frame, "does not declare");
  // Totals: size and ratio.
  StringSink out;
  BundleWriter w(out, {.level = 3, .threads = 2});
  ByteSink& s = w.openStream("criu", "zeros.img");
  for (int i = 0; i < 80; ++i) s.write(std::string(kBundleChunk, '\0'));
  w.closeStream();
  w.finish({});
  expectRejected(out.data, "decompression bomb", {.max_ratio = 100});
  expectRejected(out.data, "size limit", {.max_total_bytes = 10 << 20});
  TempDir ok;
  EXPECT_NO_THROW(readInto(out.data, ok.path()));  // the defaults accept real zero pages
}

// What importCheckpoint, image import and ferry-inspect bound a read by.
TEST(Bundle, FreeDiskBoundsTheLimitsAndSaysSo) {
  TempDir dir;
  BundleLimits bounded = boundedByFreeDisk({}, dir.path(), "hostT");
  EXPECT_LT(bounded.max_total_bytes, BundleLimits{}.max_total_bytes);  // this disk < 256 GiB free
  EXPECT_NE(bounded.max_total_reason.find("what hostT has free for it"), std::string::npos);
  EXPECT_NE(bounded.max_total_reason.find("less a 256 MiB margin"), std::string::npos);
  BundleLimits small = boundedByFreeDisk({.max_total_bytes = 1000}, dir.path(), "hostT");
  EXPECT_EQ(small.max_total_bytes, 1000u);
  EXPECT_TRUE(small.max_total_reason.empty());
  try {
    checkExpansion({.max_total_bytes = 10, .max_total_reason = "what hostT has free"}, 11, 11,
                   "bundle");
    ADD_FAILURE() << "11 bytes passed a limit of 10";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
    EXPECT_STREQ(e.what(),
                 "the bundle is larger than what hostT has free (10 bytes); free disk there and "
                 "try again");
  }
}

TEST(Bundle, ChangesListIsCheckedStrictly) {
  EXPECT_NO_THROW(checkChangesList(R"([{"mark":"A","path":"srv/new"},{"mark":"D","path":"bin/vi"}])"));
  for (const char* bad : {R"({"mark":"A"})", R"([{"mark":"X","path":"a"}])", R"([{"mark":"A","path":"/etc"}])",
                          R"([{"mark":"A","path":"a/../../b"}])", R"([{"mark":"A","path":"a//b"}])", R"([{"mark":"A"}])", "not json"}) {
    EXPECT_THROW(checkChangesList(bad), Error) << bad;
  }
  // And through the reader.
  StringSink out;
  BundleWriter w(out, {});
  w.openStream("changes", "rootfs-changes.json").write(R"([{"mark":"A","path":"../x"}])");
  w.closeStream();
  w.finish({});
  expectRejected(out.data, "bad path entry");
}

// The "pages" stream goes to the reader's caller, never to staging; a
// reader with nowhere to send it (an import, not a migration) refuses it.
TEST(Bundle, APagesStreamGoesToTheDivertAndOnlyWhereThereIsOne) {
  auto bundleWith = [](int pages_streams) {
    StringSink out;
    BundleWriter w(out, {.level = 1, .threads = 2});
    w.openStream("metadata", "checkpoint.json").write(R"({"format":1})");
    w.closeStream();
    for (int i = 0; i < pages_streams; ++i) {
      ByteSink& p = w.openStream("pages", "page-server");
      p.write(randomBytes(kBundleChunk + 4096, 2));
      p.write(std::string(kBundleChunk, '\0'));
      w.closeStream();
    }
    w.openStream("criu", "inventory.img").write("inv");
    w.closeStream();
    w.finish({});
    return out.data;
  };
  struct Taken : DivertedStream {
    std::string* data;
    int* finished;
    Taken(std::string* d, int* f) : data(d), finished(f) {}
    void write(std::string_view d) override { data->append(d); }
    void finish() override { ++*finished; }
  };
  std::string taken;
  int finished = 0, opened = 0;
  DivertPages divert = [&]() -> std::unique_ptr<DivertedStream> {
    ++opened;
    return std::make_unique<Taken>(&taken, &finished);
  };
  {
    TempDir t;
    StringSource src(bundleWith(1));
    readBundle(src, t.path(), {}, {}, divert);
    EXPECT_EQ(opened, 1);
    EXPECT_EQ(finished, 1);
    EXPECT_EQ(taken, randomBytes(kBundleChunk + 4096, 2) + std::string(kBundleChunk, '\0'));
    EXPECT_FALSE(pathExists(t.path() / "page-server"));
    EXPECT_EQ(readFile(t.path() / "criu" / "inventory.img"), "inv");
  }
  {
    TempDir t;
    StringSource src(bundleWith(1));
    try {
      readBundle(src, t.path(), {});
      ADD_FAILURE() << "a pages stream was read with nowhere to go";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find("only a migration's target can take"), std::string::npos)
          << e.what();
    }
  }
  {
    TempDir t;
    StringSource src(bundleWith(2));
    try {
      readBundle(src, t.path(), {}, {}, divert);
      ADD_FAILURE() << "two pages streams were read";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("a second pages stream"), std::string::npos) << e.what();
    }
  }
  {  // inspecting checks it and keeps nothing of it
    TempDir t;
    StringSource src(bundleWith(1));
    BundleReadResult r = verifyBundle(src, t.path(), {});
    EXPECT_FALSE(pathExists(t.path() / "page-server"));
    bool listed = false;
    for (const auto& e : r.entries) listed = listed || e.kind == "pages";
    EXPECT_TRUE(listed);
  }
}

TEST(Bundle, WriterRefusesNamesAReaderWouldRefuse) {
  StringSink out;
  BundleWriter w(out, {});
  EXPECT_THROW(w.openStream("criu", "../x"), Error);
  EXPECT_THROW(w.openStream("nope", "x"), Error);
}

}  // namespace ferry
