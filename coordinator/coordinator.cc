// The coordinator's core: agents registering and heartbeating, commands
// to agents and their answers (with timeouts and failures when a host goes
// away), and the loop. Requests are dispatched in dispatch.cc, migrations
// carried out in migration.cc, owed work in cleanups.cc, drains and
// rebalances in placement.cc.
#include "coordinator/coordinator.h"

#include <algorithm>

#include "common/names.h"
#include "coordinator/coordinator_util.h"
#include "coordinator/heartbeat.h"
#include "protocol/convert/host_info_proto.h"

namespace ferry::coord {

using detail::log;
using detail::text;
using nlohmann::json;

namespace {

std::vector<std::string> endpointsOf(const CoordinatorOptions& o) {
  std::vector<std::string> all = {o.listen};
  all.insert(all.end(), o.also_listen.begin(), o.also_listen.end());
  return all;
}

// Without keys, what a TCP endpoint admits is an address: refuse to start
// one that would admit no agent, or a TCP peer off this machine.
CoordinatorOptions checked(CoordinatorOptions o) {
  if (o.keys) return o;
  for (const auto& ep : endpointsOf(o)) {
    if (ep.rfind("ipc://", 0) == 0) continue;
    if (ep.rfind("tcp://127.", 0) != 0) {
      throwInvalidInput("without --keys, the coordinator listens on a unix socket (ipc://PATH) "
                        "or on loopback (tcp://127.x.x.x:PORT) only, not " + ep +
                        "; generate keys with `ferry keys generate DIR`");
    }
    if (o.access.agent_addresses.empty()) {
      throwInvalidInput("without --keys, " + ep +
                        " would admit anyone on this machine: it admits only agents, each from "
                        "the address given with --agent-address NAME=ADDRESS, and the CLI comes "
                        "in over the unix socket (--listen ipc://PATH, default " +
                        std::string(kDefaultSocket) + ")");
    }
  }
  return o;
}

proto::ServerOptions serverOptions(const CoordinatorOptions& o) {
  size_t fit = proto::connectionsWithinFdLimit(32);
  if (fit < 8) {
    throwInvalidInput("the fd limit (ulimit -n) leaves room for " + std::to_string(fit) +
                      " connections; raise it (systemd: LimitNOFILE=)");
  }
  proto::ServerOptions so{.binds = endpointsOf(o),
                          .curve = o.keys,
                          .max_connections = o.max_connections ? std::min(o.max_connections, fit)
                                                               : fit,
                          .ipc_mode = static_cast<mode_t>(
                              o.socket_group == static_cast<gid_t>(-1) ? 0600 : 0660),
                          .ipc_group = o.socket_group};
  return so;
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions opts, zmq::context_t& ctx, Clock clock)
    : opts_(checked(std::move(opts))),
      zap_(std::make_unique<proto::ZapAuthenticator>(
          ctx, [access = opts_.access](const proto::ZapRequest& r) { return access.admit(r); })),
      server_(ctx, serverOptions(opts_)),
      store_((std::filesystem::create_directories(opts_.state_dir), opts_.state_dir / "state.db")),
      clock_(std::move(clock)) {
  // Command ids never repeat those of an earlier coordinator on this state:
  // a late answer to its command must not match one of ours.
  next_command_id_ = static_cast<uint64_t>(clock_()) << 16;
  // Liveness is not stored: every registered host gets a full
  // missed-heartbeat window from now to report to this coordinator.
  for (const auto& h : store_.hosts()) hosts_.add(h.name, clock_());
  for (const auto& m : store_.unfinishedMigrations()) {
    Run run{MigrationMachine::afterRestart(
        {.id = m.id, .container = m.container, .source = m.source, .target = m.target}, m.phase)};
    run.started = run.phase_started = Steady::now();
    detail::fillFigures(run.figures.get(), m);
    for (auto w : run.figures.reader().getWarnings()) run.warnings.push_back(text(w));
    log().warn(
        "migration #{} of {} ({} -> {}) was unfinished at phase {}; resolving it once the "
        "hosts are heard from",
        m.id, m.container, m.source, m.target, phaseName(m.phase));
    runs_.emplace(m.id, std::move(run));
  }
}

// --- agents ------------------------------------------------------------------

bool Coordinator::hostUp(const std::string& name) { return hosts_.up(name); }

void Coordinator::heardFrom(const std::string& host) {
  connected_.insert(host);
  runCleanups(host);
}

void Coordinator::onHello(const Request& r) {
  auto h = r.msg.getHello();
  std::string name = text(h.getName());
  validateName(name, "host name");
  routes_[name] = r.peer;
  auto old = store_.host(name);
  bool known = old.has_value();
  store_.upsertHost({name, text(h.getDataEndpoint()), json(proto::hostInfoFrom(h.getInfo())).dump(),
                     true, old ? old->cordoned : false, clock_()});
  hosts_.heard(name, clock_());
  store_.addEvent(clock_(), "host", name, known ? "registered again" : "registered");
  log().info("host {} {} (data plane {})", name, known ? "registered again" : "registered",
             text(h.getDataEndpoint()));
  // A hello comes from a freshly started agent: whatever it was doing for
  // us died with its predecessor.
  failPending(name,
              Error(ErrorCategory::kRetryable,
                    "the agent on " + name + " restarted while carrying this out"),
              Fault::kAgentRestarted);
  heardFrom(name);
}

// A heartbeat is soft state (liveness, load, memory use: hosts_), kept in
// memory; what it says of placement and images goes to the store only when
// it changed -- every store write is a synced commit, and hosts heartbeat
// every second.
void Coordinator::onHeartbeat(const Request& r) {
  auto h = r.msg.getHeartbeat();
  std::string name = text(h.getName());
  if (!hosts_.has(name)) return;  // not registered yet: its hello is on its way
  routes_[name] = r.peer;
  if (hosts_.heard(name, clock_())) {
    store_.addEvent(clock_(), "host", name, "up again");
    log().info("host {} is up again", name);
  }
  HeartbeatReport report = readHeartbeat(name, h);
  std::string refused;
  for (const auto& why : report.refused) refused += (refused.empty() ? "" : "; ") + why;
  if (refused != heartbeat_warned_[name]) {
    if (!refused.empty()) log().warn("host {}'s heartbeat is past its bounds: {}", name, refused);
    heartbeat_warned_[name] = refused;
  }
  hosts_.report(name, report);
  host_secrets_[name] = report.secrets;
  if (placementChanged(store_.containers(name), report.containers)) {
    store_.replaceContainers(name, report.containers);
  }
  if (imagesChanged(store_.images(name), report.images)) store_.replaceImages(name, report.images);
  heardFrom(name);
}

void Coordinator::markSilentHostsDown() {
  int64_t cutoff = clock_() - opts_.heartbeat.count() * opts_.missed_heartbeats;
  for (const auto& name : hosts_.markSilentDown(cutoff)) {
    store_.addEvent(clock_(), "host", name, "down: missed heartbeats");
    log().warn("host {} is down: no heartbeat for {} ms", name,
               opts_.heartbeat.count() * opts_.missed_heartbeats);
    connected_.erase(name);
    failPending(name,
                Error(ErrorCategory::kRetryable, name + " went down (missed " +
                                                     std::to_string(opts_.missed_heartbeats) +
                                                     " heartbeats)"),
                Fault::kHostDown);
  }
}

// An agent's answer to one of our commands. Late answers (the command
// already failed) and answers from the wrong peer are dropped, never
// answered: replying to a reply would loop.
void Coordinator::onAgentReply(const Request& r) {
  auto it = pending_.find(r.id);
  if (it == pending_.end()) return;
  auto route = routes_.find(it->second.host);
  if (route == routes_.end() || route->second != r.peer ||
      !PeerIdentity::fromUserId(r.user).mayActAsHost(it->second.host)) {
    return;
  }
  if (r.msg.isProgress()) {
    it->second.deadline = Steady::now() + it->second.timeout;
    if (it->second.progress) it->second.progress(r.msg.getProgress());
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  try {
    if (r.msg.isError()) return p.fail(proto::errorFrom(r.msg.getError()), Fault::kAgentError);
    p.ok(r.msg);
  } catch (const std::exception& e) {
    // A bug or a failing store: say so loudly; the loop goes on.
    log().error("internal: handling {}'s answer to '{}' failed: {}", p.host, p.what, e.what());
  }
}

void Coordinator::command(const std::string& host, const std::string& what, const proto::Fill& fill,
                          std::chrono::milliseconds timeout, OnReply ok, OnError fail,
                          OnProgress progress) {
  uint64_t id = next_command_id_++;
  // A host marked down may keep its connection: across a partition packets
  // are lost, not refused, so ZeroMQ still has the peer and would queue the
  // command. It fails at once, as a command pending when the host went down
  // does, instead of waiting out its timeout (a rollback then waited 150 s
  // for a source it knew was unreachable).
  if (hosts_.has(host) && !hosts_.up(host)) {
    Error e(ErrorCategory::kRetryable, host + " is down (missed heartbeats); could not " + what);
    deferred_.push_back([fail = std::move(fail), e] { fail(e, Fault::kHostDown); });
    return;
  }
  auto route = routes_.find(host);
  if (route == routes_.end() || !server_.sendTo(route->second, id, fill)) {
    Error e(ErrorCategory::kRetryable,
            host + " is not connected (is its agent running?); could not " + what);
    deferred_.push_back([fail = std::move(fail), e] { fail(e, Fault::kNotConnected); });
    return;
  }
  pending_.emplace(id, Pending{host, what, timeout, Steady::now() + timeout, std::move(ok),
                               std::move(fail), std::move(progress)});
}

void Coordinator::failPending(const std::string& host, const Error& e, Fault fault) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.host != host) {
      ++it;
      continue;
    }
    OnError fail = std::move(it->second.fail);
    it = pending_.erase(it);
    deferred_.push_back([fail = std::move(fail), e, fault] { fail(e, fault); });
  }
}

void Coordinator::expirePending() {
  auto now = Steady::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    Error e(ErrorCategory::kRetryable,
            "no answer from " + it->second.host + " to '" + it->second.what + "' within " +
                std::to_string(it->second.timeout.count() / 1000) + " s");
    OnError fail = std::move(it->second.fail);
    it = pending_.erase(it);
    deferred_.push_back([fail = std::move(fail), e] { fail(e, Fault::kTimeout); });
  }
}

void Coordinator::sendError(const Client& c, const Error& e) {
  server_.sendTo(c.peer, c.id,
                 [&](proto::Message::Builder b) { proto::fillErrorInfo(b.initError(), e, ""); });
}

void Coordinator::run(const std::atomic<bool>& stop, const std::function<void()>& each_turn) {
  auto next_check = Steady::now();
  while (!stop) {
    if (each_turn) each_turn();
    try {
      if (auto r = server_.next(std::chrono::milliseconds(50))) {
        try {
          try {
            proto::guard([&] { handle(*r); });
          } catch (const Error&) {
            throw;
          } catch (const std::exception& e) {
            throw Error(ErrorCategory::kPermanent, std::string("internal: ") + e.what());
          }
        } catch (const Error& e) {
          bool reply = true;
          try {
            reply = !isReply(r->msg);
          } catch (const std::exception&) {
          }
          if (reply) server_.replyError(*r, e, "coordinator");
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (uint64_t shed = server_.connectionsShed();
        shed != shed_logged_ && Steady::now() >= next_shed_log_) {
      log().warn("{} connections at once, the most allowed (fd limit or --max-connections): "
                 "shut down {} since the last report (the newest of the source holding most)",
                 server_.maxConnections(), shed - shed_logged_);
      shed_logged_ = shed;
      next_shed_log_ = Steady::now() + std::chrono::seconds(10);
    }
    expirePending();
    while (!deferred_.empty()) {
      std::vector<std::function<void()>> now;
      now.swap(deferred_);
      for (auto& f : now) {
        try {
          f();
        } catch (const std::exception& e) {
          log().error("internal: {}", e.what());
        }
      }
    }
    resolveAfterRestart();
    resumeDrains();
    // A target restoring sends nothing for a while: the CLI hears that the
    // migration lives on (its wait is measured from the last message).
    for (auto& [id, run] : runs_) {
      if ((run.client || run.observer) && !run.machine.awaitingHosts() &&
          Steady::now() - run.last_progress > std::chrono::seconds(2)) {
        progress(run, run.last_phase, run.last_done, "waiting for " + run.machine.spec().target);
      }
    }
    // A periodic rebalance plans from heartbeats sent after the last move.
    if (!ops_.empty() || !runs_.empty()) {
      next_rebalance_ = std::max(next_rebalance_, Steady::now() + 2 * opts_.heartbeat);
    }
    if (opts_.rebalance_every.count() > 0 && Steady::now() >= next_rebalance_) {
      next_rebalance_ = Steady::now() + opts_.rebalance_every;
      periodicRebalance();
    }
    if (Steady::now() >= next_prune_) {
      next_prune_ = Steady::now() + std::chrono::minutes(1);
      try {
        if (int64_t n = store_.pruneHistory(opts_.history_keep)) {
          log().info("history: removed {} rows beyond the newest {} (--history-keep)", n,
                     opts_.history_keep);
        }
      } catch (const std::exception& e) {
        log().warn("history: pruning failed: {}", e.what());
      }
    }
    if (Steady::now() >= next_check) {
      markSilentHostsDown();
      updateGauges();
      next_check = Steady::now() + opts_.heartbeat;
    }
  }
}

}  // namespace ferry::coord
