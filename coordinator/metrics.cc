#include "coordinator/metrics.h"

#include <algorithm>
#include <array>
#include <string_view>

#include "coordinator/coordinator.h"
#include "coordinator/phase.h"

namespace ferry::coord {

namespace {
// The phases the coordinator times and the source agent reports
// (agent/commands.cc). A name from the wire is a label value: anything else
// is "other", so a peer cannot make series without end.
constexpr std::array<std::string_view, 10> kPhases = {
    "plan", "image", "prepare", "precopy", "dump", "transfer", "restore", "postcopy", "commit",
    "rollback"};

std::string phaseLabel(std::string_view phase) {
  bool known = std::find(kPhases.begin(), kPhases.end(), phase) != kPhases.end();
  return known ? std::string(phase) : "other";
}
}  // namespace

metrics::MigrationEnd migrationEndOf(const mact::Finish& f,
                                     proto::MigrationFigures::Reader figures) {
  Phase end = !f.failure ? Phase::kCommitted : f.lost ? Phase::kLost : Phase::kRolledBack;
  metrics::MigrationEnd m;
  m.outcome = std::string(phaseName(end));
  // The source measures the downtime and reports it with the target's
  // verdict; a migration that failed before that has none.
  if (end == Phase::kCommitted || figures.getDowntimeMs() > 0) {
    m.downtime_seconds = static_cast<double>(figures.getDowntimeMs()) / 1000.0;
  }
  m.bytes = {{"checkpoint", figures.getBytesRaw()},
             {"wire", figures.getBytesWire()},
             {"frozen_wire", figures.getFinalBytesWire()},
             {"referenced", figures.getBytesReferenced()},
             {"postcopy_on_demand", figures.getBytesOnDemand()},
             {"postcopy_pushed", figures.getBytesPushed()},
             {"postcopy_held", figures.getBytesHeld()}};
  for (auto p : figures.getPhaseMs()) {
    m.phase_seconds.emplace_back(phaseLabel(p.getPhase().cStr()),
                                 static_cast<double>(p.getMs()) / 1000.0);
  }
  return m;
}

// Read here, in the loop, and set: a scrape never reads the store or the
// registry.
void Coordinator::updateGauges() {
  metrics::HostCounts n;
  std::map<std::string, size_t> per_host;
  for (const HostRow& h : store_.hosts()) {
    (hostUp(h.name) ? n.up : n.down)++;
    n.cordoned += h.cordoned;
    per_host[h.name] = 0;
  }
  metrics_.hosts(n);
  for (const ContainerRow& c : store_.containers()) per_host[c.host]++;
  metrics_.containers(per_host);
}

}  // namespace ferry::coord
