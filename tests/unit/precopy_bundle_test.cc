// Content-addressed pre-copy in the bundle: blocks sent ahead, references
// in the checkpoint, and a reader that rebuilds every byte exactly -- or
// refuses a reference to a block it was never sent.
#include <gtest/gtest.h>

#include <random>

#include "engine/bundle/blocks.h"
#include "engine/bundle/bundle.h"
#include "engine/bundle/bundle_format.h"
#include "common/error.h"
#include "common/fs.h"
#include "tests/support/bundle_bytes.h"
#include "tests/support/string_stream.h"

namespace ferry {
namespace {

using nlohmann::json;
using testing::bundleFileHeader;
using testing::randomBytes;
using testing::StringSink;
using testing::StringSource;

std::vector<std::string> cut(Chunking how, const std::string& data, size_t piece) {
  Chunker c(how);
  std::vector<std::string> blocks;
  auto emit = [&](std::string_view b) { blocks.emplace_back(b); };
  for (size_t i = 0; i < data.size(); i += piece)
    c.feed(std::string_view(data).substr(i, piece), emit);
  c.finish(emit);
  return blocks;
}

std::string joined(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& b : v) s += b;
  return s;
}

}  // namespace

TEST(Chunker, PagesAreFourKiBWhateverTheFeedSizes) {
  std::string data = randomBytes(10 * kPageBlock + 100, 1);
  for (size_t piece : {1u, 333u, 4096u, 1u << 20}) {
    auto blocks = cut(Chunking::kPages, data, piece);
    ASSERT_EQ(blocks.size(), 11u) << piece;
    for (size_t i = 0; i < 10; ++i) EXPECT_EQ(blocks[i].size(), kPageBlock);
    EXPECT_EQ(blocks[10].size(), 100u);
    EXPECT_EQ(joined(blocks), data);
  }
}

TEST(Chunker, ContentCutsDoNotDependOnFeedSizesAndStayInBounds) {
  std::string data = randomBytes(1 << 20, 2);
  auto reference = cut(Chunking::kContent, data, data.size());
  EXPECT_EQ(joined(reference), data);
  EXPECT_GT(reference.size(), 40u);  // about 8 KiB on average: ~128
  EXPECT_LT(reference.size(), 400u);
  for (size_t i = 0; i + 1 < reference.size(); ++i) {
    EXPECT_GE(reference[i].size(), kMinContentBlock);
    EXPECT_LE(reference[i].size(), kMaxContentBlock);
  }
  for (size_t piece : {1000u, 4096u, 65537u})
    EXPECT_EQ(cut(Chunking::kContent, data, piece), reference);
  // Zeros never match the cut condition: they are cut at the maximum.
  auto zeros = cut(Chunking::kContent, std::string(200000, '\0'), 5000);
  ASSERT_EQ(zeros.size(), 4u);
  EXPECT_EQ(zeros[0].size(), kMaxContentBlock);
}

TEST(Chunker, ContentCutsResynchroniseAfterAnInsertion) {
  std::string data = randomBytes(512 * 1024, 3);
  std::string shifted = data.substr(0, 100000) + "seventeen bytes!!" + data.substr(100000);
  auto a = cut(Chunking::kContent, data, 4096);
  auto b = cut(Chunking::kContent, shifted, 4096);
  std::set<std::string> before(a.begin(), a.end());
  size_t shared = 0;
  for (const auto& blk : b) shared += before.count(blk) ? blk.size() : 0;
  // Only the block(s) around the insertion differ.
  EXPECT_GT(shared, data.size() - 3 * kMaxContentBlock);
}

TEST(BlockStore, KeepsBlocksOnceAndCopiesRunsOut) {
  TempDir t;
  std::string a = randomBytes(4096, 4), b = randomBytes(4096, 5), c = randomBytes(3000, 6);
  {
    BlockStore store(t.path() / "blocks");
    store.add(a);
    store.add(b);
    store.add(a);  // again: not stored twice
    store.add(c);
    EXPECT_EQ(store.blocks(), 3u);
    EXPECT_EQ(store.bytes(), 4096u * 2 + 3000);
    std::string out;
    store.copyOut(
        {{hashBlock(b), 4096}, {hashBlock(c), 3000}, {hashBlock(a), 4096}, {hashBlock(b), 4096}},
        [&](std::string_view d) { out += d; });
    EXPECT_EQ(out, b + c + a + b);
    EXPECT_THROW(store.copyOut({{hashBlock("never sent"), 10}}, [](std::string_view) {}), Error);
    EXPECT_THROW(store.copyOut({{hashBlock(a), 100}}, [](std::string_view) {}),
                 Error);  // wrong length
  }
  EXPECT_FALSE(pathExists(t.path() / "blocks"));  // removed with the store
}

namespace {

// A "source": memory, a rootfs tar and a volume, some of which changes
// between the pre-copy and the checkpoint.
struct Source {
  std::string pages = randomBytes(64 * kPageBlock, 7);
  std::string rootfs = randomBytes(300000, 8);
  std::string volume = randomBytes(200000, 9);
};

void writeCheckpoint(BundleWriter& w, const Source& s) {
  w.openStream("metadata", "checkpoint.json").write(R"({"format":1})");
  w.closeStream();
  w.openStream("criu", "pages-1.img").write(s.pages);
  w.closeStream();
  w.openStream("criu", "core-1.img").write("core image");
  w.closeStream();
  w.openStream("rootfs", "rootfs.tar").write(s.rootfs);
  w.closeStream();
  w.openStream("volume", "data").write(s.volume);
  w.closeStream();
}

void precopy(BundleWriter& w, const Source& s) {
  w.openBlocks(Chunking::kPages).write(s.pages);
  w.closeBlocks();
  w.openBlocks(Chunking::kContent).write(s.rootfs);
  w.closeBlocks();
  w.openBlocks(Chunking::kContent).write(s.volume);
  w.closeBlocks();
}

}  // namespace

TEST(PrecopyBundle, RebuildsEveryByteFromBlocksAndReferences) {
  for (int level : {0, 3}) {
    Source before;
    StringSink out;
    BlockIndex known;
    BundleWriter w(out, {.level = level, .threads = 2, .known = &known});
    precopy(w, before);
    uint64_t precopied = w.stats().block_bytes;
    EXPECT_EQ(precopied, before.pages.size() + before.rootfs.size() + before.volume.size());
    // A second round of unchanged content sends nothing.
    w.openBlocks(Chunking::kPages).write(before.pages);
    EXPECT_EQ(w.closeBlocks().sent, 0u);

    // Then the container changed: two pages dirtied, bytes inserted into the
    // rootfs tar, the volume unchanged.
    Source after = before;
    after.pages[5 * kPageBlock + 7] ^= 1;
    after.pages[40 * kPageBlock] ^= 1;
    after.rootfs.insert(150000, "a grown file");
    writeCheckpoint(w, after);
    BundleWriteStats st = w.finish({});
    // Almost everything went as references.
    EXPECT_GT(st.ref_bytes, (after.pages.size() - 2 * kPageBlock) + after.volume.size());
    EXPECT_LT(st.raw_bytes - st.ref_bytes, 4 * kPageBlock + 3 * kMaxContentBlock);

    TempDir t;
    StringSource src(out.data);
    BundleReadResult r = readBundle(src, t.path(), {});
    EXPECT_EQ(readFile(t.path() / "criu/pages-1.img"), after.pages);
    EXPECT_EQ(readFile(t.path() / "criu/core-1.img"), "core image");
    EXPECT_EQ(readFile(t.path() / "rootfs.tar"), after.rootfs);
    EXPECT_EQ(readFile(t.path() / "volumes/data.tar"), after.volume);
    EXPECT_EQ(r.block_bytes, precopied);
    EXPECT_EQ(r.ref_bytes, st.ref_bytes);
    EXPECT_TRUE(pathExists(t.path() / ".precopy-blocks"));  // left for staging's removal
  }
}

TEST(PrecopyBundle, WithoutPrecopyNothingIsCut) {
  StringSink out;
  BlockIndex known;  // empty: a cold checkpoint
  BundleWriter w(out, {.level = 0, .threads = 1, .known = &known});
  Source s;
  writeCheckpoint(w, s);
  BundleWriteStats st = w.finish({});
  EXPECT_EQ(st.ref_bytes, 0u);
  EXPECT_EQ(st.block_bytes, 0u);
}

namespace {

std::string refsPayload(const std::vector<std::pair<uint32_t, BlockHash>>& refs) {
  std::string p;
  for (const auto& [len, h] : refs) {
    p.append(reinterpret_cast<const char*>(&len), 4);
    p.append(reinterpret_cast<const char*>(&h.lo), 8);
    p.append(reinterpret_cast<const char*>(&h.hi), 8);
  }
  return p;
}

std::string blocksPayload(const std::vector<std::string>& blocks) {
  std::string p;
  for (const auto& b : blocks) {
    uint32_t len = static_cast<uint32_t>(b.size());
    p.append(reinterpret_cast<const char*>(&len), 4);
    p += b;
  }
  return p;
}

void expectRejected(const std::string& bytes, const std::string& needle, BundleLimits limits = {}) {
  TempDir t;
  StringSource src(bytes);
  try {
    readBundle(src, t.path(), limits);
    ADD_FAILURE() << "accepted; expected: " << needle;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
  }
  EXPECT_FALSE(pathExists(t.path() / ".precopy-blocks"));
}

}  // namespace

TEST(PrecopyBundle, HostileRecordsAreRefused) {
  using namespace bundle_format;
  std::string open =
      buildRecord(kOpen, 1, json{{"kind", "criu"}, {"name", "pages-1.img"}}.dump(), 0);
  std::string block = randomBytes(4096, 10);
  std::string blocks = buildRecord(kBlocks, 0, blocksPayload({block}), 0);

  // A reference to a block never sent (a guess at another migration's data).
  expectRejected(bundleFileHeader() + blocks + open +
                     buildRecord(kRefs, 1, refsPayload({{4096, hashBlock("secret page")}}), 0),
                 "never sent");
  // A reference without any pre-copy at all.
  expectRejected(
      bundleFileHeader() + open + buildRecord(kRefs, 1, refsPayload({{4096, hashBlock(block)}}), 0),
      "never sent");
  // The right hash with another length.
  expectRejected(bundleFileHeader() + blocks + open +
                     buildRecord(kRefs, 1, refsPayload({{4095, hashBlock(block)}}), 0),
                 "never sent");
  // A references record that is not whole references.
  expectRejected(bundleFileHeader() + blocks + open + buildRecord(kRefs, 1, "123", 0), "bad size");
  // Blocks inside a stream; blocks with a length running past the record.
  expectRejected(bundleFileHeader() + open + blocks, "inside a stream");
  std::string bad = blocksPayload({block});
  bad.resize(bad.size() - 1);
  expectRejected(bundleFileHeader() + buildRecord(kBlocks, 0, bad, 0), "bad length");
  // A zero-length block.
  expectRejected(bundleFileHeader() + buildRecord(kBlocks, 0, std::string(4, '\0'), 0), "bad length");
  // References count as the bytes they stand for: a tiny bundle that
  // would expand past the limit is refused before it is written.
  std::vector<std::pair<uint32_t, BlockHash>> many(1000, {4096, hashBlock(block)});
  BundleLimits small;
  small.max_total_bytes = 1 << 20;
  expectRejected(bundleFileHeader() + blocks + open + buildRecord(kRefs, 1, refsPayload(many), 0),
                 "size limit", small);
  // Truncated after the blocks: no manifest.
  expectRejected(bundleFileHeader() + blocks, "truncated");
}

}  // namespace ferry
