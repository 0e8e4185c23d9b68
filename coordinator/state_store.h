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
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/sqlite.h"

namespace ferry::coord {

// plan -> prepare -> transfer -> restore -> commit, or roll back from any
// unfinished phase (DESIGN.md, "A migration, step by step").
enum class Phase { kPlanned, kPrepared, kTransferring, kRestored, kCommitted, kRolledBack };
std::string_view phaseName(Phase p);
std::optional<Phase> phaseFromName(std::string_view name);
inline bool isFinal(Phase p) { return p == Phase::kCommitted || p == Phase::kRolledBack; }

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
  // Marks hosts last seen before cutoff as down; returns those newly down.
  std::vector<std::string> markDownSilentSince(int64_t cutoff_ms);

  // A heartbeat's full list for one host replaces what was known of it.
  void replaceContainers(const std::string& host, const std::vector<ContainerRow>& rows);
  std::vector<ContainerRow> containers(const std::string& host = "");
  std::optional<ContainerRow> container(const std::string& name);

  // Records a planned migration. Throws Error kInvalidInput when the
  // container already has one that has not finished.
  int64_t beginMigration(const std::string& container, const std::string& source,
                         const std::string& target, int64_t now_ms);
  // Moves a migration one phase on, or to kRolledBack from any unfinished
  // phase (with `error`); throws Error kPermanent for any other transition
  // (a bug in the caller's state machine).
  void advance(int64_t id, Phase to, int64_t now_ms, const std::string& error = "",
               const std::string& figures_json = "");
  std::optional<MigrationRow> migration(int64_t id);
  std::vector<MigrationRow> unfinishedMigrations();
  std::vector<MigrationRow> history(int limit = 100);

  void addEvent(int64_t now_ms, const std::string& kind, const std::string& subject,
                const std::string& message);
  std::vector<EventRow> events(int limit = 100);

 private:
  MigrationRow readMigration(Statement& s);

  Database db_;
};

}  // namespace ferry::coord
