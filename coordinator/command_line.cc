#include "coordinator/command_line.h"

#include "common/ipv4.h"

#include "common/error.h"
#include "metrics/metrics_option.h"

namespace ferry::coord {

namespace {

constexpr const char* kDescription =
    "Runs the ferry coordinator: agents register with it and report their containers and load; "
    "the ferry CLI asks it about the cluster. A host that misses heartbeats is marked down.";

// A bare number keeps the unit each option had before units, so that
// existing unit files mean what they meant.
constexpr const char* kBareUnits =
    "A bare number keeps the unit the option\nalways had: milliseconds for --heartbeat, seconds for --rebalance-every.";

}  // namespace

std::variant<CoordinatorCommandLine, cli::ParseExit> parseCoordinatorCommandLine(
    const std::vector<std::string>& args) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  CoordinatorCommandLine c;
  CoordinatorOptions& o = c.opts;
  o.state_dir = "/var/lib/ferry/coordinator";

  CLI::App app(kDescription, "ferry-coordinator");
  // Given twice, the last one counts, as it always did: `ferry cluster up`
  // passes its defaults first and the operator's --agent-arg after them.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.footer(cli::daemonFooter(kBareUnits));
  cli::addVersionFlag(app);
  cli::addConfigFile(app);
  std::vector<std::string> listen, agent_addresses;
  app.add_option("--listen", listen,
                 "where agents and the CLI connect; again for more (default, with --keys: "
                 "tcp://127.0.0.1:7000; without: ipc:///run/ferry/coordinator.sock, a unix "
                 "socket for root and the ferry group only)")
      ->type_name("ENDPOINT")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--agent-address", agent_addresses,
                 "without --keys: host NAME's agent connects from ADDRESS, the only address a "
                 "tcp:// endpoint admits it from (and it admits no CLI); again for each host")
      ->type_name("NAME=ADDRESS")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  app.add_option("--max-connections", o.max_connections,
                 "connections held at once at most, the newest past it shut down; also kept "
                 "below the fd limit (default 1024)")
      ->check(cli::countIn(8, 1000000));
  app.add_option("--state", o.state_dir,
                 "state directory, SQLite (default /var/lib/ferry/coordinator)")
      ->type_name("DIR");
  app.add_option(
         "--keys", c.keys_dir,
         "CurveZMQ keys (from `ferry keys generate`): coordinator.key, and one NAME.pub per "
         "agent or client allowed in")
      ->type_name("DIR");
  cli::addDuration(&app, "--heartbeat", o.heartbeat, milliseconds(1),
                   "the agents' heartbeat interval (default 1s; a bare number is milliseconds)");
  app.add_option("--history-keep", o.history_keep,
                 "finished migrations, events and ended drains kept in the state, the newest "
                 "this many of each (default 10000; what `ferry history` and `ferry events` show)")
      ->type_name("N")
      ->check(cli::countIn(1, 100000000));
  app.add_option("--missed", o.missed_heartbeats,
                 "heartbeats missed before a host is down (default 5)")
      ->check(cli::countIn(1, 1000));
  cli::addDuration(&app, "--rebalance-every", o.rebalance_every, seconds(1),
                   "rebalance by itself this often (as `ferry rebalance`) when no drain or "
                   "rebalance is under way and the plan has moves (default 0: never; a bare "
                   "number is seconds)",
                   /*zero_ok=*/true);
  app.add_option("--rebalance-high", o.rebalance.high_percent,
                 "its high mark: hosts above this memory load give (default 80)")
      ->type_name("PCT")
      ->check(cli::numberIn(0, 100));
  app.add_option("--rebalance-low", o.rebalance.low_percent,
                 "its low mark: hosts below this take (default 50)")
      ->type_name("PCT")
      ->check(cli::numberIn(0, 100));
  app.add_option("--rebalance-max-moves", o.rebalance.max_moves,
                 "its moves at most per rebalance (default 10)")
      ->check(cli::countIn(1, 1000));
  app.add_option("--network-cidr", o.network_cidr,
                 "the cluster network, e.g. 10.66.0.0/16: each container gets an address of it "
                 "(kept across migrations) unless run with --network none; every host must reach "
                 "the others' addresses (a VXLAN overlay, UDP 4789); not a range a host routes "
                 "already (Podman's 10.88.0.0/16, say). Default: none")
      ->type_name("CIDR");
  metrics::addMetricsOption(app, c.metrics);
  // What no one option says: the marks in order; the endpoints.
  app.callback([&] {
    try {
      validateRebalanceOptions(o.rebalance);
    } catch (const Error& e) {
      throw CLI::ValidationError("--rebalance-low/--rebalance-high", e.what());
    }
    if (!o.network_cidr.empty()) {
      try {
        Cidr n = parseCidr(o.network_cidr, "--network-cidr");
        if (n.prefix > 30) throw Error(ErrorCategory::kInvalidInput, "--network-cidr " + o.network_cidr + ": a /30 or larger range, please");
        o.network_cidr = toString(n);
      } catch (const Error& e) {
        throw CLI::ValidationError("--network-cidr", e.what());
      }
    }
    if (listen.empty()) listen = {c.keys_dir.empty() ? kDefaultSocket : kDefaultTcp};
    o.listen = listen[0];
    o.also_listen.assign(listen.begin() + 1, listen.end());
    try {
      for (const auto& a : agent_addresses) addAgentAddress(a, o.access);
    } catch (const Error& e) {
      throw CLI::ValidationError("--agent-address", e.what());
    }
  });

  if (std::optional<cli::ParseExit> end = cli::parseArgs(app, args)) return *end;
  return c;
}

}  // namespace ferry::coord
