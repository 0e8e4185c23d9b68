#include "coordinator/state_store.h"

#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>

#include "common/error.h"
#include "common/fs.h"

namespace ferry::coord {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  TempDir dir_;
  std::filesystem::path file() const { return dir_.path() / "state.db"; }
};

TEST_F(StateStoreTest, HostsAndTheirCordonPersist) {
  {
    StateStore s(file());
    s.upsertHost({"hostA", "tcp://127.0.0.2:7001", R"({"arch":"x86_64"})", true, false, 1000});
    s.upsertHost({"hostB", "tcp://127.0.0.3:7001", "{}", true, false, 5000});
    s.setCordoned("hostB", true);
  }
  StateStore s(file());  // a restarted coordinator
  ASSERT_EQ(s.hosts().size(), 2u);
  EXPECT_EQ(s.host("hostA")->data_endpoint, "tcp://127.0.0.2:7001");
  EXPECT_EQ(s.host("hostA")->host_info_json, R"({"arch":"x86_64"})");
  EXPECT_FALSE(s.host("hostA")->cordoned);
  EXPECT_TRUE(s.host("hostB")->cordoned);
  // A hello again does not uncordon.
  s.upsertHost({"hostB", "tcp://127.0.0.3:7001", "{}", true, false, 6000});
  EXPECT_TRUE(s.host("hostB")->cordoned);
  EXPECT_FALSE(s.host("nohost"));
  try {
    s.setCordoned("nohost", true);
    FAIL() << "cordoned a host nobody registered";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_NE(std::string(e.what()).find("no host 'nohost'"), std::string::npos) << e.what();
  }
}

// The database holds the cluster's state: no local user but root reads it.
mode_t modeOf(const std::filesystem::path& p) {
  struct stat st;
  EXPECT_EQ(::lstat(p.c_str(), &st), 0) << p << " missing";
  return st.st_mode & 07777;
}

TEST_F(StateStoreTest, TheDatabaseAndItsWalAndShmAre0600) {
  for (bool existing : {false, true}) {
    SCOPED_TRACE(existing ? "a database an older ferry made 0644" : "a new database");
    std::filesystem::remove_all(dir_.path() / "x");
    std::filesystem::create_directory(dir_.path() / "x");
    std::filesystem::path db = dir_.path() / "x" / "state.db";
    if (existing) writeFileAtomic(db, "", 0644);  // an empty file is an empty database
    StateStore s(db);
    s.upsertHost({"hostA", "tcp://127.0.0.2:7001", "{}", true, false, 1000});
    s.replaceContainers("hostA", {{"web", "", "counter", "running", 100}});
    EXPECT_EQ(modeOf(db), 0600u);
    EXPECT_EQ(modeOf(db.string() + "-wal"), 0600u);
    EXPECT_EQ(modeOf(db.string() + "-shm"), 0600u);
  }
}

TEST_F(StateStoreTest, ASymlinkForTheDatabaseIsRefused) {
  writeFileAtomic(dir_.path() / "elsewhere", "", 0644);
  ASSERT_EQ(::symlink((dir_.path() / "elsewhere").c_str(), file().c_str()), 0);
  EXPECT_THROW(StateStore s(file()), Error);
  EXPECT_EQ(modeOf(dir_.path() / "elsewhere"), 0644u) << "chmod went through the link";
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

TEST_F(StateStoreTest, AContainersAddressMacAndPortsPersist) {
  {
    StateStore s(file());
    ContainerRow web{"web", "", "counter", "running", 100};
    web.ip = "10.66.0.5";
    web.mac = "02:66:0a:42:00:05";
    web.ports = {"8080:80/tcp", "53:53/udp"};
    s.replaceContainers("hostA", {web, {"batch", "", "counter", "running", 1}});
  }
  StateStore s(file());
  std::optional<ContainerRow> web = s.container("hostA", "web");
  ASSERT_TRUE(web);
  EXPECT_EQ(web->ip, "10.66.0.5");
  EXPECT_EQ(web->mac, "02:66:0a:42:00:05");
  EXPECT_EQ(web->ports, (std::vector<std::string>{"8080:80/tcp", "53:53/udp"}));
  EXPECT_EQ(s.container("hostA", "batch")->ip, "");
  EXPECT_TRUE(s.container("hostA", "batch")->ports.empty());
}

TEST_F(StateStoreTest, ImagesAndCleanupsArePerHost) {
  StateStore s(file());
  s.replaceImages("hostA", {{"counter", "aa"}, {"web", "bb"}});
  s.replaceImages("hostB", {{"counter", "aa"}});
  s.replaceImages("hostA", {{"web", "bb"}});
  ASSERT_EQ(s.images("hostA").size(), 1u);
  EXPECT_EQ(s.images("hostA")[0].id, "bb");
  EXPECT_EQ(s.images("hostB").size(), 1u);
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

// A container lost in a migration (post-copy whose source died) ends it:
// nothing moves it on, and a container of that name may migrate again.
TEST_F(StateStoreTest, ALostMigrationIsFinished) {
  StateStore s(file());
  int64_t id = s.beginMigration("web", "hostA", "hostB", 10);
  s.advance(id, Phase::kPrepared, 11);
  s.advance(id, Phase::kTransferring, 12);
  s.advance(id, Phase::kLost, 13, "web is lost: hostA died");
  EXPECT_EQ(s.migration(id)->phase, Phase::kLost);
  EXPECT_EQ(phaseName(s.migration(id)->phase), "lost");
  EXPECT_TRUE(s.unfinishedMigrations().empty());
  EXPECT_THROW(s.advance(id, Phase::kRolledBack, 14), Error);
  EXPECT_NO_THROW(s.beginMigration("web", "hostC", "hostB", 15));
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

// The schemas older coordinators wrote, as they wrote them: the upgrade
// must keep every durable fact in them and drop only host_load, the cache of
// heartbeats that liveness and load no longer use (they live in memory).
const char* kTablesOfVersions2And3 = R"(
CREATE TABLE hosts (
  name TEXT PRIMARY KEY, data_endpoint TEXT NOT NULL, host_info TEXT NOT NULL,
  up INTEGER NOT NULL, cordoned INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);
CREATE TABLE containers (
  name TEXT NOT NULL, host TEXT NOT NULL, image TEXT NOT NULL, status TEXT NOT NULL,
  memory_bytes INTEGER NOT NULL, PRIMARY KEY (host, name));
CREATE TABLE images (
  host TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (host, name));
CREATE TABLE cleanups (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, action TEXT NOT NULL,
  container TEXT NOT NULL, migration INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE migrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, container TEXT NOT NULL, source TEXT NOT NULL,
  target TEXT NOT NULL, phase TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
  figures TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX one_unfinished_migration_per_container ON migrations(container)
  WHERE phase NOT IN ('committed', 'rolled-back');
CREATE TABLE events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  subject TEXT NOT NULL, message TEXT NOT NULL);
)";
const char* kVersion2 = R"(
CREATE TABLE host_load (
  host TEXT PRIMARY KEY, cpu_permille INTEGER NOT NULL, memory_used INTEGER NOT NULL,
  memory_total INTEGER NOT NULL);
INSERT INTO host_load VALUES ('hostA', 375, 1000, 4000);
PRAGMA user_version=2;
)";
const char* kVersion3 = R"(
CREATE TABLE host_load (
  host TEXT PRIMARY KEY, cpu_permille INTEGER NOT NULL, memory_used INTEGER NOT NULL,
  memory_total INTEGER NOT NULL, memory_capacity INTEGER NOT NULL);
INSERT INTO host_load VALUES ('hostA', 375, 1000, 4000, 3000);
CREATE TABLE drains (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, parallel INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL, active INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX one_active_drain_per_host ON drains(host) WHERE active = 1;
INSERT INTO drains (host, parallel, deadline_ms, active, created_ms) VALUES ('hostA', 2, 9000, 1, 50);
PRAGMA user_version=3;
)";
// What every old database holds besides: a cordoned host, containers,
// images, a committed and an unfinished migration, a cleanup owed, events.
const char* kOldRows = R"(
INSERT INTO hosts VALUES ('hostA', 'tcp://127.0.0.2:7001', '{"arch":"x86_64"}', 1, 1, 1000);
INSERT INTO hosts VALUES ('hostB', 'tcp://127.0.0.3:7001', '{}', 0, 0, 900);
INSERT INTO containers VALUES ('web', 'hostA', 'counter', 'running', 4096);
INSERT INTO images VALUES ('hostA', 'counter', 'aa11');
INSERT INTO migrations (container, source, target, phase, figures, created_ms, updated_ms)
  VALUES ('db', 'hostB', 'hostA', 'committed', '{"downtime_ms":120}', 10, 20);
INSERT INTO migrations (container, source, target, phase, created_ms, updated_ms)
  VALUES ('web', 'hostA', 'hostB', 'transferring', 30, 40);
INSERT INTO cleanups (host, action, container, migration, created_ms)
  VALUES ('hostB', 'discard', 'web', 2, 41);
INSERT INTO events (time_ms, kind, subject, message) VALUES (5, 'host', 'hostA', 'registered');
)";

bool hasTable(const std::filesystem::path& file, const std::string& table) {
  Database db(file);
  Statement s = db.prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?1");
  s.bind(1, table);
  return s.step();
}

int64_t userVersion(const std::filesystem::path& file) {
  Database db(file);
  Statement s = db.prepare("PRAGMA user_version");
  s.step();
  return s.integer(0);
}

class OldDatabase : public StateStoreTest, public ::testing::WithParamInterface<int> {};

TEST_P(OldDatabase, IsUpgradedWithoutHostLoadKeepingEverythingElse) {
  {
    Database db(file());
    db.exec(kTablesOfVersions2And3);
    db.exec(GetParam() == 2 ? kVersion2 : kVersion3);
    db.exec(kOldRows);
  }
  ASSERT_TRUE(hasTable(file(), "host_load"));
  {
    StateStore s(file());
    // Everything is read back before anything is written through the store.
    std::vector<HostRow> hosts = s.hosts();
    ASSERT_EQ(hosts.size(), 2u);
    EXPECT_EQ(hosts[0].name, "hostA");
    EXPECT_EQ(hosts[0].data_endpoint, "tcp://127.0.0.2:7001");
    EXPECT_EQ(hosts[0].host_info_json, R"({"arch":"x86_64"})");
    EXPECT_TRUE(hosts[0].cordoned);
    EXPECT_FALSE(hosts[1].cordoned);
    std::optional<ContainerRow> web = s.container("hostA", "web");
    ASSERT_TRUE(web);
    EXPECT_EQ(web->image, "counter");
    EXPECT_EQ(web->status, "running");
    EXPECT_EQ(web->memory_bytes, 4096u);
    EXPECT_EQ(web->ip, "");  // a column version 5 added: none yet
    ASSERT_EQ(s.images("hostA").size(), 1u);
    EXPECT_EQ(s.images("hostA")[0].id, "aa11");
    std::vector<MigrationRow> open = s.unfinishedMigrations();
    ASSERT_EQ(open.size(), 1u);
    EXPECT_EQ(open[0].container, "web");
    EXPECT_EQ(open[0].phase, Phase::kTransferring);
    std::vector<MigrationRow> history = s.history();
    ASSERT_EQ(history.size(), 2u);
    EXPECT_EQ(history[1].phase, Phase::kCommitted);
    EXPECT_EQ(history[1].figures_json, R"({"downtime_ms":120})");
    std::vector<CleanupRow> owed = s.cleanups("hostB");
    ASSERT_EQ(owed.size(), 1u);
    EXPECT_EQ(owed[0].action, "discard");
    EXPECT_EQ(owed[0].migration, 2);
    ASSERT_EQ(s.events().size(), 1u);
    EXPECT_EQ(s.events()[0].message, "registered");
    std::vector<DrainRow> drains = s.activeDrains();  // version 2 had no drains
    if (GetParam() == 3) {
      ASSERT_EQ(drains.size(), 1u);
      EXPECT_EQ(drains[0].host, "hostA");
      EXPECT_EQ(drains[0].parallel, 2);
      EXPECT_EQ(drains[0].deadline_ms, 9000);
    } else {
      EXPECT_TRUE(drains.empty());
    }

    // And it is a working store of the new schema.
    s.advance(open[0].id, Phase::kRolledBack, 50, "coordinator upgraded mid-transfer");
    EXPECT_TRUE(s.unfinishedMigrations().empty());
    if (GetParam() == 2) s.beginDrain({0, "hostB", 1, 0}, 60);  // the table was created
  }
  EXPECT_FALSE(hasTable(file(), "host_load"));
  EXPECT_EQ(userVersion(file()), 6);
  StateStore again(file());  // opening the upgraded file again changes nothing
  EXPECT_EQ(again.hosts().size(), 2u);
  EXPECT_EQ(again.history().size(), 2u);
}

INSTANTIATE_TEST_SUITE_P(Versions, OldDatabase, ::testing::Values(2, 3),
                         [](const auto& info) { return "Version" + std::to_string(info.param); });

// Nothing grows without bound: the newest N of each history stay, and
// nothing a running migration or an owed cleanup still needs goes.
TEST_F(StateStoreTest, PruningKeepsTheNewestHistoryAndEverythingStillInUse) {
  StateStore s(file());
  // The oldest row of all, and unfinished: it stays.
  int64_t running = s.beginMigration("busy", "hostA", "hostB", 500);
  std::vector<int64_t> done;  // web moved three times, then db three times
  for (int i = 0; i < 6; ++i) {
    int64_t id = s.beginMigration(i < 3 ? "web" : "db", "hostA", "hostB", 1000 + i);
    if (i % 2) {
      s.advance(id, Phase::kRolledBack, 2000 + i, "why");
    } else {
      for (Phase p : {Phase::kPrepared, Phase::kTransferring, Phase::kRestored, Phase::kCommitted}) {
        s.advance(id, p, 2000 + i);
      }
    }
    done.push_back(id);
  }
  int64_t owed = done[0];  // old, but a cleanup still names it
  s.addCleanup({0, "hostA", "remove", "web", owed, 0}, 3000);
  for (int i = 0; i < 7; ++i) s.addEvent(4000 + i, "host", "hostA", "event " + std::to_string(i));
  for (const char* h : {"hostA", "hostB", "hostC"}) {
    int64_t d = s.beginDrain({0, h, 1, 0}, 5000);
    s.endDrain(d);
  }

  // Finished migrations keep the newest 2 (done[4], done[5]), the owed one
  // and web's last (done[2], the rebalance cooldown's): done[1] and done[3]
  // go. 7 events keep 2, 3 ended drains keep 2: 2 + 5 + 1 rows go.
  EXPECT_EQ(s.pruneHistory(2), 8);
  std::set<int64_t> left;
  for (const auto& m : s.history(100)) left.insert(m.id);
  EXPECT_EQ(left, (std::set<int64_t>{running, owed, done[2], done[4], done[5]}));
  EXPECT_EQ(s.lastMoves()["web"], 2002);  // done[2] finished at 2002
  auto events = s.events(100);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].message, "event 6");
  EXPECT_EQ(events[1].message, "event 5");
  EXPECT_EQ(s.pruneHistory(2), 0);  // nothing more to remove
  EXPECT_EQ(s.unfinishedMigrations().size(), 1u);
}

TEST_F(StateStoreTest, ANewDatabaseHasNoHostLoad) {
  { StateStore s(file()); }
  EXPECT_FALSE(hasTable(file(), "host_load"));
  EXPECT_TRUE(hasTable(file(), "drains"));
  EXPECT_EQ(userVersion(file()), 6);
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
