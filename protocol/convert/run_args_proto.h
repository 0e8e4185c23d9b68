// The run options (engine/run_args.h) <-> the control protocol's RunSpec:
// one conversion for the CLI (which sends them) and the agent (which turns
// them into a ContainerSpec). Library ferry_run_proto: no engine code.
#pragma once

#include "engine/spec/run_args.h"
#include "protocol/control.capnp.h"

namespace ferry::proto {

void fillRunSpec(RunSpec::Builder b, const ferry::RunArgs& r);
ferry::RunArgs runArgsFrom(RunSpec::Reader r);

}  // namespace ferry::proto
