// ferry-coordinator's core: one ROUTER for agents and the CLI. It records
// what agents report (hello, heartbeats) in the StateStore, marks hosts that
// miss heartbeats as down, answers the CLI, forwards the CLI's container
// commands to the agent that holds the container, and drives migrations.
//
// A migration (DESIGN.md, "A migration, step by step") is planned here
// (container, hosts, compatibility of their recorded metadata), then
// carried out by its MigrationMachine (migration_machine.h, pure): the
// coordinator feeds it the agents' answers and failures and executes what
// it says -- commands, persisted phases, cleanups a host owes while it is
// unreachable (done when it is back), progress and the final answer.
//
// Thread-safety: run() owns the socket and the store; one thread.
#pragma once

#include <atomic>
#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "common/ipv4.h"
#include "coordinator/host_registry.h"
#include "coordinator/migration_machine.h"
#include "coordinator/peer_access.h"
#include "coordinator/planner.h"
#include "protocol/figures_json.h"
#include "coordinator/state_store.h"
#include "metrics/coordinator_metrics.h"
#include "protocol/rpc.h"

namespace ferry::coord {

// Without keys, the CLI and local agents come in over a unix socket that
// admits root (and the `ferry` group) only.
inline constexpr const char* kDefaultSocket = proto::kDefaultCoordinatorSocket;
inline constexpr const char* kDefaultTcp = proto::kDefaultCoordinatorTcp;

struct CoordinatorOptions {
  std::string listen = kDefaultTcp;
  std::vector<std::string> also_listen;  // more endpoints, the same rules
  std::filesystem::path state_dir;
  std::chrono::milliseconds heartbeat{1000};  // what agents are told to keep
  int missed_heartbeats = 5;                  // then a host is down
  std::optional<proto::KeyPair> keys;
  // Who is admitted as what (peer_access.h): the keys' and, without keys,
  // the agents' addresses. Without keys, a tcp:// endpoint needs at least
  // one agent address and admits no CLI.
  AccessPolicy access;
  // An ipc:// socket file's group (-1: root's only), mode 0660 with one.
  gid_t socket_group = static_cast<gid_t>(-1);
  // Connections held at once at most, further kept below the fd limit
  // (proto::ConnectionLimit).
  size_t max_connections = 1024;
  // An agent's answer to a command (run, stop, prepare, commit, ...).
  // Above the agents' busy wait (90 s), which may come first.
  std::chrono::milliseconds command_timeout{150000};
  // A transfer silent this long (no progress, no verdict) fails.
  std::chrono::milliseconds transfer_timeout{600000};
  // After a restart, how long an unfinished migration waits for its target
  // to be heard from before it is resolved without it (a cleanup is kept).
  std::chrono::milliseconds resolve_grace{15000};
  // Every this long (0: never), a rebalance with `rebalance`'s marks runs by
  // itself when no drain or rebalance is under way and it has moves.
  std::chrono::milliseconds rebalance_every{0};
  // Finished migrations, events and ended drains kept in the state (the
  // newest this many of each; pruned once a minute).
  int64_t history_keep = 10000;
  RebalanceOptions rebalance;
  // The cluster network ("" none): every container gets an address of it
  // unless run with --network none (DESIGN.md, "Container network").
  std::string network_cidr;
};

class Coordinator {
 public:
  using Clock = std::function<int64_t()>;  // ms since the epoch
  Coordinator(CoordinatorOptions opts, zmq::context_t& ctx, Clock clock);

  std::string endpoint() const { return server_.endpoint(); }
  // Serves until `stop` is set. `each_turn` runs once a turn of the loop, at
  // least every 50 ms while it turns (the service manager's watchdog).
  void run(const std::atomic<bool>& stop, const std::function<void()>& each_turn = {});
  // Its series (metrics/coordinator_metrics.h), for a metrics::MetricsServer;
  // kept up to date by run(), scraped from any thread.
  const std::shared_ptr<prometheus::Registry>& metricsRegistry() const {
    return metrics_.registry();
  }

 private:
  using Request = proto::RpcServer::Request;
  using Steady = std::chrono::steady_clock;
  using OnReply = std::function<void(proto::Message::Reader)>;
  using OnError = std::function<void(const Error&, Fault)>;
  using OnProgress = std::function<void(proto::Progress::Reader)>;
  // A migration's end: committed (no failure) or rolled back (why).
  using OnMigrationDone =
      std::function<void(int64_t id, const std::optional<Error>& failure, uint64_t downtime_ms)>;

  // A command sent to an agent; exactly one of ok/fail is called: ok with
  // its final reply; fail with its error reply, or when the host is not
  // connected, goes down, restarts, or stays silent past the timeout (the
  // Fault says which).
  struct Pending {
    std::string host;
    std::string what;
    std::chrono::milliseconds timeout;
    Steady::time_point deadline;
    OnReply ok;
    OnError fail;
    OnProgress progress;
  };
  // A CLI request awaiting its final reply.
  struct Client {
    std::string peer;
    uint64_t id = 0;
  };
  // A migration under way: its protocol state (the machine) and what the
  // daemon keeps around it -- who watches, figures, timings.
  struct Run {
    explicit Run(MigrationMachine m) : machine(std::move(m)) {}
    MigrationMachine machine;
    std::optional<Client> client;  // none for a migration resumed after a restart
    Steady::time_point started, phase_started;
    proto::FiguresRecord figures;  // what the agents report and the phases timed here
    std::vector<std::string> warnings;
    OnMigrationDone on_done;         // a drain's or rebalance's, when it started it
    std::optional<Client> observer;  // a drain's or rebalance's client: sees progress
    Steady::time_point last_progress = Steady::now();
    std::string last_phase = "plan";
    uint64_t last_done = 0;
  };

  void handle(Request& r);
  bool isReply(const proto::Message::Reader& m) const;
  // Throws Error kInvalidInput when the sender may not send this message
  // (peer_access.h); false for an answer to drop unanswered.
  bool authorized(const Request& r);
  void onAgentReply(const Request& r);
  void onHello(const Request& r);
  void onHeartbeat(const Request& r);
  void heardFrom(const std::string& host);
  void markSilentHostsDown();
  // Sets the gauges (hosts, containers per host) from the store and the
  // registry; from the loop, each heartbeat interval.
  void updateGauges();

  void command(const std::string& host, const std::string& what, const proto::Fill& fill,
               std::chrono::milliseconds timeout, OnReply ok, OnError fail,
               OnProgress progress = {});
  void failPending(const std::string& host, const Error& e, Fault fault);
  void sendError(const Client& c, const Error& e);  // the final answer to a CLI request
  void expirePending();
  // Sends a CLI request on to `host` and relays the answer (and progress).
  void forward(const Request& r, const std::string& host, const std::string& what,
               const proto::Fill& cmd, std::chrono::milliseconds timeout,
               std::function<void(proto::Message::Reader)> on_ok = {},  // before the relay
               std::function<void()> on_end = {});  // after either answer, or none in time

  HostRow requireHost(const std::string& name, const std::string& role);
  // The public key of host `name` (its NAME.pub in --keys DIR); "" without
  // keys or when there is none.
  std::string publicKeyOf(const std::string& name) const;
  // The key of the client that sent `r`, to vouch for its stream; "" without
  // keys. Throws Error kInvalidInput when its connection's key is unknown.
  std::string requesterKey(const Request& r) const;
  bool hostUp(const std::string& name);
  void noteContainer(proto::Message::Reader m);
  ContainerRow locate(const std::string& container);
  void listHosts(const Request& r);
  void listContainers(const Request& r);
  void runContainer(const Request& r);
  // The answer to an agent's hello and heartbeats: ok, or the cluster
  // network and where each address lives.
  void answerAgent(const Request& r);
  // Addresses given to runs not answered yet: ip -> container.
  std::map<Ipv4, std::string> reserved_;
  Ipv4 last_given_;
  void readLogs(const Request& r);
  void listHistory(const Request& r, uint32_t limit);
  void importFile(const Request& r);
  void checkpointTo(const Request& r);

  struct MigrateRequest {
    std::string container, source, target;
    std::set<std::string> ignore;
    int precopy = -1;
    bool tcp_close = false;  // drop its TCP connections on purpose
    int postcopy = -1;       // 1 on, 0 off, -1 auto
    int compress = -1;       // the stream's zstd level; 0 none; -1 auto
  };
  void startMigration(const Request& r);
  struct Movable {
    HostRow source, target;
    ContainerRow container;  // as the source reports it
  };
  Movable checkMovable(const MigrateRequest& req);
  struct Fit {
    std::string send_image;  // the target lacks it: sent first
    std::vector<std::string> warnings;
    PostcopyChoice postcopy;
    bool nftables_lock = false;  // both hosts' CRIU lock networks with nftables
  };
  Fit checkFit(const MigrateRequest& req, const Movable& m);
  // Plans a migration and sends its first command; throws Error when it is
  // refused (nothing changed). `client` gets its progress and final reply.
  int64_t beginMigration(const MigrateRequest& req, std::optional<Client> client,
                         OnMigrationDone on_done, std::optional<Client> observer = {});

  // --- drain and rebalance (placement.cc) ---
  // A drain or a rebalance being carried out: its plan's moves, a few at a
  // time, each a migration.
  struct Operation {
    std::string kind;      // drain | rebalance
    std::string host;      // drained host
    int64_t drain_id = 0;  // its row, for a drain
    int parallel = 1;
    std::optional<Steady::time_point> deadline;
    std::optional<Client> client;
    std::vector<std::string> notes;
    std::vector<std::pair<std::string, std::string>> unplaced;  // container, why
    struct Item {
      std::string container, source, target;
      uint64_t memory_bytes = 0;
      bool sends_image = false;
      std::string outcome = "planned";  // planned | migrating | moved | failed | not started
      std::string error;
      int64_t migration = 0;
      uint64_t downtime_ms = 0;
    };
    std::vector<Item> items;
    size_t next = 0;
    int running = 0;
  };
  static Operation::Item itemOf(const Move& m);
  static Operation operationOf(const std::string& kind, const Plan& plan);
  void cordon(const Request& r);
  void startDrain(const std::string& host, int parallel, int64_t deadline_ms, bool dry_run,
                  std::optional<Client> client, int64_t drain_id = 0);
  void startRebalance(const Request& r);
  // Plans with `ro` and carries the plan out (reporting to `client` when
  // there is one); the operation's id, or 0 when it had no move.
  int64_t beginRebalance(RebalanceOptions ro, std::optional<Client> client);
  void periodicRebalance();
  // Snapshot of the cluster for the planners.
  struct Snapshot;
  Snapshot snapshot();
  void runOperation(int64_t op);
  void operationMoveDone(int64_t op, size_t item, const std::optional<Error>& failure,
                         uint64_t downtime_ms);
  void finishOperation(int64_t op);
  void fillPlacement(proto::Placement::Builder b, const Operation& o, bool dry_run) const;
  void resumeDrains();
  // --- migrations (migration.cc): the machine's actions carried out ---
  // Feeds one event to migration `id`'s machine and carries out what it
  // says; nothing when the migration has ended already.
  void feed(int64_t id, const MigrationEvent& e);
  // Carries out one action; false once the migration has finished (its run
  // is gone).
  bool execute(int64_t id, Run& run, const MigrationAction& a);
  void send(int64_t id, const Run& run, const mact::Send& s);
  void persist(int64_t id, Run& run, const mact::Persist& p);
  void recordCopy(const Run& run, const mact::RecordCopy& r);
  void noteFigures(Run& run, proto::Message::Reader m);
  void finish(int64_t id, const mact::Finish& f);
  void listPending(const Request& r);
  void resumeSourceNow(const Request& r, int64_t migration);
  void phaseDone(Run& run, const std::string& phase);
  void progress(Run& run, const std::string& phase, uint64_t done = 0,
                const std::string& message = "", uint64_t total = 0);
  void resolveAfterRestart();
  void runCleanups(const std::string& host);
  void resumeFoundNoCopy(const CleanupRow& c, const Error& e);

  CoordinatorOptions opts_;
  std::unique_ptr<proto::ZapAuthenticator> zap_;  // before the server binds
  proto::RpcServer server_;
  StateStore store_;
  Clock clock_;
  Steady::time_point started_ = Steady::now();
  uint64_t next_command_id_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::map<int64_t, Run> runs_;
  std::map<int64_t, Operation> ops_;
  int64_t next_op_ = 1;
  std::set<int64_t> drains_running_;  // drain rows carried out now
  HostRegistry hosts_;                // liveness and load: soft state
  // Host -> the routing id of the connection that last proved to be it
  // (its key's User-Id): where its commands go. Never the id a peer names.
  std::map<std::string, std::string> routes_;
  std::map<std::string, std::string> heartbeat_warned_;  // host -> what was logged
  uint64_t shed_logged_ = 0;
  Steady::time_point next_shed_log_ = Steady::now();
  std::set<std::string> connected_;   // heard from since this coordinator started
  std::map<int64_t, Steady::time_point> cleanup_retry_;  // cleanup id -> not before
  Steady::time_point next_rebalance_ = Steady::now();
  Steady::time_point next_prune_ = Steady::now();  // of the history (--history-keep)
  // From heartbeats, kept in memory only (the next heartbeat restores them):
  // the secrets each host's store holds (names). What a heartbeat says of
  // each container is in hosts_.
  std::map<std::string, std::set<std::string>> host_secrets_;
  // Failures found while sending run from the loop, never inside the caller.
  std::vector<std::function<void()>> deferred_;
  metrics::CoordinatorMetrics metrics_;
};

}  // namespace ferry::coord
