// Work hosts owe after a migration ended while they were unreachable (the
// store's cleanups), and the operator's override for a source left frozen:
// pure rules, no store and no socket, like the migration machine they
// complete.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/migration_machine.h"

namespace ferry::coord {

// A failed cleanup is tried again after this long (not at every heartbeat).
inline constexpr std::chrono::seconds kCleanupRetry{10};

// The command that carries a cleanup out: "discard" and "discard-late" (a
// discard left after the operator resumed the source) drop the target's
// copy, "resume" and "resume-after-discard" run the source copy again,
// "remove-frozen" deletes it. Throws Error kPermanent for another action.
Command cleanupCommand(std::string_view action);

// Two copies must never run: a source owed "resume-after-discard" waits
// while its migration's target still owes the discard.
bool cleanupWaits(std::string_view action, bool discard_owed);

// A cleanup that failed with `e` is dropped when it would fail the same way
// forever; otherwise it is retried.
bool cleanupGivesUp(const Error& e);

// `ferry resume-source ID --target-lost`: what the coordinator knows of the
// migration's frozen source.
struct FrozenSource {
  int64_t migration = 0;
  bool known = false;        // the migration exists
  bool resume_owed = false;  // its source owes resume-after-discard
  bool target_up = false;
  std::string container, source, target;
  std::optional<std::string> source_status;  // of the copy on the source; none: not there
};
// Throws Error kInvalidInput saying why the override does not apply: an
// unknown migration, nothing frozen for it, a target that is up (its
// discard runs by itself, and the resume right after), or a source copy
// that is not frozen.
void checkResumeSource(const FrozenSource& f);

}  // namespace ferry::coord
