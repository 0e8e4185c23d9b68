// What stays of CRIU's logs on a host (engine/runtime/log_retention.h), on
// real directories.
#include "engine/runtime/log_retention.h"

#include <gtest/gtest.h>

#include <set>

#include "common/fs.h"

namespace ferry {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::system_clock;

class LogRetentionTest : public ::testing::Test {
 protected:
  // NAME-KIND-MILLIS, `age` before now, with `bytes` of log in it.
  fs::path make(const std::string& group, std::chrono::milliseconds age, bool done,
                size_t bytes = 100) {
    int64_t ms = std::chrono::duration_cast<milliseconds>((now_ - age).time_since_epoch()).count();
    fs::path d = dir_.path() / (group + "-" + std::to_string(ms));
    fs::create_directories(d);
    writeFileAtomic(d / "dump.log", std::string(bytes, 'x'));
    if (done) markLogDone(d);
    return d;
  }
  std::set<std::string> left() {
    std::set<std::string> out;
    for (const auto& e : fs::directory_iterator(dir_.path())) out.insert(e.path().filename().string());
    return out;
  }
  static std::string name(const fs::path& p) { return p.filename().string(); }

  TempDir dir_;
  Clock::time_point now_ = Clock::now();
};

TEST_F(LogRetentionTest, TheNewestFewSuccessfulOfAKindStayAndEveryFailureStays) {
  std::vector<fs::path> done, failed;
  for (int i = 0; i < 6; ++i) done.push_back(make("web-checkpoint", std::chrono::hours(2 + i), true));
  for (int i = 0; i < 4; ++i) failed.push_back(make("web-checkpoint", std::chrono::hours(3 + i) + std::chrono::minutes(30), false));
  fs::path other = make("web-restore", std::chrono::hours(9), true);
  LogRetention r;  // 3 per kind
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_), 3u);
  std::set<std::string> want = {name(done[0]), name(done[1]), name(done[2]), name(other)};
  for (const auto& f : failed) want.insert(name(f));
  EXPECT_EQ(left(), want);
}

// As Engine::logDir always kept: 3 of a kind, the one starting now
// included (a ping-pong's disk use must not grow once warmed up).
TEST_F(LogRetentionTest, TheDirectoryStartingNowIsOneOfTheThreeOfItsKind) {
  std::vector<fs::path> done;
  for (int i = 0; i < 4; ++i) done.push_back(make("web-checkpoint", std::chrono::hours(1 + i), true));
  fs::path keep = dir_.path() / "web-checkpoint-1";
  fs::create_directories(keep);
  EXPECT_EQ(pruneLogs(dir_.path(), LogRetention{}, now_, keep), 2u);
  EXPECT_EQ(left(), (std::set<std::string>{name(keep), name(done[0]), name(done[1])}));
}

TEST_F(LogRetentionTest, FailuresBeyondTheirCountGoOldestFirstButNeverOneThatMayStillRun) {
  LogRetention r;
  r.keep_failed = 2;
  fs::path running1 = make("a-restore", std::chrono::minutes(1), false);
  fs::path running2 = make("b-restore", std::chrono::minutes(2), false);
  fs::path old1 = make("c-restore", std::chrono::hours(2), false);
  fs::path old2 = make("d-restore", std::chrono::hours(3), false);
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_), 2u);
  EXPECT_EQ(left(), (std::set<std::string>{name(running1), name(running2)}));
}

// A container migrated away and removed leaves its logs behind: they count
// toward the host's total like any other.
TEST_F(LogRetentionTest, LogsOfManyContainersAreCappedInAll) {
  LogRetention r;
  r.keep_done = 5;
  std::vector<fs::path> d;
  for (int i = 0; i < 12; ++i) d.push_back(make("c" + std::to_string(i) + "-checkpoint", std::chrono::hours(1) + milliseconds(i), true));
  fs::path keep = dir_.path() / "c99-checkpoint-1";  // the one starting now
  fs::create_directories(keep);
  // The new one counts: it and the newest 4 of the others stay.
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_, keep), 8u);
  std::set<std::string> want = {name(keep)};
  for (int i = 0; i < 4; ++i) want.insert(name(d[static_cast<size_t>(i)]));
  EXPECT_EQ(left(), want);
}

TEST_F(LogRetentionTest, TheSizeCapTakesTheOldestSuccessfulThenTheOldestFailures) {
  LogRetention r;
  r.max_bytes = 1500;
  fs::path new_done = make("a-checkpoint", std::chrono::hours(2), true, 1000);
  fs::path old_done = make("b-checkpoint", std::chrono::hours(5), true, 1000);
  fs::path new_failed = make("c-restore", std::chrono::hours(3), false, 1000);
  fs::path old_failed = make("d-restore", std::chrono::hours(4), false, 1000);
  // 4000 bytes: both successes go, oldest first (3000, 2000), then the
  // oldest failure (1000): a failure's log is the one an error points at.
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_), 3u);
  EXPECT_EQ(left(), (std::set<std::string>{name(new_failed)}));
  r.max_bytes = 2500;
  fs::path again = make("a-checkpoint", std::chrono::hours(1), true, 1000);
  fs::path older = make("b-checkpoint", std::chrono::hours(2), true, 1000);
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_), 1u);  // 3000: the older success goes
  EXPECT_EQ(left(), (std::set<std::string>{name(new_failed), name(again)}));
}

TEST_F(LogRetentionTest, WhatIsNotAnOperationsLogIsLeftAlone) {
  LogRetention r;
  r.keep_done = 1;
  r.keep_per_kind = 1;
  fs::create_directories(dir_.path() / "notes");
  fs::create_directories(dir_.path() / "web-checkpoint-12ab");
  writeFileAtomic(dir_.path() / "web-checkpoint-123", "a file, not a directory");
  make("web-checkpoint", std::chrono::hours(1), true);
  make("web-checkpoint", std::chrono::hours(2), true);
  EXPECT_EQ(pruneLogs(dir_.path(), r, now_), 1u);
  EXPECT_EQ(left().count("notes"), 1u);
  EXPECT_EQ(left().count("web-checkpoint-12ab"), 1u);
  EXPECT_EQ(left().count("web-checkpoint-123"), 1u);
  EXPECT_EQ(pruneLogs(dir_.path() / "missing", r, now_), 0u);
}

}  // namespace
}  // namespace ferry
