// Option value rules the commands share: strict counts, durations with
// units, --precopy. Each throws CLI::ValidationError (a usage error, exit 2)
// on a value it does not take, naming the option.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <string>

namespace ferry::cli {

// A whole decimal number from `min` to `max`: "5x", "-1", "0x10", " 5" are refused
// (CLI11's own conversion would take some of them).
CLI::Validator countIn(uint64_t min, uint64_t max);

// "500ms", "90s", "2m", "1h", or a bare number counted in `bare_unit`
// (what that option took before it knew units). Positive only.
std::chrono::milliseconds parseDuration(const std::string& v, std::chrono::milliseconds bare_unit);

// Adds option `name` taking a duration into `into` (see parseDuration).
CLI::Option* addDuration(CLI::App* app, const std::string& name, std::chrono::milliseconds& into,
                         std::chrono::milliseconds bare_unit, const std::string& help);

// --precopy auto|off|R as the protocol's rounds: -1 auto, 0 off, else 1..20.
int parsePrecopy(const std::string& v);

}  // namespace ferry::cli
