// The ferry command tree, built with CLI11: every command, its options and
// its help, in one place that main(), the tests and `ferry completion bash`
// all read. Building and parsing never talk to the coordinator; a parsed
// command line yields an action that does.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "tools/ferry/session.h"

namespace ferry::cli {

// What a parsed command line asks for.
struct Invocation {
  Session session;              // the global options land here
  std::string command;          // "secret create", for messages
  std::function<int()> action;  // set by the chosen command's callback; returns the exit code
};

// Builds the whole tree into `app` (a fresh CLI::App), binding options to `inv`.
void buildApp(CLI::App& app, Invocation& inv);

// Parses `args` (argv without argv[0]). Returns nullopt when inv.action
// should run; otherwise the exit code: 0 after printing help or the version
// to `out`, 2 after printing a usage error to `err`.
std::optional<int> parse(CLI::App& app, Invocation& inv, std::vector<std::string> args,
                         std::ostream& out, std::ostream& err);

// The bash completion script for `app`'s tree (`ferry completion bash`).
std::string bashCompletion(const CLI::App& app);

}  // namespace ferry::cli
