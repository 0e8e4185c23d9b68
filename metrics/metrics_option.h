// `--metrics ADDR:PORT`, the same option on ferry-coordinator and
// ferry-agent: checked when parsed (metrics_server.h's form), so a typo is a
// usage error rather than a failure after start.
#pragma once

#include <string>

#include "common/cli_options.h"

namespace ferry::metrics {

void addMetricsOption(CLI::App& app, std::string& into);

}  // namespace ferry::metrics
