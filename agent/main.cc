// ferry-agent: one per host. Wires the engine and the control protocol
// together (agent/agent.h) and runs until SIGTERM or SIGINT.
#include <signal.h>

#include <atomic>
#include <iostream>

#include "agent/agent.h"
#include "agent/agent_log.h"
#include "agent/command_line.h"
#include "common/log.h"
#include "common/service_notify.h"
#include "common/sha256.h"
#include "engine/engine.h"
#include "engine/runtime/host_probe.h"
#include "engine/runtime/page_server_guard.h"
#include "metrics/metrics_server.h"

using namespace ferry;

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

bool isLoopback(const std::string& addr) { return addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

int main(int argc, char** argv) {
  auto parsed = agent::parseAgentCommandLine({argv + 1, argv + argc});
  if (auto* end = std::get_if<cli::ParseExit>(&parsed)) return cli::printParseExit(*end);
  auto& [opts, cfg, keys_dir, metrics_address] = std::get<agent::AgentCommandLine>(parsed);
  try {
    if (!keys_dir.empty()) {
      opts.keys = proto::readKeyPair(std::filesystem::path(keys_dir) / (opts.name + ".key"));
      opts.coordinator_key = proto::readPublicKey(std::filesystem::path(keys_dir) / "coordinator.pub");
    } else if (!isLoopback(opts.data_address)) {
      throw Error(ErrorCategory::kInvalidInput,
                  "without --keys, streams are unencrypted and unauthenticated: --listen must be "
                  "a loopback address (generate keys with `ferry keys generate DIR`)");
    } else {
      agent::agentLog().warn("no keys: CurveZMQ is off, and streams are received on {} only",
                       opts.data_address);
    }
    // Bound first: a taken metrics port fails the start before anything else.
    std::optional<metrics::MetricsServer> metrics_server;
    if (!metrics_address.empty()) metrics_server.emplace(metrics_address);
    LocalCommandRunner runner;
    if (cfg.postcopy) {
      std::string did = raiseSysctlsForPostcopy();
      if (!did.empty()) agent::agentLog().info("{}", did);
      // Before the host's facts are read: they say whether post-copy may run.
      std::string guard = installPageServerGuard(runner);
      if (!guard.empty()) {
        agent::agentLog().warn(
            "post-copy is unavailable: the nftables guard of CRIU's page server failed ({})",
            guard);
      }
    }
    Engine engine(cfg, runner);
    zmq::context_t ctx;
    // With keys, streams are encrypted to this agent's key, and each admits
    // only the key the coordinator vouched for it besides asking for its
    // one-time token (the agent's commands install the ZAP handler on ctx).
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    if (int n = engine.removeStaleStaging()) {
      agent::agentLog().info("removed {} staging directories left by an earlier agent", n);
    }
    engine.serveNotify();  // containers run with --sdnotify=container
    // The container network: set up once the coordinator names it.
    agent::AgentNetwork network(opts.data_address,
                                sha256Hex(opts.name + "\n" + cfg.root.string()).substr(0, 6),
                                agent::localShell());
    engine.setNetworking(&network);
    agent::Agent agent(opts, engine, ctx);
    agent.setNetwork(&network);
    if (metrics_server) {
      metrics_server->add(agent.metricsRegistry());
      agent::agentLog().info("metrics on {}", metrics_server->url());
    }
    agent::agentLog().info("agent {} up: coordinator {}, streams on {}, {} containers adopted", opts.name,
                     opts.coordinator, opts.data_address, engine.list().size());
    // Under systemd (Type=notify): ready now, the watchdog petted from the
    // loop, and a stop that drains first asks for the time it may take.
    ServiceNotifier service;
    service.ready("serving; coordinator " + opts.coordinator);
    bool said_stopping = false;
    agent.run(g_stop, [&] {
      service.tick();
      if (g_stop && !said_stopping) {
        said_stopping = true;
        if (opts.drain_on_stop.count() > 0) {  // the loop turns on while it drains
          service.stopping("draining this host before stopping");
          service.extendTimeout(opts.drain_on_stop + std::chrono::seconds(30));
        }
      }
    });
    if (!said_stopping) service.stopping("stopping; the containers keep running");
    agent::agentLog().info("agent {} stopping; its containers keep running", opts.name);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ferry-agent: error: " << e.what() << "\n";
    return 1;
  }
}
