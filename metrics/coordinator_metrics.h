// The coordinator's series (docs/metrics.md lists them with their labels):
//   ferry_migrations_total{outcome}          committed | rolled-back | lost
//   ferry_migration_downtime_seconds         histogram, measured by the source
//   ferry_migration_bytes_total{kind}        what the figures report (below)
//   ferry_migration_phase_seconds{phase}     histogram, each timed phase
//   ferry_hosts{state}                       up | down, and cordoned (of either)
//   ferry_containers{host}                   containers each host reports
//   ferry_drains_total{outcome}              complete | incomplete
//   ferry_rebalance_moves_total{outcome}     moved | failed | not-started
//
// Thread-safety: the setters are called from the coordinator's loop, one
// thread; scrapes read the registry from the metrics server's threads
// (prometheus-cpp's series are atomic, its families lock). Nothing here
// reads coordinator state.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace prometheus {
class Registry;
}  // namespace prometheus

namespace ferry::metrics {

// One migration's end, as the coordinator's figures tell it.
struct MigrationEnd {
  std::string outcome;                      // the final phase's name: committed, rolled-back, lost
  std::optional<double> downtime_seconds;   // when the source measured one
  std::vector<std::pair<std::string, uint64_t>> bytes;        // kind -> bytes
  std::vector<std::pair<std::string, double>> phase_seconds;  // phase -> seconds
};

struct HostCounts {
  int up = 0, down = 0, cordoned = 0;
};

class CoordinatorMetrics {
 public:
  CoordinatorMetrics();
  ~CoordinatorMetrics();
  CoordinatorMetrics(const CoordinatorMetrics&) = delete;
  CoordinatorMetrics& operator=(const CoordinatorMetrics&) = delete;

  // What a MetricsServer serves.
  const std::shared_ptr<prometheus::Registry>& registry() const { return registry_; }

  void migrationEnded(const MigrationEnd& m);
  void hosts(const HostCounts& n);
  // Containers per host; a host no longer listed loses its series.
  void containers(const std::map<std::string, size_t>& per_host);
  void drainEnded(bool complete);
  void rebalanceMove(std::string_view outcome);

 private:
  struct Series;
  std::shared_ptr<prometheus::Registry> registry_;
  std::unique_ptr<Series> s_;
};

}  // namespace ferry::metrics
