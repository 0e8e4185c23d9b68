// The ranges of host ids --userns=auto hands out, and what a checkpoint may
// carry.
#include "engine/spec/user_namespace.h"

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"

namespace ferry {
namespace {

TEST(UserNamespace, ModesAreAutoByDefaultOrHost) {
  EXPECT_EQ(parseUsernsMode(""), "auto");
  EXPECT_EQ(parseUsernsMode("auto"), "auto");
  EXPECT_EQ(parseUsernsMode("host"), "host");
  try {
    parseUsernsMode("keep-id");
    ADD_FAILURE() << "keep-id accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("expected auto"), std::string::npos) << e.what();
  }
}

TEST(UserNamespace, RangesOverlapWhenTheyShareAnId) {
  UsernsRange a{1u << 20, 65536}, b{(1u << 20) + 65536, 65536};
  EXPECT_FALSE(overlaps(a, b));
  EXPECT_FALSE(overlaps(b, a));
  EXPECT_TRUE(overlaps(a, {(1u << 20) + 65535, 1}));
  EXPECT_TRUE(overlaps(a, a));
  EXPECT_FALSE(overlaps(a, {}));  // no user namespace overlaps nothing
}

TEST(UserNamespace, APickedRangeIsAlignedFreeAndDependsOnTheRandomNumber) {
  std::set<uint32_t> seen;
  std::vector<UsernsRange> used;
  for (uint64_t r : {0ull, 1ull, 77ull, 123456789ull, ~0ull}) {
    UsernsRange got = pickIdRange(used, r);
    EXPECT_EQ(got.size, kUsernsSize);
    EXPECT_GE(got.host, kUsernsFirst);
    EXPECT_EQ(got.host % kUsernsSize, 0u);
    EXPECT_LE(uint64_t{got.host} + got.size, uint64_t{1} << 32) << got.host;
    EXPECT_NO_THROW(validateIdRange(got));
    for (const auto& u : used) EXPECT_FALSE(overlaps(got, u));
    seen.insert(got.host);
    used.push_back(got);
  }
  EXPECT_EQ(seen.size(), 5u);
  // The slot a random number names, taken: the next free one.
  UsernsRange first = pickIdRange({}, 5);
  UsernsRange next = pickIdRange({first}, 5);
  EXPECT_EQ(next.host, first.host + kUsernsSize);
}

TEST(UserNamespace, NoFreeRangeIsAnErrorSayingWhatToDo) {
  UsernsRange everything{kUsernsFirst, ~0u - kUsernsFirst};
  try {
    pickIdRange({everything}, 3);
    ADD_FAILURE() << "a range was picked from none";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("--userns=host"), std::string::npos) << e.what();
  }
}

TEST(UserNamespace, OnlyRangesFerryHandsOutAreValid) {
  EXPECT_NO_THROW(validateIdRange({}));
  EXPECT_NO_THROW(validateIdRange({kUsernsFirst, kUsernsSize}));
  for (UsernsRange bad : {UsernsRange{0, kUsernsSize},                        // the host's own users
                      UsernsRange{kUsernsFirst + 1, kUsernsSize},         // unaligned
                      UsernsRange{kUsernsFirst, 1},                       // another size
                      UsernsRange{kUsernsFirst, 0xFFFF0000u},             // most of the host
                      UsernsRange{0xFFFF0000u, kUsernsSize},              // up to id 2^32-1
                      UsernsRange{kUsernsFirst, 0}}) {
    EXPECT_THROW(validateIdRange(bad), Error) << bad.host << "+" << bad.size;
  }
  EXPECT_EQ(describe({kUsernsFirst, kUsernsSize}), "host ids 1048576-1114111");
}

}  // namespace
}  // namespace ferry
