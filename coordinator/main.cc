// ferry-coordinator: knows every host and container of the cluster. Runs
// until SIGTERM or SIGINT; its state (SQLite) survives restarts.
#include <signal.h>

#include <atomic>
#include <iostream>
#include <set>

#include "coordinator/coordinator.h"
#include "common/time_util.h"

using namespace ferry;

namespace {

constexpr const char* kUsage = R"(usage: ferry-coordinator [OPTIONS]

Runs the ferry coordinator: agents register with it and report their
containers and load; the ferry CLI asks it about the cluster. A host that
misses heartbeats is marked down.

OPTIONS
  --listen ENDPOINT   where agents and the CLI connect (default tcp://127.0.0.1:7000)
  --state DIR         state directory, SQLite (default /var/lib/ferry/coordinator)
  --keys DIR          CurveZMQ keys (from `ferry keys generate`): coordinator.key,
                      and one NAME.pub per agent or client allowed in
  --heartbeat MS      the agents' heartbeat interval (default 1000)
  --missed N          heartbeats missed before a host is down (default 5)
  --rebalance-every S every S seconds, rebalance by itself (as `ferry rebalance`)
                      when no drain or rebalance is under way and the plan has
                      moves (default: never)
  --rebalance-high PCT, --rebalance-low PCT, --rebalance-max-moves N
                      its marks and limit (default 80, 50, 10)
  -h, --help          this text
)";

std::atomic<bool> g_stop{false};
void onSignal(int) { g_stop = true; }

}  // namespace

int main(int argc, char** argv) {
  coord::CoordinatorOptions opts;
  opts.state_dir = "/var/lib/ferry/coordinator";
  std::string keys_dir;
  try {
    for (int i = 1; i < argc; ++i) {
      std::string a = argv[i];
      auto value = [&]() -> std::string {
        if (i + 1 >= argc) throw std::invalid_argument(a + " needs a value");
        return argv[++i];
      };
      if (a == "-h" || a == "--help") return std::cout << kUsage, 0;
      if (a == "--listen") opts.listen = value();
      else if (a == "--state") opts.state_dir = value();
      else if (a == "--keys") keys_dir = value();
      else if (a == "--heartbeat") opts.heartbeat = std::chrono::milliseconds(std::stoi(value()));
      else if (a == "--missed") opts.missed_heartbeats = std::stoi(value());
      else if (a == "--rebalance-every") opts.rebalance_every = std::chrono::seconds(std::stoi(value()));
      else if (a == "--rebalance-high") opts.rebalance.high_percent = std::stod(value());
      else if (a == "--rebalance-low") opts.rebalance.low_percent = std::stod(value());
      else if (a == "--rebalance-max-moves") opts.rebalance.max_moves = std::stoi(value());
      else throw std::invalid_argument("unknown option '" + a + "'");
    }
    if (opts.rebalance_every.count() < 0) throw std::invalid_argument("--rebalance-every must be 0 or more");
    coord::validateRebalanceOptions(opts.rebalance);
  } catch (const std::exception& e) {
    std::cerr << "ferry-coordinator: " << e.what() << "\n(see ferry-coordinator --help)\n";
    return 2;
  }
  try {
    if (!keys_dir.empty()) {
      opts.keys = proto::readKeyPair(std::filesystem::path(keys_dir) / "coordinator.key");
    } else if (opts.listen.find("tcp://127.") != 0 && opts.listen.find("ipc://") != 0) {
      throw Error(ErrorCategory::kInvalidInput,
                  "without --keys, the coordinator listens on loopback only (got " + opts.listen +
                      "); generate keys with `ferry keys generate DIR`");
    } else {
      std::cerr << "ferry-coordinator: no keys: CurveZMQ is off, listening on " << opts.listen
                << " (loopback only)\n";
    }
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    ::sigaction(SIGTERM, &sa, nullptr);
    ::sigaction(SIGINT, &sa, nullptr);
    zmq::context_t ctx;
    // With keys, only the agents and clients whose public keys are in DIR
    // get in (the ZAP handler must exist before the socket binds).
    std::optional<proto::ZapAuthenticator> zap;
    if (opts.keys) {
      std::set<std::string> allowed;
      for (const auto& e : std::filesystem::directory_iterator(keys_dir)) {
        if (e.path().extension() == ".pub" && e.path().stem() != "coordinator") {
          allowed.insert(proto::readPublicKey(e.path()));
        }
      }
      std::cerr << "ferry-coordinator: CurveZMQ on; " << allowed.size() << " keys allowed\n";
      zap.emplace(ctx, std::move(allowed));
    }
    coord::Coordinator c(opts, ctx, [] { return unixMillis(); });
    std::cerr << "ferry-coordinator: listening on " << c.endpoint() << ", state in "
              << opts.state_dir.string() << "\n";
    c.run(g_stop);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ferry-coordinator: error: " << e.what() << "\n";
    return 1;
  }
}
