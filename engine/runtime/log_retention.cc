#include "engine/runtime/log_retention.h"

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "common/fs.h"
#include "common/log.h"

namespace ferry {

namespace {

struct LogEntry {
  fs::path path;
  std::string group;  // NAME-KIND
  int64_t millis = 0;
  bool done = false;
  uint64_t bytes = 0;
};

uint64_t treeBytes(const fs::path& dir) {
  uint64_t n = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code e2;
    if (it->is_regular_file(e2)) n += it->file_size(e2);
  }
  return n;
}

}  // namespace

void markLogDone(const fs::path& dir) { writeFileAtomic(dir / ".done", "", 0600); }

size_t pruneLogs(const fs::path& logs, const LogRetention& r,
                 std::chrono::system_clock::time_point now, const fs::path& keep) {
  std::vector<LogEntry> all;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(logs, ec)) {
    std::string f = e.path().filename().string();
    size_t dash = f.rfind('-');
    if (dash == std::string::npos || dash + 1 == f.size() ||
        f.find_first_not_of("0123456789", dash + 1) != std::string::npos || f.size() - dash > 19) {
      continue;  // not NAME-KIND-MILLIS: not ours to remove
    }
    if (e.path() == keep || !e.is_directory(ec)) continue;
    all.push_back({e.path(), f.substr(0, dash), std::stoll(f.substr(dash + 1)),
                   pathExists(e.path() / ".done"), 0});
  }
  std::sort(all.begin(), all.end(),
            [](const LogEntry& a, const LogEntry& b) { return a.millis > b.millis; });  // newest first
  const int64_t now_ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  const int64_t busy_ms = std::chrono::duration_cast<std::chrono::milliseconds>(r.busy_for).count();
  auto mayGo = [&](const LogEntry& e) { return e.done || now_ms - e.millis >= busy_ms; };

  std::vector<bool> gone(all.size(), false);
  std::map<std::string, size_t> per_group;
  size_t done = 0, failed = 0;
  // The directory starting now is the newest of its kind: it counts toward
  // what is kept (3 of a kind means it and the 2 before it).
  if (std::string f = keep.filename().string(); !keep.empty() && f.rfind('-') != std::string::npos) {
    ++per_group[f.substr(0, f.rfind('-'))];
    ++done;
  }
  for (size_t i = 0; i < all.size(); ++i) {
    const LogEntry& e = all[i];
    if (e.done) {
      gone[i] = ++per_group[e.group] > r.keep_per_kind || ++done > r.keep_done;
    } else {
      gone[i] = ++failed > r.keep_failed && mayGo(e);
    }
  }
  // The size cap over what is left: oldest successful first, then failed.
  uint64_t total = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!gone[i]) total += all[i].bytes = treeBytes(all[i].path);
  }
  if (!keep.empty()) total += treeBytes(keep);
  for (bool done_pass : {true, false}) {
    for (size_t i = all.size(); i-- > 0 && total > r.max_bytes;) {
      if (gone[i] || all[i].done != done_pass || !mayGo(all[i])) continue;
      gone[i] = true;
      total -= all[i].bytes;
    }
  }
  size_t removed = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    if (!gone[i]) continue;
    bestEffort("removing an old CRIU log", [&] {
      removeTree(all[i].path);
      ++removed;
    });
  }
  return removed;
}

}  // namespace ferry
