// The local cluster behind `ferry cluster up` and `ferry cluster down`: one
// ferry-coordinator and N ferry-agents (hostA, hostB, ...) on this machine,
// each agent on its own loopback address (127.0.0.2, 127.0.0.3, ...) with its
// own state root, run dir and cgroup parent (DESIGN.md, "Test hosts on one
// machine").
//
// Everything lives in one directory DIR (default /var/lib/ferry/cluster):
//   DIR/cluster.json      what is running: pids, addresses, paths (the record)
//   DIR/coordinator/      the coordinator's state (SQLite)
//   DIR/hosts/hostX/      each host's state root (images, volumes, containers)
//   DIR/logs/NAME.log     each process's stdout and stderr, appended
// Runtime state is kept short and apart, because conmon's socket paths are
// limited to ~108 characters: /run/ferry-cluster-ID/hostX, where ID is a short
// hash of DIR; the containers' cgroups are under /ferry-cluster-ID/hostX, so
// two clusters (or the test suite's hosts) never share cgroups.
//
// The processes run detached (their own session), so they outlive the CLI
// that started them; `down` is what stops them. `down` removes every
// container but keeps DIR's state and logs: the next `up` in the same DIR
// finds its images (and volumes) again.
//
// With ClusterOptions::network_cidr, each host has a network of its own
// instead of a loopback address: tools/cluster_network.h.
//
// Thread-safety: up() and down() on the same DIR serialise on a lock file in
// DIR; they block for as long as they take (up: until every agent registered
// or ClusterOptions::wait; down: up to 10 s per group of processes, plus
// removing containers).
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "tools/cluster_network.h"

namespace ferry::cluster {

// Receives one line of progress at a time ("coordinator up on ...").
using ProgressFn = std::function<void(const std::string&)>;

struct ClusterOptions {
  int hosts = 2;  // 1..20: hostA, hostB, ...
  std::filesystem::path dir = "/var/lib/ferry/cluster";
  // With keys, where the coordinator listens (loopback only: 127.x.x.x).
  // Without keys, it listens on a unix socket in the cluster's run dir.
  std::string coordinator_address = "127.0.0.1";
  int port = 7000;
  std::chrono::milliseconds heartbeat{1000};
  std::chrono::seconds wait{30};  // for the coordinator and every agent to come up
  // Where ferry-agent, ferry-coordinator and ferry-engine are; empty: found
  // by findTool().
  std::filesystem::path bin_dir;
  // Extra options for every ferry-agent, after those up sets (e.g.
  // {"--stream-timeout", "3000"}).
  std::vector<std::string> agent_args;
  std::vector<std::string> coordinator_args;  // added to ferry-coordinator's
  // CurveZMQ keys (`ferry keys generate DIR --hosts hostA,...`): the
  // coordinator admits the keys listed there, agents use NAME.key, and this
  // launcher and the CLI client.key. Empty: no keys, loopback only.
  std::filesystem::path keys_dir;
  // Where the processes run, for tests that put hosts in network namespaces
  // of their own (tests/integration/test_network.h): a launcher is a command
  // that execs the program in place, keeping its pid (e.g. {"nsenter",
  // "--net=/run/netns/NS", "--"}). Non-loopback addresses need keys_dir.
  struct Placement {
    std::string address;                // the agent's --listen
    std::vector<std::string> launcher;  // empty: this machine's network
  };
  // Empty: every agent here, on 127.0.0.2, 127.0.0.3, ...; else one per host.
  std::vector<Placement> host_placements;
  // The coordinator's, with coordinator_address. up() does not check its
  // port first then: the coordinator binds it in another namespace.
  std::vector<std::string> coordinator_launcher;
  // The containers' network (the coordinator's --network-cidr), e.g.
  // 10.66.0.0/16; it may overlap no route of this machine. With it, every
  // host gets a network namespace of its own on a bridge
  // (tools/cluster_network.h); the coordinator listens on the bridge's
  // address with CurveZMQ keys (keys_dir, else DIR/keys, made as needed);
  // this machine routes the range via hostA. Excludes host_placements and
  // coordinator_launcher, which it sets itself.
  std::string network_cidr;
  // Prometheus metrics (`--metrics`) on the coordinator and every agent, each
  // on a free port: the coordinator on 127.0.0.1, an agent on its own
  // address; a process in a network namespace of its own (a launcher, or
  // --network) on port kMetricsPort of its address, which this machine
  // reaches.
  bool metrics = true;
};

// The port of a process's metrics in a network namespace of its own, where
// nothing else binds.
inline constexpr int kMetricsPort = 9464;

struct ClusterHost {
  std::string name;               // hostA
  std::string address;            // data-plane address, 127.0.0.2
  std::filesystem::path root;     // DIR/hosts/hostA
  std::filesystem::path run_dir;  // /run/ferry-cluster-ID/hostA
  std::string cgroup_parent;      // /ferry-cluster-ID/hostA
  std::filesystem::path log;      // DIR/logs/hostA.log
  std::vector<std::string> launcher;  // ClusterOptions::Placement's
  int pid = 0;
  // /proc/PID/stat's start time: with the pid, it tells this agent from a
  // later process that got the same pid.
  uint64_t start_time = 0;
  std::string metrics_url;  // http://ADDR:PORT/metrics; "" without metrics
};

struct ClusterState {
  std::filesystem::path dir;         // absolute
  std::string id;                    // short hash of dir: names the run dirs and cgroups
  std::string coordinator_endpoint;  // ipc:///run/ferry-cluster-ID/coordinator.sock, or
                                     // with keys tcp://127.0.0.1:7000
  int coordinator_pid = 0;
  uint64_t coordinator_start_time = 0;
  std::filesystem::path coordinator_state;  // DIR/coordinator
  std::filesystem::path coordinator_log;    // DIR/logs/coordinator.log
  std::string coordinator_metrics_url;      // http://ADDR:PORT/metrics; "" without metrics
  std::vector<ClusterHost> hosts;
  std::filesystem::path run_base;  // /run/ferry-cluster-ID
  std::string cgroup_base;         // /ferry-cluster-ID
  int64_t heartbeat_ms = 1000;
  std::filesystem::path keys_dir;  // empty: no CurveZMQ
  std::vector<std::string> coordinator_launcher;
  int64_t created_unix = 0;
  // The executables `up` started; `down` runs the same ferry-engine.
  std::filesystem::path agent_bin, coordinator_bin, engine_bin;
  ClusterNetwork network;  // with ClusterOptions::network_cidr; else empty
};

// For `--json` output and for DIR/cluster.json.
void to_json(nlohmann::json& j, const ClusterState& s);
void from_json(const nlohmann::json& j, ClusterState& s);

// Starts the cluster and waits until the coordinator lists every agent as
// up (with a network: and every agent logged its container network ready,
// so a container run next gets an address); returns what runs (also written to DIR/cluster.json). Throws Error:
//  - kInvalidInput when DIR/cluster.json names processes that still run
//    (a record whose processes are all gone is replaced), when the port is
//    taken, or for bad options;
//  - kPermanent when a process exits during startup, kRetryable when the
//    wait runs out; the message holds the tail of that process's log and
//    what to do. Whatever was started has been stopped by then, and the
//    network (namespaces, bridge, route) removed.
ClusterState up(const ClusterOptions& opts, const ProgressFn& progress = {});

struct DownReport {
  int processes_stopped = 0;  // coordinator and agents that were running
  int containers_removed = 0;
  // Everything that was not as it should be, or failed, one line each: a
  // process that needed SIGKILL, a leftover mount or cgroup, a container
  // that could not be removed. Empty when all went cleanly.
  std::vector<std::string> problems;
};

// Takes the cluster in DIR down: SIGTERM the agents, then the coordinator
// (SIGKILL after 10 s); removes every container with ferry-engine (agents
// leave containers running on SIGTERM, by design); then checks and cleans:
// processes in the cluster's cgroups, mounts below DIR or the run dirs (lazily
// unmounted), the run dirs, the cluster's empty cgroups, its network (the
// route, the hosts' namespaces, veths and bridge); finally removes
// DIR/cluster.json. Keeps DIR's state and logs. Best effort once the
// processes are stopped: every step runs, and what went wrong is in
// `problems`. Throws Error kInvalidInput when DIR holds no cluster.json.
DownReport down(const std::filesystem::path& dir, const ProgressFn& progress = {});

// DIR/cluster.json, or nullopt when there is none. Throws Error kPermanent
// when the file exists but is not a cluster record.
std::optional<ClusterState> readState(const std::filesystem::path& dir);

// Whether the coordinator or any agent recorded in `s` still runs (checked
// by pid and start time).
bool anyRunning(const ClusterState& s);

// The absolute path of the executable `name` (ferry-agent, ...). With
// bin_dir: bin_dir/name, or -- for a build tree's tools/ directory -- its
// sibling agent/, coordinator/ or tools/ directories. Without: the same
// places next to the running executable, then PATH. Throws Error
// kInvalidInput naming where it looked.
std::filesystem::path findTool(const std::string& name, const std::filesystem::path& bin_dir = {});

}  // namespace ferry::cluster
