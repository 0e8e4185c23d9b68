// Cordon, drain and rebalance: the coordinator plans with the pure planners
// (planner.h) over a snapshot of what the agents report, then carries the
// plan out as ordinary migrations, a few at a time, reporting each one.
//
// A drain is recorded in SQLite; a coordinator that restarts mid-drain plans
// again for what is still on the host once it is heard from, and goes on.
// A rebalance is not resumed: its plan was for a cluster that has moved on.
#include <algorithm>
#include <map>
#include <set>

#include "coordinator/coordinator.h"
#include "coordinator/coordinator_util.h"
#include "coordinator/planner.h"
#include "compat/compat.h"

namespace ferry::coord {

using detail::hostInfoOf;
using detail::log;
using detail::text;
using nlohmann::json;

struct Coordinator::Snapshot {
  std::vector<PlanHost> hosts;
  std::vector<PlanContainer> containers;
  std::vector<HostInfo> class_info;  // one per compatibility class
  ClassCompatible compatible;
};

namespace {

// What compatibility depends on: the host's metadata without what is its
// own (name, size).
std::string classKey(const HostInfo& h) {
  json j = h;
  for (const char* k : {"host_name", "memory_bytes", "cpus"}) j.erase(k);
  return j.dump();
}

}  // namespace

Coordinator::Snapshot Coordinator::snapshot() {
  Snapshot s;
  std::map<std::string, int> classes;
  std::map<std::string, uint64_t> used;
  auto containers = store_.containers("");
  for (auto& c : containers) c = hosts_.withMemory(std::move(c));
  auto moved = store_.lastMoves();
  for (const auto& c : containers) {
    used[c.host] += c.memory_bytes;
  }
  for (const auto& h : store_.hosts()) {
    PlanHost p;
    p.name = h.name;
    p.up = hostUp(h.name);
    p.cordoned = h.cordoned;
    LoadRow l = hosts_.load(h.name);
    p.memory_capacity = l.memory_capacity_bytes ? l.memory_capacity_bytes : l.memory_total_bytes;
    p.memory_used = used[h.name];
    p.cpu_percent = l.cpu_percent;
    HostInfo info = hostInfoOf(h);
    auto [it, fresh] = classes.try_emplace(classKey(info), static_cast<int>(classes.size()));
    if (fresh) s.class_info.push_back(info);
    p.compat_class = it->second;
    for (const auto& im : store_.images(h.name)) p.images.push_back(im.id);
    std::sort(p.images.begin(), p.images.end());
    auto sec = host_secrets_.find(h.name);
    if (sec != host_secrets_.end()) p.secrets.assign(sec->second.begin(), sec->second.end());
    s.hosts.push_back(std::move(p));
  }
  for (const auto& c : containers) {
    if (c.status != "running") continue;  // only a running container migrates live
    PlanContainer p;
    p.name = c.name;
    p.host = c.host;
    for (const auto& im : store_.images(c.host)) {
      if (im.name == c.image) p.image_id = im.id;
    }
    p.memory_bytes = c.memory_bytes;
    auto m = moved.find(c.name);
    p.last_moved_ms = m == moved.end() ? 0 : m->second;
    if (auto x = hosts_.extras(c.host, c.name)) p.secrets = x->secrets;
    s.containers.push_back(p);
  }
  // Class to class: the refusals of ferry_compat, computed once per pair.
  auto info = s.class_info;
  auto cache = std::make_shared<std::map<std::pair<int, int>, bool>>();
  s.compatible = [info, cache](int from, int to) {
    auto [it, fresh] = cache->try_emplace({from, to}, true);
    if (fresh) {
      CompatInput in;
      in.source = info[static_cast<size_t>(from)];
      in.target = info[static_cast<size_t>(to)];
      in.image_present = true;  // an image the target lacks is sent first
      for (const auto& f : checkCompatibility(in, {})) {
        if (f.severity == Severity::kRefuse && !f.ignored) it->second = false;
      }
    }
    return it->second;
  };
  return s;
}

void Coordinator::cordon(const Request& r) {
  auto c = r.msg.getCordon();
  std::string host = text(c.getHost());
  requireHost(host, "named");
  store_.setCordoned(host, c.getCordoned());
  store_.addEvent(clock_(), "host", host, c.getCordoned() ? "cordoned" : "uncordoned");
  log().info("{} {}", host, c.getCordoned() ? "cordoned" : "uncordoned");
  server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
}

Coordinator::Operation::Item Coordinator::itemOf(const Move& m) {
  Operation::Item i;
  i.container = m.container;
  i.source = m.source;
  i.target = m.target;
  i.memory_bytes = m.memory_bytes;
  i.sends_image = m.sends_image;
  return i;
}

void Coordinator::startDrain(const std::string& host, int parallel, int64_t deadline_ms,
                             bool dry_run, std::optional<Client> client, int64_t drain_id) {
  Snapshot s = snapshot();
  Plan plan = planDrain(host, s.hosts, s.containers, s.compatible);
  Operation o = operationOf("drain", plan);
  o.host = host;
  o.parallel = parallel;
  o.client = client;
  if (dry_run) {
    if (client) {
      server_.sendTo(client->peer, client->id,
                     [&](proto::Message::Builder b) { fillPlacement(b.initPlacement(), o, true); });
    }
    return;
  }
  // Nothing new is placed on it from now on, planned or not.
  store_.setCordoned(host, true);
  if (drain_id == 0) {
    drain_id = store_.beginDrain({0, host, parallel, deadline_ms}, clock_());
    store_.addEvent(clock_(), "host", host,
                    "drain started: " + std::to_string(o.items.size()) + " container(s) to move");
  }
  o.drain_id = drain_id;
  drains_running_.insert(drain_id);
  if (deadline_ms > 0) {
    o.deadline =
        Steady::now() + std::chrono::milliseconds(std::max<int64_t>(0, deadline_ms - clock_()));
  }
  log().info("drain of {}: {} move(s), {} unplaced", host, o.items.size(), o.unplaced.size());
  int64_t id = next_op_++;
  ops_.emplace(id, std::move(o));
  runOperation(id);
}

void Coordinator::startRebalance(const Request& r) {
  auto rb = r.msg.getRebalance();
  RebalanceOptions ro;
  if (rb.getHighPercent() > 0) ro.high_percent = rb.getHighPercent();
  if (rb.getLowPercent() > 0) ro.low_percent = rb.getLowPercent();
  if (rb.getMaxMoves() > 0) ro.max_moves = static_cast<int>(rb.getMaxMoves());
  validateRebalanceOptions(ro);
  if (rb.getDryRun()) {
    ro.now_ms = clock_();
    Snapshot s = snapshot();
    Plan plan = planRebalance(s.hosts, s.containers, s.compatible, ro);
    Operation o = operationOf("rebalance", plan);
    server_.reply(r, [&](proto::Message::Builder b) { fillPlacement(b.initPlacement(), o, true); });
    return;
  }
  beginRebalance(ro, Client{r.peer, r.id});
}

Coordinator::Operation Coordinator::operationOf(const std::string& kind, const Plan& plan) {
  Operation o;
  o.kind = kind;
  o.notes = plan.notes;
  for (const auto& u : plan.unplaced) o.unplaced.emplace_back(u.container, u.reason);
  for (const auto& m : plan.moves) o.items.push_back(itemOf(m));
  return o;
}

int64_t Coordinator::beginRebalance(RebalanceOptions ro, std::optional<Client> client) {
  ro.now_ms = clock_();
  Snapshot s = snapshot();
  Plan plan;
  if (client) {
    plan = planRebalance(s.hosts, s.containers, s.compatible, ro);
  } else {
    // By itself, it never picks what a migration would refuse at once.
    std::set<std::string> owing;
    for (const auto& c : s.containers) {
      if (store_.hasCleanupFor(c.name)) owing.insert(c.name);
    }
    plan = planPeriodicRebalance(s.hosts, s.containers, owing, s.compatible, ro);
    if (plan.moves.empty()) {  // nobody to tell but the log
      std::string why;
      for (const auto& n : plan.notes) why += (why.empty() ? "" : "; ") + n;
      log().info("periodic rebalance: nothing to move ({})", why);
      return 0;
    }
  }
  Operation o = operationOf("rebalance", plan);
  o.client = client;
  store_.addEvent(clock_(), "cluster", "rebalance",
                  std::string(client ? "started" : "started by itself (--rebalance-every)") + ": " +
                      std::to_string(o.items.size()) + " move(s)");
  log().info("rebalance{}: {} move(s), {} unplaced", client ? "" : " (periodic)", o.items.size(),
             o.unplaced.size());
  int64_t id = next_op_++;
  ops_.emplace(id, std::move(o));
  runOperation(id);
  return id;
}

// --rebalance-every: only when nothing else moves containers around, so a
// plan is never made over a cluster a drain is emptying (planner.h says
// what holds it back). Each period says in the log what it did.
void Coordinator::periodicRebalance() {
  PeriodicRebalanceState state;
  state.operations = ops_.size();
  state.migrations = runs_.size();
  for (const auto& d : store_.activeDrains()) state.drained_hosts.push_back(d.host);
  for (const auto& h : store_.hosts()) {
    // Not heard since a restart: its load is old.
    if (hostUp(h.name) && !connected_.count(h.name)) state.unheard_hosts.push_back(h.name);
  }
  if (std::string hold = periodicRebalanceHold(state); !hold.empty()) {
    log().info("periodic rebalance: not now ({})", hold);
    return;
  }
  try {
    beginRebalance(opts_.rebalance, std::nullopt);
  } catch (const std::exception& e) {
    log().warn("periodic rebalance: {}", e.what());
  }
}

void Coordinator::fillPlacement(proto::Placement::Builder b, const Operation& o,
                                bool dry_run) const {
  b.setKind(o.kind);
  b.setHost(o.host);
  b.setDryRun(dry_run);
  auto moves = b.initMoves(static_cast<unsigned>(o.items.size()));
  for (size_t i = 0; i < o.items.size(); ++i) {
    const auto& it = o.items[i];
    auto m = moves[static_cast<unsigned>(i)];
    m.setContainer(it.container);
    m.setSource(it.source);
    m.setTarget(it.target);
    m.setMemoryBytes(it.memory_bytes);
    m.setSendsImage(it.sends_image);
    m.setOutcome(it.outcome);
    m.setError(it.error);
    m.setMigration(static_cast<uint64_t>(it.migration));
    m.setDowntimeMs(it.downtime_ms);
  }
  auto un = b.initUnplaced(static_cast<unsigned>(o.unplaced.size()));
  for (size_t i = 0; i < o.unplaced.size(); ++i) {
    un[static_cast<unsigned>(i)].setContainer(o.unplaced[i].first);
    un[static_cast<unsigned>(i)].setReason(o.unplaced[i].second);
  }
  auto notes = b.initNotes(static_cast<unsigned>(o.notes.size()));
  for (size_t i = 0; i < o.notes.size(); ++i) notes.set(static_cast<unsigned>(i), o.notes[i]);
}

// Starts moves until `parallel` run; ends the operation when none is left.
void Coordinator::runOperation(int64_t op) {
  auto found = ops_.find(op);
  if (found == ops_.end()) return;
  Operation& o = found->second;
  if (o.next == 0 && o.client) {
    // The plan goes out before the first move starts.
    server_.sendTo(o.client->peer, o.client->id, [&](proto::Message::Builder b) {
      auto p = b.initProgress();
      p.setPhase("plan");
      p.setMessage(std::to_string(o.items.size()) + " move(s) planned");
      fillPlacement(p.initPlan(), o, false);
    });
  }
  while (o.running < o.parallel && o.next < o.items.size()) {
    size_t idx = o.next++;
    auto& item = o.items[idx];
    if (o.deadline && Steady::now() >= *o.deadline) {
      item.outcome = "not started";
      item.error = "the deadline passed before it could start";
      continue;
    }
    MigrateRequest req;
    req.container = item.container;
    req.source = item.source;
    req.target = item.target;
    try {
      item.migration = beginMigration(
          req, std::nullopt,
          [this, op, idx](int64_t, const std::optional<Error>& failure, uint64_t downtime) {
            operationMoveDone(op, idx, failure, downtime);
          },
          o.client);
      item.outcome = "migrating";
      o.running++;
    } catch (const Error& e) {
      item.outcome = "failed";
      item.error = e.what();
      log().warn("{}: {} not moved: {}", o.kind, item.container, e.what());
    }
  }
  if (o.running == 0 && o.next >= o.items.size()) finishOperation(op);
}

void Coordinator::operationMoveDone(int64_t op, size_t idx, const std::optional<Error>& failure,
                                    uint64_t downtime_ms) {
  auto found = ops_.find(op);
  if (found == ops_.end()) return;
  Operation& o = found->second;
  auto& item = o.items[idx];
  o.running--;
  item.outcome = failure ? "failed" : "moved";
  item.error = failure ? failure->what() : "";
  item.downtime_ms = downtime_ms;
  size_t done = 0;
  for (const auto& i : o.items) done += i.outcome == "moved" || i.outcome == "failed";
  if (o.client) {
    server_.sendTo(o.client->peer, o.client->id, [&](proto::Message::Builder b) {
      auto p = b.initProgress();
      p.setPhase(o.kind);
      p.setMessage(item.container + " " + item.source + " -> " + item.target + ": " +
                   (failure ? "failed, it runs on " + item.source + " (" + failure->what() + ")"
                            : "moved, " + std::to_string(downtime_ms) + " ms of downtime") +
                   " [" + std::to_string(done) + "/" + std::to_string(o.items.size()) + "]");
    });
  }
  // Later work is deferred to the loop: this runs inside finish().
  deferred_.push_back([this, op] { runOperation(op); });
}

void Coordinator::finishOperation(int64_t op) {
  auto found = ops_.find(op);
  if (found == ops_.end()) return;
  Operation& o = found->second;
  size_t moved = 0;
  for (const auto& i : o.items) moved += i.outcome == "moved";
  std::string summary = std::to_string(moved) + " of " + std::to_string(o.items.size()) +
                        " moved, " + std::to_string(o.unplaced.size()) + " unplaced";
  if (o.kind == "drain") {
    metrics_.drainEnded(moved == o.items.size() && o.unplaced.empty());
    store_.endDrain(o.drain_id);
    drains_running_.erase(o.drain_id);
    store_.addEvent(clock_(), "host", o.host, "drain ended: " + summary);
  } else {
    for (const auto& i : o.items) {
      metrics_.rebalanceMove(i.outcome == "not started" ? "not-started" : i.outcome);
    }
    store_.addEvent(clock_(), "cluster", "rebalance", "ended: " + summary);
  }
  log().info("{} {} ended: {}", o.kind, o.host, summary);
  if (o.client) {
    server_.sendTo(o.client->peer, o.client->id,
                   [&](proto::Message::Builder b) { fillPlacement(b.initPlacement(), o, false); });
  }
  ops_.erase(found);
}

// After a restart: each drain that was under way goes on, planned again for
// what is still on its host, once that host and the others have reported
// and no migration of the old plan is still being resolved.
void Coordinator::resumeDrains() {
  if (Steady::now() - started_ < opts_.heartbeat * 2) return;  // let the agents report first
  for (const auto& d : store_.activeDrains()) {
    if (drains_running_.count(d.id)) continue;
    if (!connected_.count(d.host)) continue;
    bool resolving = false;
    for (const auto& [id, run] : runs_) resolving = resolving || run.machine.spec().source == d.host;
    if (resolving) continue;
    log().info("drain of {} resumed after a restart", d.host);
    startDrain(d.host, d.parallel, d.deadline_ms, false, std::nullopt, d.id);
  }
}

}  // namespace ferry::coord
