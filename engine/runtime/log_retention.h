// How long CRIU's logs stay on a host. Each checkpoint, restore, page server
// and rollback writes a directory root/logs/NAME-KIND-MILLIS (a dump log is
// ~50 KB; 30 migrations of one tiny container once left 2.2 MB on each
// host, without end). What stays:
//   - a failed operation's logs (its directory never marked done), the
//     newest `keep_failed` of them, for the error that points at them;
//   - a successful one's, the newest `keep_per_kind` per container and kind
//     and the newest `keep_done` in all;
//   - under `max_bytes` together, the oldest successful going first, then the
//     oldest failed;
// and never a directory that is not marked done and is younger than
// `busy_for`: its operation may still be running.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>

namespace ferry {

struct LogRetention {
  size_t keep_per_kind = 3;
  size_t keep_done = 30;
  size_t keep_failed = 30;
  uint64_t max_bytes = uint64_t{64} << 20;
  std::chrono::seconds busy_for{3600};
};

// Marks an operation's log directory as ended well (a file ".done" in it).
void markLogDone(const std::filesystem::path& dir);

// Removes from `logs` what `r` does not keep, never `keep` (the directory
// just made for the operation starting now). Best effort: a directory that
// cannot be removed is logged and left. Returns how many were removed.
size_t pruneLogs(const std::filesystem::path& logs, const LogRetention& r,
                 std::chrono::system_clock::time_point now, const std::filesystem::path& keep = {});

}  // namespace ferry
