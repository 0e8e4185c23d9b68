#include "agent/command_line.h"

#include "common/names.h"
#include "engine/engine_options.h"
#include "metrics/metrics_option.h"

namespace ferry::agent {

namespace {

constexpr const char* kDescription =
    "Runs this host's ferry agent: registers with the coordinator, reports its containers and "
    "load every heartbeat, and carries out the coordinator's commands (run, stop, remove, logs, "
    "and the steps of a live migration). Containers outlive the agent; a restarted agent adopts "
    "them again.";

// A bare number keeps the unit each option had before units, so that
// existing unit files mean what they meant (a bare 1000 read as seconds
// would turn a 1 s heartbeat into 17 minutes).
constexpr const char* kBareUnits =
    "A bare number keeps the unit the option\nalways had: milliseconds for --heartbeat and --stream-timeout, seconds for\n"
    "--drain-on-stop.";

}  // namespace

std::variant<AgentCommandLine, cli::ParseExit> parseAgentCommandLine(
    const std::vector<std::string>& args) {
  using std::chrono::milliseconds;
  using std::chrono::seconds;
  AgentCommandLine c;
  AgentOptions& o = c.opts;
  o.coordinator = "tcp://127.0.0.1:7000";
  o.data_address = "127.0.0.1";
  uint64_t memory_mib = 0;
  milliseconds drain_on_stop{0};

  CLI::App app(kDescription, "ferry-agent");
  // Given twice, the last one counts, as it always did: `ferry cluster up`
  // passes its defaults first and the operator's --agent-arg after them.
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.footer(cli::daemonFooter(kBareUnits));
  cli::addVersionFlag(app);
  cli::addConfigFile(app);
  app.add_option("--name", o.name, "this host's name in the cluster")
      ->required()
      ->type_name("NAME")
      ->check(cli::checkedBy([](const std::string& v) { validateName(v, "host name"); }));
  app.add_option("--coordinator", o.coordinator, "the coordinator (default tcp://127.0.0.1:7000)")
      ->type_name("ENDPOINT");
  app.add_option("--listen", o.data_address,
                 "address migration streams are received on (default 127.0.0.1); must be a "
                 "loopback address unless --keys is given")
      ->type_name("ADDR");
  app.add_option("--advertise", o.advertise_address,
                 "address other hosts send migration streams to (default: the --listen address), "
                 "for a host reached through NAT or a proxy that keeps the port")
      ->type_name("ADDR");
  addEngineOptions(app, c.engine, "NAME");
  app.add_option("--keys", c.keys_dir,
                 "CurveZMQ keys (from `ferry keys generate`): NAME.key and coordinator.pub")
      ->type_name("DIR");
  cli::addDuration(&app, "--heartbeat", o.heartbeat, milliseconds(1),
                   "heartbeat interval (default 1s; a bare number is milliseconds)");
  cli::addDuration(&app, "--stream-timeout", o.stream_timeout, milliseconds(1),
                   "a migration stream whose peer is silent this long fails and rolls back "
                   "(default 60s; a bare number is milliseconds)");
  app.add_option("--memory-capacity", memory_mib,
                 "memory this host offers containers, in MiB, for the drain and rebalance "
                 "planners (default, or 0: all of the host's memory)")
      ->type_name("MIB")
      ->check(cli::countIn(0, uint64_t{1} << 40));
  cli::addDuration(&app, "--drain-on-stop", drain_on_stop, seconds(1),
                   "on SIGTERM (as systemd stops it), ask the coordinator to drain this host -- "
                   "live-migrate every container off it -- and wait up to this long for that "
                   "before exiting (default 0: exit at once, the containers stay; a bare number "
                   "is seconds)",
                   /*zero_ok=*/true);
  app.add_option("--drain-on-memory-pressure", o.drain_on_memory_pressure,
                 "ask for this host to be drained when memory pressure (PSI \"some\" avg10, "
                 "/proc/pressure/memory) stays above PCT for three heartbeats (default 0: off)")
      ->type_name("PCT")
      ->check(cli::numberIn(0, 100));
  app.add_option("--drain-on-disk-free", o.drain_on_disk_free,
                 "the same when the state root's file system has less than PCT % free for "
                 "three heartbeats (default 0: off)")
      ->type_name("PCT")
      ->check(cli::numberIn(0, 100));

  metrics::addMetricsOption(app, c.metrics);
  bool postcopy = false;
  app.add_flag("--postcopy", postcopy,
               "take part in post-copy migrations (`ferry migrate --postcopy`) to and from this "
               "host. At start it raises two host-wide settings CRIU's lazy pages need: "
               "fs.pipe-max-size to 4 MiB, and vm.unprivileged_userfaultfd to 1, which lets any "
               "process use userfaultfd (it can widen kernel races an attacker exploits; see the "
               "README); and it makes the nftables table inet ferry_page_server, which keeps "
               "CRIU's page server to root while it serves a container's memory. Off by default: "
               "such a migration is then refused, saying so");

  if (std::optional<cli::ParseExit> end = cli::parseArgs(app, args)) return *end;
  c.engine.postcopy = postcopy;
  o.memory_capacity = memory_mib << 20;
  // Whole seconds, rounded up: a drain is never given less than asked.
  o.drain_on_stop = std::chrono::ceil<seconds>(drain_on_stop);
  c.engine.host_name = o.name;
  return c;
}

}  // namespace ferry::agent
