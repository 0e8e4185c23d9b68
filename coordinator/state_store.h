// The coordinator's cluster state in SQLite: hosts, containers, migrations
// and events. Every migration step is committed before the coordinator acts
// on it, so a coordinator that restarts finds each unfinished migration at
// the phase it reached and can resolve it to one of its two ends.
//
// Times are passed in (milliseconds since the epoch): the clock is the
// caller's. Not thread-safe: the coordinator's one state thread owns it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/phase.h"
#include "coordinator/sqlite.h"

namespace ferry::coord {

struct HostRow {
  std::string name;
  std::string data_endpoint;   // where its agent receives streams
  std::string host_info_json;  // as the agent reported it
  bool up = true;
  bool cordoned = false;
  int64_t last_seen_ms = 0;
};

struct ContainerRow {
  std::string name;
  std::string host;
  std::string image;
  std::string status;
  uint64_t memory_bytes = 0;
  // On the cluster network: its address ("" none), MAC and published ports
  // (HOSTPORT:PORT/PROTO).
  std::string ip;
  std::string mac;
  std::vector<std::string> ports;
};

struct DrainRow {
  int64_t id = 0;
  std::string host;
  int parallel = 1;
  int64_t deadline_ms = 0;  // unix ms; 0: none
};

struct ImageRow {
  std::string name;
  std::string id;  // sha256 hex
};

// Work a host still owes after a migration ended while it was unreachable:
// "discard" (remove what migration `migration` restored there), "resume"
// (thaw the frozen source copy) or "remove-frozen" (delete the source copy
// once the target runs it). Carried out when the host is back.
struct CleanupRow {
  int64_t id = 0;
  std::string host, action, container;
  int64_t migration = 0;
  int64_t created_ms = 0;
};

struct MigrationRow {
  int64_t id = 0;
  std::string container, source, target;
  Phase phase = Phase::kPlanned;
  std::string error;         // why it rolled back
  std::string figures_json;  // downtime, bytes, phase times
  int64_t created_ms = 0, updated_ms = 0;
};

struct EventRow {
  int64_t time_ms = 0;
  std::string kind, subject, message;
};

class StateStore {
 public:
  // Opens or creates <file>; refuses a database of a newer schema.
  explicit StateStore(const std::filesystem::path& file);

  void upsertHost(const HostRow& h);
  std::optional<HostRow> host(const std::string& name);
  std::vector<HostRow> hosts();
  void setCordoned(const std::string& name, bool cordoned);

  // A heartbeat's full list for one host replaces what was known of it.
  // Containers are keyed by (host, name): while a migration is between its
  // restore and its commit both hosts report a copy.
  void replaceContainers(const std::string& host, const std::vector<ContainerRow>& rows);
  std::vector<ContainerRow> containers(const std::string& host = "");
  std::vector<ContainerRow> containersNamed(const std::string& name);
  // What a migration step just changed, ahead of the next heartbeat.
  void putContainer(const ContainerRow& row);
  void removeContainer(const std::string& host, const std::string& name);
  std::optional<ContainerRow> container(const std::string& host, const std::string& name);

  void replaceImages(const std::string& host, const std::vector<ImageRow>& rows);
  std::vector<ImageRow> images(const std::string& host);

  int64_t addCleanup(const CleanupRow& c, int64_t now_ms);
  std::vector<CleanupRow> cleanups(const std::string& host);  // "": every host's
  void removeCleanup(int64_t id);
  void setCleanupAction(int64_t id, const std::string& action);
  bool hasCleanup(int64_t migration, const std::string& action);
  bool hasCleanupFor(const std::string& container);

  // Records a planned migration. Throws Error kInvalidInput when the
  // container already has one that has not finished.
  int64_t beginMigration(const std::string& container, const std::string& source,
                         const std::string& target, int64_t now_ms);
  // Moves a migration one phase on, or to kRolledBack or kLost from any unfinished
  // phase (with `error`); throws Error kPermanent for any other transition
  // (a bug in the caller's state machine).
  void advance(int64_t id, Phase to, int64_t now_ms, const std::string& error = "",
               const std::string& figures_json = "");
  // A migration rolled back whose source copy, owed a resume, turned out
  // not to have survived: the container is lost (`error` says so). Only
  // from kRolledBack; throws Error kPermanent otherwise.
  void markLost(int64_t id, int64_t now_ms, const std::string& error);
  std::optional<MigrationRow> migration(int64_t id);
  std::vector<MigrationRow> unfinishedMigrations();
  std::vector<MigrationRow> history(int limit = 100);

  // Host drains, so that a restarted coordinator carries an unfinished one
  // on. At most one active drain per host.
  int64_t beginDrain(const DrainRow& d, int64_t now_ms);
  void endDrain(int64_t id);
  std::vector<DrainRow> activeDrains();
  // When each container's last committed migration ended (for cool-downs).
  // Per container, when its last migration ended, committed or rolled back
  // (a failed try cools down too).
  std::map<std::string, int64_t> lastMoves();

  void addEvent(int64_t now_ms, const std::string& kind, const std::string& subject,
                const std::string& message);
  std::vector<EventRow> events(int limit = 100);
  // Keeps the newest `keep` finished migrations (an unfinished one, one a
  // cleanup still names, and each container's last, which the rebalance
  // cooldown reads, always stay), the newest `keep` events and the
  // newest `keep` ended drains; removes the rest. Returns the rows removed.
  int64_t pruneHistory(int64_t keep);

 private:
  MigrationRow readMigration(Statement& s);
  // Runs body in one transaction: all of it or, when it throws, none.
  void inTransaction(const std::function<void()>& body);

  Database db_;
};

}  // namespace ferry::coord
