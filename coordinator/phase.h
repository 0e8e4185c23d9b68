// A migration's persisted phase: what the coordinator commits to its store
// before each next step, and resolves from after a restart.
#pragma once

#include <optional>
#include <string_view>

namespace ferry::coord {

// plan -> prepare -> transfer -> restore -> commit, or roll back from any
// unfinished phase (DESIGN.md, "A migration, step by step"). Lost: rolled
// back, but the source's copy did not survive, and no other copy holds the
// container's state (post-copy whose source died before the last page).
enum class Phase { kPlanned, kPrepared, kTransferring, kRestored, kCommitted, kRolledBack, kLost };
std::string_view phaseName(Phase p);
std::optional<Phase> phaseFromName(std::string_view name);
inline bool isFinal(Phase p) {
  return p == Phase::kCommitted || p == Phase::kRolledBack || p == Phase::kLost;
}

}  // namespace ferry::coord
