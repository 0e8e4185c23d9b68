#include "metrics/coordinator_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

namespace ferry::metrics {

namespace {

// Downtime: loopback migrations of small containers take tens of ms, a
// multi-GiB cold one over 1 GbE tens of seconds (BENCHMARKS.md).
const prometheus::Histogram::BucketBoundaries kDowntimeBuckets = {
    0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1, 2, 5, 10, 30, 60};
// Phases run from milliseconds (plan, commit) to minutes (pre-copy of a
// big container over a slow link).
const prometheus::Histogram::BucketBoundaries kPhaseBuckets = {
    0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300};

}  // namespace

struct CoordinatorMetrics::Series {
  explicit Series(prometheus::Registry& r)
      : migrations(prometheus::BuildCounter()
                       .Name("ferry_migrations_total")
                       .Help("Migrations ended, by outcome: committed, rolled-back (the container "
                             "runs on its source again), lost (post-copy whose source died)")
                       .Register(r)),
        downtime(prometheus::BuildHistogram()
                     .Name("ferry_migration_downtime_seconds")
                     .Help("Time a migrated container was frozen: from the final checkpoint on "
                           "the source to the target's verdict (as the source measured it)")
                     .Register(r)
                     .Add({}, kDowntimeBuckets)),
        bytes(prometheus::BuildCounter()
                  .Name("ferry_migration_bytes_total")
                  .Help("Bytes of ended migrations, by kind: checkpoint (memory, rootfs diff and "
                        "volumes, raw), wire (sent, after compression), frozen_wire (sent while "
                        "frozen), referenced (rebuilt from pre-copied blocks), postcopy_on_demand, "
                        "postcopy_pushed, postcopy_held")
                  .Register(r)),
        phases(prometheus::BuildHistogram()
                   .Name("ferry_migration_phase_seconds")
                   .Help("Duration of each timed phase of ended migrations: plan, image, prepare, "
                         "precopy, dump, transfer, restore, postcopy, commit, rollback")
                   .Register(r)),
        hosts(prometheus::BuildGauge()
                  .Name("ferry_hosts")
                  .Help("Registered hosts: up or down (by heartbeats); cordoned counts the "
                        "cordoned ones among both")
                  .Register(r)),
        containers(prometheus::BuildGauge()
                       .Name("ferry_containers")
                       .Help("Containers each host holds, as its agent reports them")
                       .Register(r)),
        drains(prometheus::BuildCounter()
                   .Name("ferry_drains_total")
                   .Help("Drains ended: complete (every container moved) or incomplete")
                   .Register(r)),
        rebalance_moves(prometheus::BuildCounter()
                            .Name("ferry_rebalance_moves_total")
                            .Help("Moves of ended rebalances, by outcome: moved, failed, "
                                  "not-started (its deadline passed)")
                            .Register(r)) {
    // Every outcome from the start, at 0: rate() and the dashboard see a
    // series before its first event.
    for (const char* o : {"committed", "rolled-back", "lost"}) migrations.Add({{"outcome", o}});
    for (const char* s : {"up", "down", "cordoned"}) hosts.Add({{"state", s}});
    for (const char* o : {"complete", "incomplete"}) drains.Add({{"outcome", o}});
    for (const char* o : {"moved", "failed", "not-started"}) rebalance_moves.Add({{"outcome", o}});
  }

  prometheus::Family<prometheus::Counter>& migrations;
  prometheus::Histogram& downtime;
  prometheus::Family<prometheus::Counter>& bytes;
  prometheus::Family<prometheus::Histogram>& phases;
  prometheus::Family<prometheus::Gauge>& hosts;
  prometheus::Family<prometheus::Gauge>& containers;
  std::map<std::string, prometheus::Gauge*> per_host;  // the series of containers
  prometheus::Family<prometheus::Counter>& drains;
  prometheus::Family<prometheus::Counter>& rebalance_moves;
};

CoordinatorMetrics::CoordinatorMetrics()
    : registry_(std::make_shared<prometheus::Registry>()),
      s_(std::make_unique<Series>(*registry_)) {}

CoordinatorMetrics::~CoordinatorMetrics() = default;

void CoordinatorMetrics::migrationEnded(const MigrationEnd& m) {
  s_->migrations.Add({{"outcome", m.outcome}}).Increment();
  if (m.downtime_seconds) s_->downtime.Observe(*m.downtime_seconds);
  for (const auto& [kind, n] : m.bytes) {
    s_->bytes.Add({{"kind", kind}}).Increment(static_cast<double>(n));
  }
  for (const auto& [phase, seconds] : m.phase_seconds) {
    s_->phases.Add({{"phase", phase}}, kPhaseBuckets).Observe(seconds);
  }
}

void CoordinatorMetrics::hosts(const HostCounts& n) {
  s_->hosts.Add({{"state", "up"}}).Set(n.up);
  s_->hosts.Add({{"state", "down"}}).Set(n.down);
  s_->hosts.Add({{"state", "cordoned"}}).Set(n.cordoned);
}

void CoordinatorMetrics::containers(const std::map<std::string, size_t>& per_host) {
  for (auto it = s_->per_host.begin(); it != s_->per_host.end();) {
    if (per_host.count(it->first)) {
      ++it;
      continue;
    }
    s_->containers.Remove(it->second);
    it = s_->per_host.erase(it);
  }
  for (const auto& [host, n] : per_host) {
    auto& g = s_->per_host[host];
    if (!g) g = &s_->containers.Add({{"host", host}});
    g->Set(static_cast<double>(n));
  }
}

void CoordinatorMetrics::drainEnded(bool complete) {
  s_->drains.Add({{"outcome", complete ? "complete" : "incomplete"}}).Increment();
}

void CoordinatorMetrics::rebalanceMove(std::string_view outcome) {
  s_->rebalance_moves.Add({{"outcome", std::string(outcome)}}).Increment();
}

}  // namespace ferry::metrics
