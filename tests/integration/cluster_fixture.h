// The fixture of the tests that drive a local cluster through the `ferry`
// CLI: a real coordinator and real agents (`ferry cluster up`) on loopback
// addresses, the counter image on every host, and helpers to look at what
// is really on a host (runc's state, logs, volumes) rather than at what the
// agents report.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/random.h"
#include "engine/engine.h"
#include "common/fs.h"
#include "common/log.h"
#include "engine/runtime/process.h"
#include "protocol/rpc.h"
#include "tests/integration/test_host.h"
#include "tools/cluster.h"

namespace ferry::testing {
namespace {

using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kPort = 7393;
constexpr int kStreamTimeoutMs = 8000;  // agents' --stream-timeout in these tests

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

class ClusterMigration : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_REQUIRE_PREREQUISITES();
    dir_ = "/var/tmp/ferry-test-mig-" + std::to_string(randomU64() % 1000000);
    cluster::ClusterOptions o;
    o.dir = dir_;
    o.port = kPort;
    o.hosts = hostCount();
    o.heartbeat = milliseconds(200);
    o.bin_dir = fs::path(FERRY_AGENT_BIN).parent_path();
    // A dead peer is noticed within 8 s instead of 30. Not less: the frozen
    // dump of a 768 MiB workload is staged on disk before its first chunk
    // goes, and took over 3 s on a loaded 2-core machine (the target gave
    // up "waiting for the next chunk").
    o.agent_args = {"--stream-timeout", std::to_string(kStreamTimeoutMs)};
    for (const auto& a : extraAgentArgs()) o.agent_args.push_back(a);
    configure(o);
    state_ = cluster::up(o);
    CliResult r = ferry({"image", "import", "counter", FERRY_TEST_IMAGE, "--all"});
    ASSERT_EQ(r.exit_code, 0) << r.err;
    waitFor(
        [&] {
          for (const auto& h : state_.hosts) {
            if (!imagesOn(h.name)) return false;
          }
          return true;
        },
        seconds(20), "every host to report the counter image");
  }

  virtual int hostCount() const { return 2; }
  virtual std::vector<std::string> extraAgentArgs() const { return {}; }
  // Last word on the cluster's options before it starts (keys, placements
  // in network namespaces, ...).
  virtual void configure(cluster::ClusterOptions&) {}

  void TearDown() override {
    extra_agents_.clear();  // SIGKILL: down removes their containers too
    if (extra_coordinator_)
      extra_coordinator_->kill(SIGTERM), extra_coordinator_->wait(), extra_coordinator_.reset();
    if (!dir_.empty() && cluster::readState(dir_)) {
      cluster::DownReport d = cluster::down(dir_);
      for (const auto& p : d.problems) ADD_FAILURE() << "cluster down: " << p;
    }
    engines_.clear();
    if (!dir_.empty()) bestEffort("removing the test cluster", [&] { removeTree(dir_); });
  }

  CliResult ferry(std::vector<std::string> args) {
    std::vector<std::string> argv = {FERRY_BIN, "--coordinator", state_.coordinator_endpoint,
                                     "--timeout", "120"};
    if (!state_.keys_dir.empty()) argv.insert(argv.end(), {"--keys", state_.keys_dir.string()});
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult p = runner_.run(argv, {});
    return {p.exit_code, p.out, p.err};
  }

  // Until the coordinator lists host `name` as up (or as down).
  void waitForHostUp(const std::string& name, bool up = true) {
    waitFor(
        [&] {
          CliResult h = ferry({"--json", "hosts"});
          if (h.exit_code != 0) return false;
          for (const auto& x : json::parse(h.out)) {
            if (x["name"] == name) return x["up"].get<bool>() == up;
          }
          return false;
        },
        seconds(30), "the coordinator to see " + name + (up ? " up" : " down"));
  }

  // A client of the coordinator, with the cluster's client key if it has keys.
  proto::RpcClient client(zmq::context_t& ctx) {
    std::optional<proto::CurveClientKeys> curve;
    if (!state_.keys_dir.empty()) {
      curve = proto::CurveClientKeys{proto::readKeyPair(state_.keys_dir / "client.key"),
                                     proto::readPublicKey(state_.keys_dir / "coordinator.pub")};
    }
    return proto::RpcClient(ctx, state_.coordinator_endpoint, curve);
  }

  const cluster::ClusterHost& host(const std::string& name) {
    for (const auto& h : state_.hosts) {
      if (h.name == name) return h;
    }
    throw std::runtime_error("no host " + name);
  }

  // The engine on a host's root, for looking at what is really there
  // (runc's state, the container's log and volume), not at what the agent
  // reports.
  Engine& engine(const std::string& name) {
    auto& e = engines_[name];
    if (!e) {
      EngineConfig cfg;
      cfg.host_name = name;
      cfg.root = host(name).root;
      cfg.run_dir = host(name).run_dir;
      cfg.cgroup_parent = host(name).cgroup_parent;
      e = std::make_unique<Engine>(cfg, runner_);
    }
    return *e;
  }

  std::optional<ContainerInfo> on(const std::string& h, const std::string& name) {
    for (auto& c : engine(h).list()) {
      if (c.name() == name) return c;
    }
    return std::nullopt;
  }

  bool imagesOn(const std::string& h) {
    zmq::context_t ctx;
    proto::RpcClient cli = client(ctx);
    auto r = cli.call([](proto::Message::Builder m) { m.setListHosts(); }, seconds(5));
    for (auto x : r->root<proto::Message>().getHosts()) {
      if (std::string(x.getName().cStr()) == h) return x.getImages().size() > 0;
    }
    return false;
  }

  // The counter, writing to volume "data", after changing its rootfs: one
  // file rewritten, one deleted, one added.
  void runDemo(const std::string& h, const std::vector<std::string>& extra = {}) {
    std::vector<std::string> args = {
        "run",
        "--host",
        h,
        "--name",
        "demo",
        "-v",
        "data:/data",
        "counter",
        "/bin/sh",
        "-c",
        "echo changed > /opt/app/a && rm /opt/app/b && echo new > /opt/app/c && "
        "exec /usr/local/bin/counter --file /data/counter --interval-ms 50"};
    for (const auto& e : extra) args.back() += " " + e;
    CliResult r = ferry(args);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    waitFor([&] { return counterValues(engine(h), "demo").size() >= 5; }, seconds(20),
            "demo to count");
    waitFor(
        [&] {
          CliResult ps = ferry({"--json", "ps"});
          return ps.exit_code == 0 && ps.out.find("\"running\"") != std::string::npos;
        },
        seconds(20), "the coordinator to see demo running");
  }

  // Until the coordinator lists host h as down.
  void waitForHostDown(const std::string& h) {
    waitFor(
        [&] {
          CliResult r = ferry({"--json", "hosts"});
          for (const auto& x : json::parse(r.out)) {
            if (x["name"] == h) return !x["up"].get<bool>();
          }
          return false;
        },
        seconds(20), "the coordinator to see " + h + " down");
  }

  // Every copy of demo that runs, on any host, as runc sees it.
  int runningCopies() {
    int n = 0;
    for (const auto& h : state_.hosts) {
      auto c = on(h.name, "demo");
      n += c && (c->status == ContainerStatus::kRunning || c->status == ContainerStatus::kPaused);
    }
    return n;
  }

  // `name` runs on `h` as runc sees it, and its counter goes on there,
  // unbroken (never restarted, no line lost or repeated).
  void expectCountingOn(const std::string& h, const std::string& name) {
    auto c = on(h, name);
    ASSERT_TRUE(c) << name << " is not on " << h;
    EXPECT_EQ(c->status, ContainerStatus::kRunning);
    size_t n = counterValues(engine(h), name).size();
    waitFor([&] { return counterValues(engine(h), name).size() > n + 3; }, seconds(20),
            name + " to go on counting on " + h);
    expectUnbroken(counterValues(engine(h), name));
  }

  // The counter values show no reset and no gap bigger than a freeze.
  static void expectUnbroken(const std::vector<unsigned long>& v) {
    ASSERT_FALSE(v.empty());
    for (size_t i = 1; i < v.size(); ++i) ASSERT_EQ(v[i], v[i - 1] + 1) << "at line " << i;
  }

  // Migrates demo hostA -> hostB through the coordinator directly, so the
  // test sees the progress as it comes (to strike mid-transfer). Throws the
  // migration's error; `timeout` is the longest silence. Without pre-copy
  // unless given rounds.
  void migrateDemoWatching(std::chrono::milliseconds timeout,
                           const std::function<void(proto::Progress::Reader)>& on_progress,
                           int precopy = 0) {
    zmq::context_t ctx;
    proto::RpcClient cli = client(ctx);
    cli.call(
        [precopy](proto::Message::Builder m) {
          auto mg = m.initMigrate();
          mg.setContainer("demo");
          mg.setSource("hostA");
          mg.setTarget("hostB");
          mg.setPrecopy(precopy);
        },
        timeout, on_progress);
  }

  // The last migration in history, once resolved (not "in progress").
  // With `outcome`: until the newest one's outcome is that.
  json resolvedMigration(const std::string& outcome = "") {
    json last;
    waitFor(
        [&] {
          CliResult h = ferry({"history", "--json"});
          if (h.exit_code != 0) return false;
          json hist = json::parse(h.out);
          if (hist.empty()) return false;
          last = hist[0];
          const std::string now = last["outcome"].get<std::string>();
          return outcome.empty() ? now.rfind("in progress", 0) != 0 : now == outcome;
        },
        seconds(90), outcome.empty() ? "the migration to be resolved" : "the outcome " + outcome);
    return last;
  }

  // Sends `request` and SIGKILLs the coordinator at the first progress for
  // which `when` holds; returns once it is dead (false: `when` never held).
  bool killCoordinatorDuring(const proto::Fill& request,
                             const std::function<bool(proto::Progress::Reader)>& when) {
    zmq::context_t ctx;
    proto::RpcClient cli = client(ctx);
    bool killed = false;
    try {
      cli.call(request, seconds(5), [&](proto::Progress::Reader p) {
        if (!killed && when(p)) {
          ::kill(state_.coordinator_pid, SIGKILL);
          killed = true;
        }
      });
    } catch (const Error&) {
      // No answer: the coordinator is gone.
    }
    if (killed) {
      waitFor([&] { return !processAlive(state_.coordinator_pid); }, seconds(10),
              "the coordinator to die");
    }
    return killed;
  }

  // A new coordinator on the same state, after the test killed the first;
  // `env`: KEY=VALUE entries added to its environment.
  void restartCoordinator(const std::vector<std::string>& extra = {},
                          const std::vector<std::string>& env = {}) {
    std::vector<std::string> argv = state_.coordinator_launcher;
    argv.insert(argv.end(), {FERRY_COORDINATOR_BIN, "--listen", state_.coordinator_endpoint,
                             "--state", state_.coordinator_state.string(), "--heartbeat", "200",
                             "--missed", "5"});
    if (!state_.keys_dir.empty()) argv.insert(argv.end(), {"--keys", state_.keys_dir.string()});
    argv.insert(argv.end(), extra.begin(), extra.end());
    extra_coordinator_ =
        spawnChild(argv, (fs::path(dir_) / "logs" / "coordinator-restarted.log").string(), env);
  }

  // A CRIU that fails every restore: a wrapper that says so and exits 1
  // when runc starts it as a worker (`criu swrk`, how runc runs every
  // restore); `--version` and `check` go to the real CRIU, so the host still
  // registers as compatible.
  fs::path writeBrokenCriu() {
    fs::path wrapper = fs::path(dir_) / "broken-criu";
    writeFileAtomic(
        wrapper,
        "#!/bin/sh\nif [ \"$1\" = swrk ]; then\n"
        "  echo 'Error (criu/image.c:42): injected by the test: corrupted image pages-1.img' >&2\n"
        "  exit 1\nfi\nexec " +
            defaultCriuPath() + " \"$@\"\n",
        0755);
    return wrapper;
  }

  // A CRIU whose restores wait: when runc starts it as a worker (`criu
  // swrk`, how runc runs every restore) it creates `entered`, then waits
  // until the test creates `release`, then goes on as the real CRIU. Why a
  // fake: a restore that outlasts a deadline, on any machine, whatever its
  // speed.
  fs::path writeHeldCriu(const fs::path& entered, const fs::path& release) {
    fs::path wrapper = fs::path(dir_) / "held-criu";
    writeFileAtomic(wrapper,
                    "#!/bin/sh\nif [ \"$1\" = swrk ]; then\n  : > '" + entered.string() +
                        "'\n  while [ ! -e '" + release.string() +
                        "' ]; do sleep 0.05; done\nfi\nexec " + defaultCriuPath() + " \"$@\"\n",
                    0755);
    return wrapper;
  }

  // A new agent for host `name` (the test stopped its first), with `extra`
  // arguments, run through `wrapper` (a command that execs the agent, e.g.
  // setpriv) when given, `env` (KEY=VALUE) added to its environment.
  // Returns once it has registered.
  Child startAgent(const std::string& name, const std::vector<std::string>& extra,
                   const std::vector<std::string>& wrapper = {},
                   const std::vector<std::string>& env = {}) {
    const auto& h = host(name);
    std::vector<std::string> argv = wrapper;
    argv.insert(argv.end(), h.launcher.begin(), h.launcher.end());
    argv.insert(argv.end(),
                {FERRY_AGENT_BIN, "--name", h.name, "--coordinator", state_.coordinator_endpoint,
                 "--listen", h.address, "--root", h.root, "--run-dir", h.run_dir, "--cgroup-parent",
                 h.cgroup_parent, "--heartbeat", "200", "--stream-timeout",
                 std::to_string(kStreamTimeoutMs)});
    for (const auto& a : extraAgentArgs()) argv.push_back(a);
    if (!state_.keys_dir.empty()) argv.insert(argv.end(), {"--keys", state_.keys_dir.string()});
    argv.insert(argv.end(), extra.begin(), extra.end());
    fs::path log = fs::path(dir_) / "logs" / (name + "-restarted.log");
    Child c = spawnChild(argv, log.string(), env);
    // Registered: its hello answered (a command sent before that would be
    // failed as "restarted" once the hello arrives).
    waitFor(
        [&] {
          return pathExists(log) &&
                 readFile(log).find(name + ": registered with the coordinator") != std::string::npos;
        },
        seconds(20), name + "'s agent to register");
    return c;
  }

  fs::path dir_;
  cluster::ClusterState state_;
  LocalCommandRunner runner_;
  std::map<std::string, std::unique_ptr<Engine>> engines_;
  std::vector<Child> extra_agents_;
  std::optional<Child> extra_coordinator_;
};

// The lines of a container's output that start with `prefix`.
inline std::vector<std::string> workloadLines(Engine& e, const std::string& name,
                                       const std::string& prefix) {
  std::vector<std::string> out;
  for (const auto& l : e.logs(name)) {
    if (l.text.rfind(prefix, 0) == 0) out.push_back(l.text);
  }
  return out;
}

}  // namespace
}  // namespace ferry::testing
