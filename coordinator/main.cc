// ferry-coordinator: knows every host and container of the cluster. Runs
// until SIGTERM or SIGINT; its state (SQLite) survives restarts.
#include <grp.h>
#include <signal.h>

#include <atomic>
#include <iostream>

#include "coordinator/command_line.h"
#include "coordinator/coordinator.h"
#include "common/service_notify.h"
#include "common/time_util.h"
#include "metrics/metrics_server.h"

using namespace ferry;

namespace {

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  auto parsed = coord::parseCoordinatorCommandLine({argv + 1, argv + argc});
  if (auto* end = std::get_if<cli::ParseExit>(&parsed)) return cli::printParseExit(*end);
  auto& [opts, keys_dir, metrics_address] = std::get<coord::CoordinatorCommandLine>(parsed);
  try {
    // Many connections need many fds: take what the hard limit allows.
    proto::raiseFdLimit();
    // The unix socket admits root, and the `ferry` group when there is one.
    if (struct group* g = ::getgrnam("ferry")) opts.socket_group = g->gr_gid;
    if (!keys_dir.empty()) {
      opts.keys = proto::readKeyPair(std::filesystem::path(keys_dir) / "coordinator.key");
      coord::readKeyDirectory(keys_dir, opts.access);
      std::cerr << "ferry-coordinator: CurveZMQ on; " << opts.access.host_keys.size()
                << " host keys and " << opts.access.client_keys.size()
                << " client keys allowed\n";
    } else {
      std::cerr << "ferry-coordinator: no keys: CurveZMQ is off; the CLI and local agents come "
                   "in over the unix socket (root"
                << (opts.socket_group != static_cast<gid_t>(-1) ? " and group ferry" : "")
                << " only), TCP admits only the --agent-address agents\n";
    }
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    // Bound first: a taken metrics port fails the start before anything else.
    std::optional<metrics::MetricsServer> metrics_server;
    if (!metrics_address.empty()) metrics_server.emplace(metrics_address);
    zmq::context_t ctx;
    // Its ZAP handler admits whom opts.access names (coordinator/peer_access.h).
    coord::Coordinator c(opts, ctx, [] { return unixMillis(); });
    std::cerr << "ferry-coordinator: listening on " << c.endpoint() << ", state in "
              << opts.state_dir.string() << "\n";
    if (metrics_server) {
      metrics_server->add(c.metricsRegistry());
      std::cerr << "ferry-coordinator: metrics on " << metrics_server->url() << "\n";
    }
    ServiceNotifier service;  // under systemd (Type=notify); otherwise idle
    service.ready("serving on " + c.endpoint());
    c.run(g_stop, [&] { service.tick(); });
    service.stopping("stopping");
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ferry-coordinator: error: " << e.what() << "\n";
    return 1;
  }
}
