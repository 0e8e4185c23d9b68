// Migration figures from the wire as JSON: the form the coordinator keeps
// them in (SQLite) and the CLI prints with --json. Library ferry_figures.
#pragma once

#include <nlohmann/json.hpp>

#include "protocol/control.capnp.h"

namespace ferry::proto {

// [{"round", "read_bytes", "sent_bytes", "wire_bytes", "ms"}, ...]
nlohmann::json precopyRoundsJson(capnp::List<MigrationFigures::PrecopyRound>::Reader rounds);

}  // namespace ferry::proto
