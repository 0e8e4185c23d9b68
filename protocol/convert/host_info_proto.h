// The engine's HostInfo <-> the control protocol's HostInfo: one conversion
// for the agent (which reports it) and the coordinator (which keeps it and
// checks compatibility with it). Library ferry_host_proto: the protocol plus
// the engine's pure ferry_compat, no engine.
#pragma once

#include "compat/host_info.h"
#include "protocol/control.capnp.h"

namespace ferry::proto {

void fillHostInfo(HostInfo::Builder b, const ferry::HostInfo& h);
ferry::HostInfo hostInfoFrom(HostInfo::Reader r);

}  // namespace ferry::proto
