// ferry-coordinator's command line (CLI11): every option with its default
// and its checks, as a function of the arguments, so that tests parse
// without starting a coordinator.
#pragma once

#include <string>
#include <variant>
#include <vector>

#include "common/cli_options.h"
#include "coordinator/coordinator.h"

namespace ferry::coord {

struct CoordinatorCommandLine {
  CoordinatorOptions opts;
  std::string keys_dir;  // "": no CurveZMQ
  std::string metrics;   // --metrics ADDR:PORT, checked; "": none served
};

// Parses `args` (argv without argv[0]): the options to run with, or how to
// exit (--help: 0 with the usage; a bad value: 2, naming the option).
std::variant<CoordinatorCommandLine, cli::ParseExit> parseCoordinatorCommandLine(
    const std::vector<std::string>& args);

}  // namespace ferry::coord
