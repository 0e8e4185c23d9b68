// The coordinator's metrics (metrics/coordinator_metrics.h): what a
// migration's end adds to its series, and (metrics.cc) the gauges the loop
// sets each heartbeat interval.
#pragma once

#include "coordinator/migration_machine.h"
#include "metrics/coordinator_metrics.h"
#include "protocol/control.capnp.h"

namespace ferry::coord {

// A migration's end as the series see it: its outcome (the final phase's
// name) and what its figures hold -- downtime, bytes by kind, phase
// durations. Pure: the coordinator's finish() and the unit test use it
// alike.
metrics::MigrationEnd migrationEndOf(const mact::Finish& f,
                                     proto::MigrationFigures::Reader figures);

}  // namespace ferry::coord
