#include "coordinator/state_store.h"

#include <array>

#include "common/error.h"

namespace ferry::coord {

namespace {

// 1: first; 2: containers keyed by (host, name) -- two copies exist while
// a migration is between its restore and its commit --, images, cleanups;
// 3: drains, host_load with capacity; 4: no host_load (liveness and load
// are soft state, in the coordinator's memory: host_registry.h); 5: each
// container's address, MAC and ports; 6: a migration may end 'lost' (the
// one-unfinished index knows it: an older coordinator would take a lost one
// for unfinished).
constexpr int kSchemaVersion = 6;

const char* kSchema = R"(
CREATE TABLE IF NOT EXISTS hosts (
  name TEXT PRIMARY KEY, data_endpoint TEXT NOT NULL, host_info TEXT NOT NULL,
  up INTEGER NOT NULL, cordoned INTEGER NOT NULL, last_seen_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS containers (
  name TEXT NOT NULL, host TEXT NOT NULL, image TEXT NOT NULL, status TEXT NOT NULL,
  memory_bytes INTEGER NOT NULL, ip TEXT NOT NULL DEFAULT '', mac TEXT NOT NULL DEFAULT '',
  ports TEXT NOT NULL DEFAULT '', PRIMARY KEY (host, name));
CREATE TABLE IF NOT EXISTS drains (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, parallel INTEGER NOT NULL,
  deadline_ms INTEGER NOT NULL, active INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_drain_per_host ON drains(host) WHERE active = 1;
CREATE TABLE IF NOT EXISTS images (
  host TEXT NOT NULL, name TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (host, name));
CREATE TABLE IF NOT EXISTS cleanups (
  id INTEGER PRIMARY KEY AUTOINCREMENT, host TEXT NOT NULL, action TEXT NOT NULL,
  container TEXT NOT NULL, migration INTEGER NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS migrations (
  id INTEGER PRIMARY KEY AUTOINCREMENT, container TEXT NOT NULL, source TEXT NOT NULL,
  target TEXT NOT NULL, phase TEXT NOT NULL, error TEXT NOT NULL DEFAULT '',
  figures TEXT NOT NULL DEFAULT '', created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
DROP INDEX IF EXISTS one_unfinished_migration_per_container;
CREATE UNIQUE INDEX IF NOT EXISTS one_unfinished_migration_per_container_v2
  ON migrations(container) WHERE phase NOT IN ('committed', 'rolled-back', 'lost');
CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,
  subject TEXT NOT NULL, message TEXT NOT NULL);
)";

}  // namespace

StateStore::StateStore(const std::filesystem::path& file) : db_(file) {
  int64_t version = 0;
  {
    // Finished before any DROP below (an open statement locks its tables).
    Statement v = db_.prepare("PRAGMA user_version");
    v.step();
    version = v.integer(0);
  }
  if (version > kSchemaVersion) {
    throw Error(ErrorCategory::kIncompatible,
                file.string() + " was written by a newer ferry (schema " + std::to_string(version) +
                    "); this coordinator knows schema " + std::to_string(kSchemaVersion));
  }
  // Version 1's containers table is only a cache of heartbeats: rebuilt.
  if (version == 1) db_.exec("DROP TABLE IF EXISTS containers");
  // Version 5 adds each container's address, MAC and published ports.
  if (version >= 2 && version < 5) {
    for (const char* col : {"ip", "mac", "ports"}) {
      db_.exec(std::string("ALTER TABLE containers ADD COLUMN ") + col + " TEXT NOT NULL DEFAULT ''");
    }
  }
  // Before version 4 heartbeats' load was cached in host_load; it is kept
  // in memory now, so the table goes (the rest is kept as it is).
  if (version < 4) db_.exec("DROP TABLE IF EXISTS host_load");
  db_.exec(kSchema);
  db_.exec("PRAGMA user_version=" + std::to_string(kSchemaVersion));
}

void StateStore::upsertHost(const HostRow& h) {
  db_.prepare(
         "INSERT INTO hosts (name, data_endpoint, host_info, up, cordoned, last_seen_ms) "
         "VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT(name) DO UPDATE SET "
         "data_endpoint=?2, host_info=?3, up=?4, last_seen_ms=?6")
      .bind(1, h.name)
      .bind(2, h.data_endpoint)
      .bind(3, h.host_info_json)
      .bind(4, int64_t{h.up})
      .bind(5, int64_t{h.cordoned})
      .bind(6, h.last_seen_ms)
      .run();
}

namespace {
HostRow readHost(Statement& s) {
  return {s.text(0), s.text(1), s.text(2), s.integer(3) != 0, s.integer(4) != 0, s.integer(5)};
}
constexpr const char* kHostCols =
    "SELECT name, data_endpoint, host_info, up, cordoned, last_seen_ms FROM hosts";
}  // namespace

std::optional<HostRow> StateStore::host(const std::string& name) {
  Statement s = db_.prepare(std::string(kHostCols) + " WHERE name=?1");
  s.bind(1, name);
  if (!s.step()) return std::nullopt;
  return readHost(s);
}

std::vector<HostRow> StateStore::hosts() {
  Statement s = db_.prepare(std::string(kHostCols) + " ORDER BY name");
  std::vector<HostRow> out;
  while (s.step()) out.push_back(readHost(s));
  return out;
}

void StateStore::setCordoned(const std::string& name, bool cordoned) {
  Statement s = db_.prepare("UPDATE hosts SET cordoned=?2 WHERE name=?1");
  s.bind(1, name).bind(2, int64_t{cordoned}).run();
  if (db_.changes() == 0) throw Error(ErrorCategory::kInvalidInput, "no host '" + name + "'");
}

void StateStore::inTransaction(const std::function<void()>& body) {
  db_.exec("BEGIN IMMEDIATE");
  try {
    body();
    db_.exec("COMMIT");
  } catch (...) {
    db_.exec("ROLLBACK");
    throw;
  }
}

void StateStore::replaceContainers(const std::string& host, const std::vector<ContainerRow>& rows) {
  inTransaction([&] {
    db_.prepare("DELETE FROM containers WHERE host=?1").bind(1, host).run();
    for (ContainerRow r : rows) {
      r.host = host;
      putContainer(r);
    }
  });
}

namespace {
constexpr const char* kContainerCols =
    "SELECT name, host, image, status, memory_bytes, ip, mac, ports FROM containers";
ContainerRow readContainer(Statement& s) {
  ContainerRow r{s.text(0), s.text(1), s.text(2), s.text(3), static_cast<uint64_t>(s.integer(4))};
  r.ip = s.text(5);
  r.mac = s.text(6);
  std::string ports = s.text(7);
  for (size_t at = 0; !ports.empty() && at != std::string::npos;) {
    size_t comma = ports.find(',', at);
    r.ports.push_back(ports.substr(at, comma == std::string::npos ? std::string::npos : comma - at));
    at = comma == std::string::npos ? comma : comma + 1;
  }
  return r;
}
}  // namespace

std::vector<ContainerRow> StateStore::containers(const std::string& host) {
  Statement s = db_.prepare(std::string(kContainerCols) +
                            (host.empty() ? " ORDER BY name" : " WHERE host=?1 ORDER BY name"));
  if (!host.empty()) s.bind(1, host);
  std::vector<ContainerRow> out;
  while (s.step()) out.push_back(readContainer(s));
  return out;
}

std::vector<ContainerRow> StateStore::containersNamed(const std::string& name) {
  Statement s = db_.prepare(std::string(kContainerCols) + " WHERE name=?1 ORDER BY host");
  s.bind(1, name);
  std::vector<ContainerRow> out;
  while (s.step()) out.push_back(readContainer(s));
  return out;
}

void StateStore::putContainer(const ContainerRow& r) {
  db_.prepare(
         "INSERT OR REPLACE INTO containers (name, host, image, status, memory_bytes, ip, mac, "
         "ports) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
      .bind(1, r.name)
      .bind(2, r.host)
      .bind(3, r.image)
      .bind(4, r.status)
      .bind(5, static_cast<int64_t>(r.memory_bytes))
      .bind(6, r.ip)
      .bind(7, r.mac)
      .bind(8, [&] {
        std::string joined;
        for (const auto& p : r.ports) joined += (joined.empty() ? "" : ",") + p;
        return joined;
      }())
      .run();
}

void StateStore::removeContainer(const std::string& host, const std::string& name) {
  db_.prepare("DELETE FROM containers WHERE host=?1 AND name=?2").bind(1, host).bind(2, name).run();
}

std::optional<ContainerRow> StateStore::container(const std::string& host,
                                                  const std::string& name) {
  Statement s = db_.prepare(std::string(kContainerCols) + " WHERE host=?1 AND name=?2");
  s.bind(1, host).bind(2, name);
  if (!s.step()) return std::nullopt;
  return readContainer(s);
}

void StateStore::replaceImages(const std::string& host, const std::vector<ImageRow>& rows) {
  inTransaction([&] {
    db_.prepare("DELETE FROM images WHERE host=?1").bind(1, host).run();
    for (const auto& r : rows) {
      db_.prepare("INSERT OR REPLACE INTO images (host, name, id) VALUES (?1, ?2, ?3)")
          .bind(1, host)
          .bind(2, r.name)
          .bind(3, r.id)
          .run();
    }
  });
}

int64_t StateStore::beginDrain(const DrainRow& d, int64_t now_ms) {
  Statement s = db_.prepare(
      "INSERT INTO drains (host, parallel, deadline_ms, active, created_ms) VALUES (?1, ?2, ?3, 1, ?4)");
  s.bind(1, d.host).bind(2, int64_t{d.parallel}).bind(3, d.deadline_ms).bind(4, now_ms);
  try {
    s.run();
  } catch (const Error&) {
    throw Error(ErrorCategory::kInvalidInput,
                d.host + " is already being drained; wait for that drain to end");
  }
  return db_.lastInsertId();
}

void StateStore::endDrain(int64_t id) {
  db_.prepare("UPDATE drains SET active=0 WHERE id=?1").bind(1, id).run();
}

std::vector<DrainRow> StateStore::activeDrains() {
  Statement s = db_.prepare("SELECT id, host, parallel, deadline_ms FROM drains WHERE active=1");
  std::vector<DrainRow> out;
  while (s.step()) {
    out.push_back({s.integer(0), s.text(1), static_cast<int>(s.integer(2)), s.integer(3)});
  }
  return out;
}

std::map<std::string, int64_t> StateStore::lastMoves() {
  Statement s = db_.prepare(
      "SELECT container, MAX(updated_ms) FROM migrations "
      "WHERE phase IN ('committed', 'rolled-back', 'lost') GROUP BY container");
  std::map<std::string, int64_t> out;
  while (s.step()) out[s.text(0)] = s.integer(1);
  return out;
}

std::vector<ImageRow> StateStore::images(const std::string& host) {
  Statement s = db_.prepare("SELECT name, id FROM images WHERE host=?1 ORDER BY name");
  s.bind(1, host);
  std::vector<ImageRow> out;
  while (s.step()) out.push_back({s.text(0), s.text(1)});
  return out;
}

int64_t StateStore::addCleanup(const CleanupRow& c, int64_t now_ms) {
  db_.prepare(
         "INSERT INTO cleanups (host, action, container, migration, created_ms) VALUES "
         "(?1, ?2, ?3, ?4, ?5)")
      .bind(1, c.host)
      .bind(2, c.action)
      .bind(3, c.container)
      .bind(4, c.migration)
      .bind(5, now_ms)
      .run();
  return db_.lastInsertId();
}

std::vector<CleanupRow> StateStore::cleanups(const std::string& host) {
  Statement s = db_.prepare(
      "SELECT id, host, action, container, migration, created_ms FROM cleanups "
      "WHERE ?1 = '' OR host=?1 ORDER BY id");
  s.bind(1, host);
  std::vector<CleanupRow> out;
  while (s.step()) {
    out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3), s.integer(4), s.integer(5)});
  }
  return out;
}

bool StateStore::hasCleanup(int64_t migration, const std::string& action) {
  Statement s = db_.prepare("SELECT 1 FROM cleanups WHERE migration=?1 AND action=?2");
  s.bind(1, migration).bind(2, action);
  return s.step();
}

bool StateStore::hasCleanupFor(const std::string& container) {
  // A discard owed after the operator resumed the source (resume-source)
  // blocks nothing: the container runs, and only that migration's copy goes.
  Statement s = db_.prepare("SELECT 1 FROM cleanups WHERE container=?1 AND action != 'discard-late'");
  s.bind(1, container);
  return s.step();
}

void StateStore::setCleanupAction(int64_t id, const std::string& action) {
  Statement s = db_.prepare("UPDATE cleanups SET action=?2 WHERE id=?1");
  s.bind(1, id).bind(2, action);
  s.step();
}

void StateStore::removeCleanup(int64_t id) {
  db_.prepare("DELETE FROM cleanups WHERE id=?1").bind(1, id).run();
}

int64_t StateStore::beginMigration(const std::string& container, const std::string& source,
                                   const std::string& target, int64_t now_ms) {
  try {
    db_.prepare(
           "INSERT INTO migrations (container, source, target, phase, created_ms, updated_ms) "
           "VALUES (?1, ?2, ?3, 'planned', ?4, ?4)")
        .bind(1, container)
        .bind(2, source)
        .bind(3, target)
        .bind(4, now_ms)
        .run();
  } catch (Error& e) {
    if (e.category() != ErrorCategory::kInvalidInput) throw;
    throw Error(
        ErrorCategory::kInvalidInput,
        "container '" + container + "' is already being migrated (one migration at a time)");
  }
  return db_.lastInsertId();
}

void StateStore::advance(int64_t id, Phase to, int64_t now_ms, const std::string& error,
                         const std::string& figures_json) {
  auto m = migration(id);
  if (!m) throw Error(ErrorCategory::kInvalidInput, "no migration " + std::to_string(id));
  const bool back = to == Phase::kRolledBack || to == Phase::kLost;
  bool next = static_cast<int>(to) == static_cast<int>(m->phase) + 1 && !back;
  bool rollback = back && !isFinal(m->phase);
  if (!next && !rollback) {
    throw Error(ErrorCategory::kPermanent, "migration " + std::to_string(id) + " cannot go from " +
                                               std::string(phaseName(m->phase)) + " to " +
                                               std::string(phaseName(to)));
  }
  db_.prepare("UPDATE migrations SET phase=?2, updated_ms=?3, error=?4, figures=?5 WHERE id=?1")
      .bind(1, id)
      .bind(2, std::string(phaseName(to)))
      .bind(3, now_ms)
      .bind(4, error.empty() ? m->error : error)
      .bind(5, figures_json.empty() ? m->figures_json : figures_json)
      .run();
}

MigrationRow StateStore::readMigration(Statement& s) {
  MigrationRow r;
  r.id = s.integer(0);
  r.container = s.text(1);
  r.source = s.text(2);
  r.target = s.text(3);
  auto phase = phaseFromName(s.text(4));
  if (!phase) throw Error(ErrorCategory::kPermanent, "unknown migration phase '" + s.text(4) + "'");
  r.phase = *phase;
  r.error = s.text(5);
  r.figures_json = s.text(6);
  r.created_ms = s.integer(7);
  r.updated_ms = s.integer(8);
  return r;
}

namespace {
constexpr const char* kMigrationCols =
    "SELECT id, container, source, target, phase, error, figures, created_ms, updated_ms FROM "
    "migrations";
}  // namespace

void StateStore::markLost(int64_t id, int64_t now_ms, const std::string& error) {
  auto m = migration(id);
  if (!m || m->phase != Phase::kRolledBack) {
    throw Error(ErrorCategory::kPermanent,
                "migration " + std::to_string(id) + " is not rolled back: it cannot be lost");
  }
  db_.prepare("UPDATE migrations SET phase=?2, updated_ms=?3, error=?4 WHERE id=?1")
      .bind(1, id)
      .bind(2, std::string(phaseName(Phase::kLost)))
      .bind(3, now_ms)
      .bind(4, error)
      .run();
}

std::optional<MigrationRow> StateStore::migration(int64_t id) {
  Statement s = db_.prepare(std::string(kMigrationCols) + " WHERE id=?1");
  s.bind(1, id);
  if (!s.step()) return std::nullopt;
  return readMigration(s);
}

std::vector<MigrationRow> StateStore::unfinishedMigrations() {
  Statement s = db_.prepare(std::string(kMigrationCols) +
                            " WHERE phase NOT IN ('committed', 'rolled-back', 'lost') ORDER BY id");
  std::vector<MigrationRow> out;
  while (s.step()) out.push_back(readMigration(s));
  return out;
}

std::vector<MigrationRow> StateStore::history(int limit) {
  Statement s = db_.prepare(std::string(kMigrationCols) + " ORDER BY id DESC LIMIT ?1");
  s.bind(1, int64_t{limit});
  std::vector<MigrationRow> out;
  while (s.step()) out.push_back(readMigration(s));
  return out;
}

void StateStore::addEvent(int64_t now_ms, const std::string& kind, const std::string& subject,
                          const std::string& message) {
  db_.prepare("INSERT INTO events (time_ms, kind, subject, message) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, now_ms)
      .bind(2, kind)
      .bind(3, subject)
      .bind(4, message)
      .run();
}

int64_t StateStore::pruneHistory(int64_t keep) {
  int64_t removed = 0;
  inTransaction([&] {
    auto run = [&](const char* sql) {
      db_.prepare(sql).bind(1, keep).run();
      removed += db_.changes();
    };
    run("DELETE FROM migrations WHERE phase IN ('committed', 'rolled-back', 'lost') "
        "AND id NOT IN (SELECT migration FROM cleanups) "
        // Each container's last move: the rebalance cooldown reads it.
        "AND id NOT IN (SELECT MAX(id) FROM migrations WHERE phase IN ('committed', "
        "'rolled-back', 'lost') GROUP BY container) "
        "AND id <= (SELECT id FROM migrations WHERE phase IN ('committed', 'rolled-back', 'lost') "
        "ORDER BY id DESC LIMIT 1 OFFSET ?1)");
    run("DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC LIMIT 1 OFFSET ?1)");
    run("DELETE FROM drains WHERE active = 0 AND id <= (SELECT id FROM drains WHERE active = 0 "
        "ORDER BY id DESC LIMIT 1 OFFSET ?1)");
  });
  return removed;
}

std::vector<EventRow> StateStore::events(int limit) {
  Statement s =
      db_.prepare("SELECT time_ms, kind, subject, message FROM events ORDER BY id DESC LIMIT ?1");
  s.bind(1, int64_t{limit});
  std::vector<EventRow> out;
  while (s.step()) out.push_back({s.integer(0), s.text(1), s.text(2), s.text(3)});
  return out;
}

}  // namespace ferry::coord
