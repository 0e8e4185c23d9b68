// What a checkpoint carries of a container's log.
#include <gtest/gtest.h>

#include "engine/engine.h"
#include "common/fs.h"
#include "tests/support/string_stream.h"

namespace ferry {

using testing::StringSink;

TEST(LogTail, AllOfASmallLogTheEndOfABigOneFromALinesStart) {
  TempDir t;
  fs::path log = t.path() / "ctr.log";
  StringSink none;
  writeLogTail(log, none);  // no log yet: nothing, no error
  EXPECT_TRUE(none.data.empty());
  writeFileAtomic(log, "one\ntwo\nthree\n");
  auto tail = [&](uint64_t max) {
    StringSink out;
    writeLogTail(log, out, max);
    return out.data;
  };
  // 14 bytes: a cut on a line's start keeps that line, one inside a line
  // starts at the next; a last line longer than the cap is not carried.
  EXPECT_EQ(tail(14), "one\ntwo\nthree\n");
  EXPECT_EQ(tail(10), "two\nthree\n");
  EXPECT_EQ(tail(9), "three\n");
  EXPECT_EQ(tail(6), "three\n");
  EXPECT_EQ(tail(5), "");
  // A last line still being written is left for the next one.
  writeFileAtomic(log, "one\ntwo\nthr");
  EXPECT_EQ(tail(1 << 20), "one\ntwo\n");
}

}  // namespace ferry
