// A container's log: read from an offset (`ferry logs -f`), and what a
// checkpoint carries of it.
#include "engine/container_log.h"

#include <gtest/gtest.h>

#include <fstream>

#include "common/fs.h"
#include "tests/support/string_stream.h"

namespace ferry {

using testing::StringSink;

namespace {

// One record as conmon writes it (k8s-file).
std::string rec(int n, const std::string& text, char tag = 'F') {
  return "2024-05-01T10:00:00." + std::to_string(100000000 + n) + "Z stdout " + tag + " " + text +
         "\n";
}
std::string counterLines(int from, int to) {
  std::string s;
  for (int i = from; i <= to; ++i) s += rec(i, "counter " + std::to_string(i));
  return s;
}
void append(const fs::path& p, const std::string& s) {
  std::ofstream(p, std::ios::app | std::ios::binary) << s;
}
std::vector<std::string> texts(const LogChunk& c) {
  std::vector<std::string> out;
  for (const auto& l : c.lines) out.push_back(l.text);
  return out;
}
std::vector<std::string> counters(int from, int to) {
  std::vector<std::string> out;
  for (int i = from; i <= to; ++i) out.push_back("counter " + std::to_string(i));
  return out;
}

class ContainerLogTest : public ::testing::Test {
 protected:
  TempDir t_;
  fs::path log_ = t_.path() / "ctr.log";
};

}  // namespace

TEST_F(ContainerLogTest, ReadsOnFromWhereTheLastReadEndedWholeLinesOnly) {
  writeFileAtomic(log_, counterLines(1, 2) + "2024-05-01T10:00:00.3Z stdout F coun");
  LogChunk a = readLog(log_, {});
  EXPECT_EQ(texts(a), counters(1, 2));  // the line half written is not returned
  EXPECT_EQ(a.next.offset, counterLines(1, 2).size());
  EXPECT_NE(a.next.mark, 0u);
  EXPECT_EQ(a.restart, LogRestart::kNone);
  EXPECT_FALSE(a.more);

  append(log_, "ter 3\n" + counterLines(4, 4));
  LogChunk b = readLog(log_, a.next);
  EXPECT_EQ(texts(b), counters(3, 4));
  EXPECT_EQ(b.restart, LogRestart::kNone);
  EXPECT_EQ(b.lines[0].stream, "stdout");

  LogChunk none = readLog(log_, b.next);  // nothing new: the same place
  EXPECT_TRUE(none.lines.empty());
  EXPECT_EQ(none.next, b.next);
}

TEST_F(ContainerLogTest, ALineInPiecesComesWholeOnceItsLastPieceIsThere) {
  writeFileAtomic(log_, counterLines(1, 1) + rec(2, "abc", 'P'));
  LogChunk a = readLog(log_, {});
  EXPECT_EQ(texts(a), counters(1, 1));  // "abc" goes on in a record not yet written
  append(log_, rec(3, "def", 'P') + rec(4, "ghi"));
  LogChunk b = readLog(log_, a.next);
  EXPECT_EQ(texts(b), std::vector<std::string>{"abcdefghi"});
  EXPECT_EQ(b.lines[0].time, "2024-05-01T10:00:00.100000002Z");  // its first piece's
}

// Output that does not end in a newline stays a P record: once the
// container has exited (final) it is the last line, not held back for good.
TEST_F(ContainerLogTest, TheLastPieceOfAnExitedContainersOutputIsItsLastLine) {
  writeFileAtomic(log_, counterLines(1, 1) + rec(2, "no newline", 'P'));
  LogChunk running = readLog(log_, {});
  EXPECT_EQ(texts(running), counters(1, 1));
  LogChunk exited = readLog(log_, running.next, kLogChunkBytes, /*final=*/true);
  EXPECT_EQ(texts(exited), std::vector<std::string>{"no newline"});
  EXPECT_EQ(exited.next.offset, (counterLines(1, 1) + rec(2, "no newline", 'P')).size());
  EXPECT_TRUE(readLog(log_, exited.next, kLogChunkBytes, true).lines.empty()) << "printed twice";
  EXPECT_EQ(readWholeLog(log_).back().text, "no newline");
}

// Some conmon versions end a line in pieces with a bare "<time> <stream> F".
TEST_F(ContainerLogTest, ABareFRecordEndsALineInPieces) {
  writeFileAtomic(log_, rec(1, "abc", 'P') + "2024-05-01T10:00:00.2Z stdout F\n" + counterLines(3, 3));
  EXPECT_EQ(texts(readLog(log_, {})), (std::vector<std::string>{"abc", "counter 3"}));
}

TEST_F(ContainerLogTest, AnOffsetPastTheEndOfATruncatedLogStartsAgainAndSaysSo) {
  writeFileAtomic(log_, counterLines(1, 10));
  LogChunk a = readLog(log_, {});
  writeFileAtomic(log_, counterLines(1, 3));  // truncated, then rewritten shorter
  LogChunk b = readLog(log_, a.next);
  EXPECT_EQ(b.restart, LogRestart::kFromStart);
  EXPECT_EQ(texts(b), counters(1, 3));

  fs::remove(log_);  // gone altogether: nothing, from the start
  LogChunk c = readLog(log_, b.next);
  EXPECT_TRUE(c.lines.empty());
  EXPECT_EQ(c.restart, LogRestart::kFromStart);
  EXPECT_EQ(c.next, LogPosition{});
}

TEST_F(ContainerLogTest, AnOffsetIntoADifferentLogOfTheSameLengthIsNotTrusted) {
  writeFileAtomic(log_, counterLines(1, 5));
  LogChunk a = readLog(log_, {});
  // Replaced (another checkpoint restored under the name): longer than the
  // offset, but the record that ends there is not the one read.
  writeFileAtomic(log_, counterLines(101, 108));
  LogChunk b = readLog(log_, a.next);
  EXPECT_EQ(b.restart, LogRestart::kFromStart);
  EXPECT_EQ(texts(b), counters(101, 108));
  // An offset inside a record, or a made-up mark, neither.
  EXPECT_EQ(readLog(log_, {a.next.offset - 3, a.next.mark}).restart, LogRestart::kFromStart);
  EXPECT_EQ(readLog(log_, {b.next.offset, 12345}).restart, LogRestart::kFromStart);
}

TEST_F(ContainerLogTest, ALogCutAtItsStartGoesOnAfterTheLastLineReadNeitherLostNorRepeated) {
  // A migration carries only the log's end: offsets shift on the new host.
  writeFileAtomic(log_, counterLines(1, 100));
  LogChunk a = readLog(log_, {});
  StringSink tail;
  writeLogTail(log_, tail, 1000);
  writeFileAtomic(log_, tail.data + counterLines(101, 103));
  LogChunk b = readLog(log_, a.next);
  EXPECT_EQ(b.restart, LogRestart::kAfterMark);
  EXPECT_EQ(texts(b), counters(101, 103));
  EXPECT_EQ(readLog(log_, b.next).restart, LogRestart::kNone);
}

TEST_F(ContainerLogTest, ReadsAtMostAboutTheCapAndSaysThereIsMore) {
  writeFileAtomic(log_, counterLines(1, 1000));
  std::vector<std::string> all;
  LogPosition at;
  int reads = 0;
  for (bool more = true; more; ++reads) {
    LogChunk c = readLog(log_, at, 4096);
    EXPECT_LE(c.next.offset - at.offset, 4096u + rec(1000, "counter 1000").size());
    for (auto& l : texts(c)) all.push_back(l);
    at = c.next;
    more = c.more;
  }
  EXPECT_EQ(all, counters(1, 1000));
  EXPECT_GT(reads, 10);
  EXPECT_EQ(at.offset, counterLines(1, 1000).size());
}

TEST_F(ContainerLogTest, ALineLongerThanTheCapComesInConmonsPieces) {
  writeFileAtomic(
      log_, rec(1, std::string(300, 'a'), 'P') + rec(2, std::string(300, 'b'), 'P') + rec(3, "c"));
  LogChunk a = readLog(log_, {}, 500);
  ASSERT_EQ(a.lines.size(), 1u);
  EXPECT_EQ(a.lines[0].text, std::string(300, 'a') + std::string(300, 'b'));
  LogChunk b = readLog(log_, a.next, 500);
  EXPECT_EQ(texts(b), std::vector<std::string>{"c"});
}

TEST_F(ContainerLogTest, ARecordThatIsNotConmonsIsSkipped) {
  writeFileAtomic(log_, counterLines(1, 1) + "garbage\n" + counterLines(2, 2));
  LogChunk a = readLog(log_, {});
  EXPECT_EQ(texts(a), counters(1, 2));
  EXPECT_EQ(a.next.offset, fs::file_size(log_));
}

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
