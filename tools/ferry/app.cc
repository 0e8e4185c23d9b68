#include "tools/ferry/app.h"

#include <iostream>

#include "tools/ferry/commands.h"
#include "tools/ferry/options.h"

namespace ferry::cli {

void setAction(CLI::App* sub, Invocation& inv, std::function<int()> action,
               std::function<void()> check) {
  sub->callback([sub, &inv, action = std::move(action), check = std::move(check)] {
    if (check) check();
    std::string path = sub->get_name();
    for (const CLI::App* p = sub->get_parent(); p && p->get_parent(); p = p->get_parent())
      path = p->get_name() + " " + path;
    inv.command = path;
    inv.action = action;
  });
}

namespace {

constexpr const char* kFooter = R"(
EXIT STATUS
  0 success; 1 failure (the message says what to do); 2 bad usage.

EXAMPLES
  ferry cluster up --hosts 2
  ferry image import counter counter.tar.zst --all
  ferry run --host hostA --name demo -v data:/data counter /usr/local/bin/counter --file /data/n
  ferry migrate demo hostA hostB
  ferry logs -f demo

`ferry COMMAND --help` describes each command.)";

void addCompletionCommand(CLI::App& app, Invocation& inv) {
  CLI::App* c = app.add_subcommand("completion", "print a shell completion script");
  auto shell = std::make_shared<std::string>();  // outlives this: the option writes it
  c->add_option("shell", *shell, "the shell (bash)")->required()->check(CLI::IsMember({"bash"}));
  setAction(c, inv, [&app] {
    std::cout << bashCompletion(app);
    return 0;
  });
}

}  // namespace

void buildApp(CLI::App& app, Invocation& inv) {
  app.name("ferry");
  app.description(
      "Runs and live-migrates containers across the hosts of a ferry cluster. ferry talks to "
      "the coordinator; the coordinator drives one ferry-agent per host.");
  app.footer(kFooter);
  // Global options may also follow the command (`ferry history --json`).
  app.fallthrough();
  app.require_subcommand(1);
  addVersionFlag(app);
  Session& s = inv.session;
  app.add_option("--coordinator", s.coordinator,
                 "the coordinator (default: $FERRY_COORDINATOR, else the local cluster's, else "
                 "tcp://127.0.0.1:7000)")
      ->type_name("ENDPOINT");
  app.add_option("--keys", s.keys_dir,
                 "CurveZMQ keys: DIR/client.key and DIR/coordinator.pub (default: $FERRY_KEYS; "
                 "none: plain loopback)")
      ->type_name("DIR");
  app.add_flag("--json", s.json_out, "machine-readable JSON on stdout instead of tables");
  addDuration(&app, "--timeout", s.timeout, std::chrono::seconds(1),
              "how long to wait for an answer (default 60s; a bare number is seconds; a migration "
              "waits this long for each sign of progress)");

  addClusterCommands(app, inv);
  addContainerCommands(app, inv);
  addImageCommands(app, inv);
  addSecretCommands(app, inv);
  addMigrateCommand(app, inv);
  addCheckpointCommands(app, inv);
  addHistoryCommands(app, inv);
  addPlacementCommands(app, inv);
  addKeysCommands(app, inv);
  addCompletionCommand(app, inv);
  CLI::App* help = app.add_subcommand("help", "this text");
  setAction(help, inv, [&app] {
    // app.help() would describe the `help` command itself, the one chosen.
    std::cout << app.get_formatter()->make_help(&app, app.get_name(), CLI::AppFormatMode::Normal);
    return 0;
  });
}

std::optional<int> parse(CLI::App& app, Invocation& inv, std::vector<std::string> args,
                         std::ostream& out, std::ostream& err) {
  // `cluster up --agent-arg --memory-capacity`: the value starts with '-', which
  // CLI11 would read as an option; as --agent-arg=--memory-capacity it is a value.
  for (size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--") break;
    if (args[i] == "--agent-arg" || args[i] == "--coordinator-arg") {
      args[i] += "=" + args[i + 1];
      args.erase(args.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    }
  }
  if (std::optional<ParseExit> end = parseArgs(app, std::move(args))) {
    out << end->out;
    err << end->err;
    return end->code;
  }
  if (!inv.action) {
    err << "ferry: no command (see ferry --help)\n";
    return 2;
  }
  return std::nullopt;
}

}  // namespace ferry::cli
