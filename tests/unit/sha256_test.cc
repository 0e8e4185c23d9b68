#include "common/sha256.h"

#include <gtest/gtest.h>

#include <string>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {
namespace {

// Known answers from FIPS 180-4's examples (NIST CSRC "SHA256.pdf" and
// "SHA2_Additional.pdf").
TEST(Sha256, EmptyString) {
  EXPECT_EQ(sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Sha256, Abc) {
  EXPECT_EQ(sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, TwoBlockMessage448Bits) {
  EXPECT_EQ(sha256Hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(Sha256, Message896Bits) {
  EXPECT_EQ(sha256Hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                      "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu"),
            "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
}

TEST(Sha256, OneMillionAs) {
  EXPECT_EQ(sha256Hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

// Lengths around the padding boundaries: 55 bytes is the longest message whose
// length fits in its last block, 56 the shortest that needs an extra block.
// Expected values from coreutils sha256sum.
TEST(Sha256, PaddingBoundaries) {
  const std::pair<size_t, const char*> cases[] = {
      {55, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318"},
      {56, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a"},
      {63, "7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34"},
      {64, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb"},
      {65, "635361c48bb9eab14198e76ea8ab7f1a41685d6ad62aa9146d301d4f17eb0ae0"},
      {119, "31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb"},
      {120, "2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c"},
  };
  for (const auto& [n, want] : cases) EXPECT_EQ(sha256Hex(std::string(n, 'a')), want) << n;
}

// Feeding a message in pieces of every size must give the one-shot digest:
// this exercises the partial-block buffering in update().
TEST(Sha256, IncrementalUpdatesMatchOneShot) {
  std::string msg;
  for (int i = 0; i < 300; ++i) msg += static_cast<char>(i * 7 + 3);
  const std::string want = sha256Hex(msg);
  for (size_t piece = 1; piece <= 130; ++piece) {
    Sha256 h;
    for (size_t off = 0; off < msg.size(); off += piece) {
      h.update(std::string_view(msg).substr(off, piece));
    }
    EXPECT_EQ(h.hexDigest(), want) << "piece size " << piece;
  }
}

TEST(Sha256, HexDigestIsStableAfterFinalizing) {
  Sha256 h;
  h.update("abc");
  std::string first = h.hexDigest();
  EXPECT_EQ(h.hexDigest(), first);
}

TEST(Sha256DeathTest, UpdateAfterFinalizingAborts) {
  EXPECT_DEATH(
      {
        Sha256 h;
        h.hexDigest();
        h.update("x");
      },
      "after hexDigest");
}

TEST(Sha256, FileDigestMatchesContent) {
  TempDir dir;
  std::string content(200000, '\0');
  for (size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i % 251);
  writeFileAtomic(dir.path() / "blob", content);
  EXPECT_EQ(sha256File(dir.path() / "blob"), sha256Hex(content));
  writeFileAtomic(dir.path() / "abc", "abc");
  EXPECT_EQ(sha256File(dir.path() / "abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256, MissingFileThrowsInvalidInputNamingIt) {
  TempDir dir;
  try {
    sha256File(dir.path() / "absent");
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_EQ(e.errnum(), ENOENT);
    EXPECT_NE(std::string(e.what()).find("absent"), std::string::npos) << e.what();
  }
}

TEST(Sha256, ReadingADirectoryThrows) {
  TempDir dir;
  EXPECT_THROW(sha256File(dir.path()), Error);
}

}  // namespace
}  // namespace ferry
