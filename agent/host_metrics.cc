#include "agent/host_metrics.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string>

namespace ferry::agent {

namespace {
std::string slurp(const char* path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
}  // namespace

HostLoad parseHostLoad(std::string_view meminfo, std::string_view loadavg, uint32_t cpus) {
  std::istringstream mem{std::string(meminfo)};
  std::string key, unit;
  uint64_t value = 0, available = 0;
  HostLoad out;
  while (mem >> key >> value >> unit) {
    if (key == "MemTotal:") out.memory_total = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  out.memory_used = out.memory_total > available ? out.memory_total - available : 0;
  double load = 0;
  std::istringstream{std::string(loadavg)} >> load;
  out.cpu_percent = cpus ? std::min(100.0, 100.0 * load / cpus) : 0;
  return out;
}

HostLoad readHostLoad(uint32_t cpus) {
  return parseHostLoad(slurp("/proc/meminfo"), slurp("/proc/loadavg"), cpus);
}

void fillLoad(proto::Load::Builder b, const HostLoad& load, uint64_t capacity) {
  b.setCpuPercent(static_cast<float>(load.cpu_percent));
  b.setMemoryTotalBytes(load.memory_total);
  b.setMemoryUsedBytes(load.memory_used);
  b.setMemoryCapacityBytes(capacity ? capacity : load.memory_total);
}

}  // namespace ferry::agent
