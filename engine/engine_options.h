// The engine's configuration as command-line options (CLI11), for every
// binary that embeds an engine: ferry-agent and ferry-engine take them
// alike. A separate library (ferry_engine_options): the engine itself
// knows nothing of command lines.
#pragma once

#include <CLI/CLI.hpp>

#include "engine/runtime/config.h"

namespace ferry {

// --root, --run-dir, --cgroup-parent and --criu into `cfg`; `host` is how
// the help names the host in the defaults (NAME, HOST).
void addEngineOptions(CLI::App& app, EngineConfig& cfg, const std::string& host);

}  // namespace ferry
