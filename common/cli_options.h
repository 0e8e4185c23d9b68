// Command-line rules every ferry binary shares (CLI11): strict numbers,
// durations with units, and how a parse that should not run ends. The
// `ferry` CLI, ferry-agent, ferry-coordinator and ferry-engine all parse
// with these, so `90s`, `500ms` and `5x` mean the same to each.
//
// Each validator throws CLI::ValidationError (a usage error, exit 2) on a
// value it does not take, naming the option.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

namespace ferry::cli {

// A whole decimal number from `min` to `max`: "5x", "-1", "0x10", " 5" are refused
// (CLI11's own conversion would take some of them).
CLI::Validator countIn(uint64_t min, uint64_t max);

// A decimal number such as 12.5 from `min` to `max`: "nan", "1e3", "-0",
// " 5" are refused.
CLI::Validator numberIn(double min, double max);

// A value `check` takes: it throws (an Error, say) on one it refuses,
// whose message becomes the usage error.
CLI::Validator checkedBy(std::function<void(const std::string&)> check);

// "500ms", "90s", "2m", "1h", or a bare number counted in `bare_unit`
// (what that option took before it knew units). Positive, or also 0 when
// `zero_ok` (an option whose 0 means "off").
std::chrono::milliseconds parseDuration(const std::string& v, std::chrono::milliseconds bare_unit,
                                        bool zero_ok = false);

// Adds option `name` taking a duration into `into` (see parseDuration).
CLI::Option* addDuration(CLI::App* app, const std::string& name, std::chrono::milliseconds& into,
                         std::chrono::milliseconds bare_unit, const std::string& help,
                         bool zero_ok = false);

// Adds `--config FILE` to a daemon: its options read from a TOML-style file,
// one `long-option-name = value` a line (`name = "hostA"`, a flag `postcopy
// = true`, a repeated option `listen = ["tcp://a:1", "tcp://b:2"]`). The
// command line wins over the file. A key that names no option is refused,
// not ignored: a misspelt setting must not silently fall back to a default.
void addConfigFile(CLI::App& app);

// Adds `--version`, printing ferry's version (the project's, from CMake).
void addVersionFlag(CLI::App& app);

// The end of a daemon's help: how durations are written, the unit a bare
// number keeps for each of its options (`bare_units`, a sentence), and the
// exit status.
std::string daemonFooter(const std::string& bare_units);

// How a parse ended that should not run the program: help asked for (code
// 0, the usage in `out`) or bad usage (code 2, the message in `err`, which
// names the option and points at --help).
struct ParseExit {
  int code = 0;
  std::string out;
  std::string err;
};

// Parses `args` (argv without argv[0]) into the options `app` binds;
// nullopt when the program should run with them. What the options alone
// cannot refuse, app's callbacks refuse by throwing CLI::ValidationError.
std::optional<ParseExit> parseArgs(CLI::App& app, std::vector<std::string> args);

// Prints `e` as a daemon does (help on stdout, an error on stderr) and
// returns its code.
int printParseExit(const ParseExit& e);

}  // namespace ferry::cli
