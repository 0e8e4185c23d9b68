// The host's load as heartbeats report it: CPU from the 1-minute load
// average over the core count, memory from /proc/meminfo -- what a planner
// needs to compare hosts.
//
// Thread-safety: free functions over their arguments. Blocking: reading
// two small /proc files.
#pragma once

#include <cstdint>
#include <string_view>

#include "protocol/rpc.h"

namespace ferry::agent {

struct HostLoad {
  double cpu_percent = 0;     // 0..100
  uint64_t memory_total = 0;  // bytes
  uint64_t memory_used = 0;   // total less MemAvailable
};

// From the text of /proc/meminfo and /proc/loadavg; what is missing counts 0.
HostLoad parseHostLoad(std::string_view meminfo, std::string_view loadavg, uint32_t cpus);
// The same, read from this host's /proc.
HostLoad readHostLoad(uint32_t cpus);

// `capacity`: the memory offered to containers (0: the host's total).
void fillLoad(proto::Load::Builder b, const HostLoad& load, uint64_t capacity);

}  // namespace ferry::agent
