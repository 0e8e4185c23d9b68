// ferry-agent's command line (CLI11): every option with its default and its
// checks, as a function of the arguments, so that tests parse without
// starting an agent.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "agent/agent_options.h"
#include "common/cli_options.h"
#include "engine/runtime/config.h"

namespace ferry::agent {

struct AgentCommandLine {
  AgentOptions opts;
  EngineConfig engine;   // host_name is opts.name
  std::string keys_dir;  // "": no CurveZMQ
  std::string metrics;   // --metrics ADDR:PORT, checked; "": none served
};

// Parses `args` (argv without argv[0]): the options to run with, or how to
// exit (--help: 0 with the usage; a bad or missing value: 2, naming the
// option).
std::variant<AgentCommandLine, cli::ParseExit> parseAgentCommandLine(
    const std::vector<std::string>& args);

}  // namespace ferry::agent
