#include "coordinator/state_store.h"

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"

namespace ferry::coord {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::filesystem::path file() const { return dir_.path() / "state.db"; }
};

TEST_F(StateStoreTest, HostsPersistAndSilentOnesAreMarkedDownOnce) {
  {
    StateStore s(file());
    s.upsertHost({"hostA", "tcp://127.0.0.2:7001", R"({"arch":"x86_64"})", true, false, 1000});
    s.upsertHost({"hostB", "tcp://127.0.0.3:7001", "{}", true, false, 5000});
    s.setCordoned("hostB", true);
  }
  StateStore s(file());  // a restarted coordinator
  ASSERT_EQ(s.hosts().size(), 2u);
  EXPECT_EQ(s.host("hostA")->data_endpoint, "tcp://127.0.0.2:7001");
  EXPECT_TRUE(s.host("hostB")->cordoned);
  // A heartbeat does not uncordon.
  s.upsertHost({"hostB", "tcp://127.0.0.3:7001", "{}", true, false, 6000});
  EXPECT_TRUE(s.host("hostB")->cordoned);
  EXPECT_EQ(s.markDownSilentSince(3000), std::vector<std::string>{"hostA"});
  EXPECT_TRUE(s.markDownSilentSince(3000).empty()) << "reported down twice";
  EXPECT_FALSE(s.host("hostA")->up);
  EXPECT_THROW(s.setCordoned("nohost", true), Error);
}

TEST_F(StateStoreTest, AHeartbeatReplacesItsHostsContainers) {
  StateStore s(file());
  s.replaceContainers("hostA", {{"web", "", "counter", "running", 100}, {"db", "", "pg", "running", 200}});
  s.replaceContainers("hostB", {{"cache", "", "redis", "running", 50}});
  s.replaceContainers("hostA", {{"web", "", "counter", "running", 150}});
  EXPECT_EQ(s.containers("hostA").size(), 1u);
  EXPECT_EQ(s.container("hostA", "web")->memory_bytes, 150u);
  EXPECT_FALSE(s.container("hostA", "db"));
  // Mid-migration both hosts report a copy; each host's list stays its own.
  s.replaceContainers("hostB", {{"cache", "", "redis", "running", 50}, {"web", "", "counter", "running", 1}});
  ASSERT_EQ(s.containersNamed("web").size(), 2u);
  EXPECT_EQ(s.containersNamed("web")[1].host, "hostB");
  s.replaceContainers("hostA", {});
  ASSERT_EQ(s.containersNamed("web").size(), 1u);
  EXPECT_EQ(s.containersNamed("web")[0].host, "hostB");
  EXPECT_EQ(s.containers().size(), 2u);
}

TEST_F(StateStoreTest, ImagesAndCleanupsArePerHost) {
  StateStore s(file());
  s.replaceImages("hostA", {{"counter", "aa"}, {"web", "bb"}});
  s.replaceImages("hostB", {{"counter", "aa"}});
  s.replaceImages("hostA", {{"web", "bb"}});
  ASSERT_EQ(s.images("hostA").size(), 1u);
  EXPECT_EQ(s.images("hostA")[0].id, "bb");
  EXPECT_EQ(s.images("hostB").size(), 1u);
  EXPECT_EQ(s.load("hostA").memory_total_bytes, 0u) << "never reported";
  s.setLoad("hostA", {37.5, 1000, 4000, 3000});
  EXPECT_DOUBLE_EQ(s.load("hostA").cpu_percent, 37.5);
  EXPECT_EQ(s.load("hostA").memory_used_bytes, 1000u);
  EXPECT_EQ(s.load("hostA").memory_total_bytes, 4000u);
  EXPECT_EQ(s.load("hostA").memory_capacity_bytes, 3000u);
  int64_t c = s.addCleanup({0, "hostB", "discard", "web", 7}, 100);
  s.addCleanup({0, "hostA", "resume", "web", 7}, 100);
  ASSERT_EQ(s.cleanups("hostB").size(), 1u);
  EXPECT_EQ(s.cleanups("hostB")[0].action, "discard");
  EXPECT_EQ(s.cleanups("hostB")[0].migration, 7);
  EXPECT_TRUE(s.hasCleanupFor("web"));
  EXPECT_TRUE(s.hasCleanup(7, "discard"));
  EXPECT_FALSE(s.hasCleanup(7, "resume-after-discard"));
  // "" lists every host's, with when each was owed.
  std::vector<CleanupRow> all = s.cleanups("");
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(all[0].host, "hostB");
  EXPECT_EQ(all[1].host, "hostA");
  EXPECT_EQ(all[1].created_ms, 100);
  s.removeCleanup(c);
  EXPECT_TRUE(s.cleanups("hostB").empty());
  EXPECT_EQ(s.cleanups("hostA").size(), 1u);
}

TEST_F(StateStoreTest, MigrationsMoveForwardOrRollBackAndSurviveARestart) {
  int64_t id;
  {
    StateStore s(file());
    id = s.beginMigration("web", "hostA", "hostB", 10);
    s.advance(id, Phase::kPrepared, 11);
    s.advance(id, Phase::kTransferring, 12);
    // One at a time per container.
    try {
      s.beginMigration("web", "hostA", "hostC", 13);
      FAIL() << "a second migration of web began";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
      EXPECT_NE(std::string(e.what()).find("already being migrated"), std::string::npos);
    }
    // Skipping a phase or going back is a bug in the caller.
    EXPECT_THROW(s.advance(id, Phase::kCommitted, 14), Error);
    EXPECT_THROW(s.advance(id, Phase::kPlanned, 14), Error);
  }
  StateStore s(file());  // coordinator killed mid-migration and restarted
  std::vector<MigrationRow> open = s.unfinishedMigrations();
  ASSERT_EQ(open.size(), 1u);
  EXPECT_EQ(open[0].phase, Phase::kTransferring);
  EXPECT_EQ(open[0].container, "web");
  s.advance(id, Phase::kRolledBack, 20, "coordinator restarted mid-transfer");
  EXPECT_TRUE(s.unfinishedMigrations().empty());
  EXPECT_THROW(s.advance(id, Phase::kRolledBack, 21), Error) << "a finished migration moved";
  EXPECT_EQ(s.migration(id)->error, "coordinator restarted mid-transfer");
  // Once finished, the container may move again.
  int64_t again = s.beginMigration("web", "hostA", "hostB", 30);
  for (Phase p : {Phase::kPrepared, Phase::kTransferring, Phase::kRestored}) s.advance(again, p, 31);
  s.advance(again, Phase::kCommitted, 32, "", R"({"downtime_ms":120})");
  std::vector<MigrationRow> h = s.history();
  ASSERT_EQ(h.size(), 2u);
  EXPECT_EQ(h[0].phase, Phase::kCommitted);
  EXPECT_EQ(h[0].figures_json, R"({"downtime_ms":120})");
  EXPECT_EQ(h[1].phase, Phase::kRolledBack);
}

TEST_F(StateStoreTest, EventsNewestFirst) {
  StateStore s(file());
  s.addEvent(1, "host", "hostA", "registered");
  s.addEvent(2, "host", "hostA", "down: no heartbeat for 5 s");
  auto e = s.events(10);
  ASSERT_EQ(e.size(), 2u);
  EXPECT_EQ(e[0].message, "down: no heartbeat for 5 s");
}

TEST_F(StateStoreTest, PhaseNamesRoundTrip) {
  for (Phase p : {Phase::kPlanned, Phase::kPrepared, Phase::kTransferring, Phase::kRestored,
                  Phase::kCommitted, Phase::kRolledBack}) {
    EXPECT_EQ(phaseFromName(phaseName(p)), p);
  }
  EXPECT_FALSE(phaseFromName("bogus"));
}

TEST_F(StateStoreTest, DrainsSurviveARestartOnePerHostAndLastMovesAreKept) {
  int64_t d;
  {
    StateStore s(file());
    d = s.beginDrain({0, "hostA", 2, 5000}, 100);
    EXPECT_THROW(s.beginDrain({0, "hostA", 1, 0}, 200), Error);  // one at a time
    s.beginDrain({0, "hostB", 1, 0}, 200);
    int64_t m = s.beginMigration("web", "hostA", "hostB", 1000);
    for (Phase p : {Phase::kPrepared, Phase::kTransferring, Phase::kRestored, Phase::kCommitted})
      s.advance(m, p, 2000);
    int64_t r = s.beginMigration("db", "hostA", "hostB", 1000);
    s.advance(r, Phase::kRolledBack, 3000, "failed");
  }
  StateStore s(file());  // a restarted coordinator
  auto active = s.activeDrains();
  ASSERT_EQ(active.size(), 2u);
  EXPECT_EQ(active[0].host, "hostA");
  EXPECT_EQ(active[0].parallel, 2);
  EXPECT_EQ(active[0].deadline_ms, 5000);
  s.endDrain(d);
  ASSERT_EQ(s.activeDrains().size(), 1u);
  s.beginDrain({0, "hostA", 1, 0}, 300);  // ended: a new one may start
  auto moves = s.lastMoves();
  // Ended migrations count, committed or rolled back (a failed try cools
  // down too); one still under way does not.
  s.beginMigration("api", "hostA", "hostB", 4000);
  ASSERT_EQ(moves.size(), 2u);
  EXPECT_EQ(moves["web"], 2000);
  EXPECT_EQ(moves["db"], 3000);
  EXPECT_EQ(s.lastMoves().count("api"), 0u);
}

TEST_F(StateStoreTest, AVersion2DatabaseIsUpgraded) {
  {
    Database db(file());
    db.exec("CREATE TABLE host_load (host TEXT PRIMARY KEY, cpu_permille INTEGER NOT NULL, "
            "memory_used INTEGER NOT NULL, memory_total INTEGER NOT NULL)");
    db.exec("INSERT INTO host_load VALUES ('hostA', 1, 2, 3)");
    db.exec("PRAGMA user_version=2");
  }
  StateStore s(file());
  s.setLoad("hostA", {1, 2, 3, 4});
  EXPECT_EQ(s.load("hostA").memory_capacity_bytes, 4u);
}

TEST_F(StateStoreTest, ADatabaseFromANewerFerryIsRefused) {
  { StateStore s(file()); }
  {
    Database db(file());
    db.exec("PRAGMA user_version=99");
  }
  try {
    StateStore s(file());
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
  }
}

}  // namespace
}  // namespace ferry::coord
