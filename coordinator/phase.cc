#include "coordinator/phase.h"

#include <array>
#include <cstddef>

namespace ferry::coord {

namespace {
// The names are what the store holds: never rename one.
constexpr std::array<std::string_view, 7> kPhaseNames = {
    "planned", "prepared", "transferring", "restored", "committed", "rolled-back", "lost"};
}  // namespace

std::string_view phaseName(Phase p) { return kPhaseNames[static_cast<size_t>(p)]; }

std::optional<Phase> phaseFromName(std::string_view name) {
  for (size_t i = 0; i < kPhaseNames.size(); ++i) {
    if (kPhaseNames[i] == name) return static_cast<Phase>(i);
  }
  return std::nullopt;
}

}  // namespace ferry::coord
