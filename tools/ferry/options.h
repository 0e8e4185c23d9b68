// Option value rules of the ferry CLI's own: --precopy, --compress. The rules every
// binary shares (strict counts, durations with units) are in
// common/cli_options.h.
#pragma once

#include <string>

#include "common/cli_options.h"

namespace ferry::cli {

// --precopy auto|off|R as the protocol's rounds: -1 auto, 0 off, else 1..20.
// Throws CLI::ValidationError (a usage error, exit 2) on anything else.
int parsePrecopy(const std::string& v);
// --compress auto|none|L as the protocol's level: -1 auto, 0 none, else 1..19.
int parseCompress(const std::string& v);

}  // namespace ferry::cli
