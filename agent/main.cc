// ferry-agent: one per host. Wires the engine and the control protocol
// together (agent/agent.h) and runs until SIGTERM or SIGINT.
#include <signal.h>

#include <atomic>
#include <cstring>
#include <iostream>

#include "agent/agent.h"
#include "common/log.h"
#include "engine/engine.h"

using namespace ferry;

namespace {

constexpr const char* kUsage = R"(usage: ferry-agent --name NAME [OPTIONS]

Runs this host's ferry agent: registers with the coordinator, reports its
containers and load every heartbeat, and carries out the coordinator's
commands (run, stop, remove, logs, and the steps of a live migration).
Containers outlive the agent; a restarted agent adopts them again.

OPTIONS
  --name NAME            this host's name in the cluster (required)
  --coordinator ENDPT    the coordinator (default tcp://127.0.0.1:7000)
  --listen ADDR          address migration streams are received on
                         (default 127.0.0.1); must be a loopback address
                         unless --keys is given
  --root DIR             state root (default /var/lib/ferry/NAME)
  --run-dir DIR          runtime dir (default /run/ferry/NAME)
  --cgroup-parent P      parent cgroup of the containers (default /ferry/NAME)
  --keys DIR             CurveZMQ keys (from `ferry keys generate`): NAME.key
                         and coordinator.pub
  --heartbeat MS         heartbeat interval (default 1000)
  --criu PATH            CRIU to use (default: the one recorded by the installer)
  --stream-timeout MS    a migration stream whose peer is silent this long
                         fails and rolls back (default 60000)
  --memory-capacity MIB  memory this host offers containers, for the drain and
                         rebalance planners (default: all of the host's memory)
  --drain-on-stop SECS   on SIGTERM (as systemd stops it), ask the coordinator to
                         drain this host -- live-migrate every container off it
                         -- and wait up to SECS for that before exiting
                         (default 0: exit at once, the containers stay)
  --drain-on-memory-pressure PCT
                         ask for this host to be drained when memory pressure
                         (PSI "some" avg10, /proc/pressure/memory) stays above
                         PCT for three heartbeats (default 0: off)
  --drain-on-disk-free PCT
                         the same when the state root's file system has less
                         than PCT % free for three heartbeats (default 0: off)
  -h, --help             this text
)";

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

bool isLoopback(const std::string& addr) { return addr.rfind("127.", 0) == 0 || addr == "::1"; }

}  // namespace

int main(int argc, char** argv) {
  agent::AgentOptions opts;
  opts.coordinator = "tcp://127.0.0.1:7000";
  opts.data_address = "127.0.0.1";
  EngineConfig cfg;
  std::string keys_dir;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") return std::cout << kUsage, 0;
      if (a == "--name") opts.name = value();
      else if (a == "--coordinator") opts.coordinator = value();
      else if (a == "--listen") opts.data_address = value();
      else if (a == "--root") cfg.root = value();
      else if (a == "--run-dir") cfg.run_dir = value();
      else if (a == "--cgroup-parent") cfg.cgroup_parent = value();
      else if (a == "--keys") keys_dir = value();
      else if (a == "--heartbeat") opts.heartbeat = std::chrono::milliseconds(std::stoi(value()));
      else if (a == "--criu") cfg.tools.criu = value();
      else if (a == "--stream-timeout") opts.stream_timeout = std::chrono::milliseconds(std::stoi(value()));
      else if (a == "--memory-capacity") opts.memory_capacity = std::stoull(value()) << 20;
      else if (a == "--drain-on-stop") opts.drain_on_stop = std::chrono::seconds(std::stoi(value()));
      else if (a == "--drain-on-memory-pressure") opts.drain_on_memory_pressure = std::stod(value());
      else if (a == "--drain-on-disk-free") opts.drain_on_disk_free = std::stod(value());
      else throw std::invalid_argument("unknown option '" + a + "'");
    }
    if (opts.name.empty()) throw std::invalid_argument("--name is required");
  } catch (const std::exception& e) {
    std::cerr << "ferry-agent: " << e.what() << "\n(see ferry-agent --help)\n";
    return 2;
  }
  try {
    if (!keys_dir.empty()) {
      opts.keys = proto::readKeyPair(std::filesystem::path(keys_dir) / (opts.name + ".key"));
      opts.coordinator_key = proto::readPublicKey(std::filesystem::path(keys_dir) / "coordinator.pub");
    } else if (!isLoopback(opts.data_address)) {
      throw Error(ErrorCategory::kInvalidInput,
                  "without --keys, streams are unencrypted and unauthenticated: --listen must be "
                  "a loopback address (generate keys with `ferry keys generate DIR`)");
    } else {
      engineLog().warn("no keys: CurveZMQ is off, and streams are received on {} only",
                       opts.data_address);
    }
    cfg.host_name = opts.name;
    LocalCommandRunner runner;
    Engine engine(cfg, runner);
    zmq::context_t ctx;
    // With keys, streams are encrypted to this agent's key. No ZAP
    // allow-list on the data plane: a stream is authorised by the one-time
    // token the coordinator issued for it (libzmq admits any client key when
    // no ZAP handler is bound).
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    if (int n = engine.removeStaleStaging()) {
      engineLog().info("removed {} staging directories left by an earlier agent", n);
    }
    engine.serveNotify();  // containers run with --sdnotify=container
    agent::Agent agent(opts, engine, ctx);
    engineLog().info("agent {} up: coordinator {}, streams on {}, {} containers adopted", opts.name,
                     opts.coordinator, opts.data_address, engine.list().size());
    agent.run(g_stop);
    engineLog().info("agent {} stopping; its containers keep running", opts.name);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ferry-agent: error: " << e.what() << "\n";
    return 1;
  }
}
