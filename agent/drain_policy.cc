#include "agent/drain_policy.h"

#include <sys/statvfs.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

namespace ferry::agent {

std::optional<double> parsePsiSomeAvg10(std::string_view text) {
  std::istringstream in{std::string(text)};
  std::string kind, avg10;
  if (!(in >> kind >> avg10) || kind != "some" || avg10.rfind("avg10=", 0) != 0) {
    return std::nullopt;
  }
  const char* start = avg10.c_str() + 6;
  char* end = nullptr;
  double v = std::strtod(start, &end);
  if (end == start || *end != '\0') return std::nullopt;
  return v;
}

PressureSource hostPressureSource(std::filesystem::path state_root) {
  return [root = std::move(state_root)] {
    HostPressure p;
    std::ifstream psi("/proc/pressure/memory");
    std::stringstream text;
    text << psi.rdbuf();
    p.memory_some_avg10 = parsePsiSomeAvg10(text.str());
    struct statvfs vfs;
    if (::statvfs(root.c_str(), &vfs) == 0 && vfs.f_blocks > 0) {
      p.disk_free_percent =
          100.0 * static_cast<double>(vfs.f_bavail) / static_cast<double>(vfs.f_blocks);
    }
    return p;
  };
}

std::string DrainPolicy::reason(const HostPressure& p) const {
  if (memory_limit_ > 0 && p.memory_some_avg10 && *p.memory_some_avg10 > memory_limit_) {
    return "memory pressure " + std::to_string(*p.memory_some_avg10) +
           " % (PSI some avg10) is above " + std::to_string(memory_limit_) + " %";
  }
  if (disk_limit_ > 0 && p.disk_free_percent && *p.disk_free_percent < disk_limit_) {
    return "the state root's file system has " + std::to_string(*p.disk_free_percent) +
           " % free, below " + std::to_string(disk_limit_) + " %";
  }
  return "";
}

std::optional<std::string> DrainPolicy::observe(const HostPressure& p) {
  std::string why = reason(p);
  if (why.empty()) {
    streak_ = 0;
    asked_ = false;  // cleared: a later episode may drain again
    return std::nullopt;
  }
  if (++streak_ >= kDrainStreak && !asked_) {
    asked_ = true;
    return why;
  }
  return std::nullopt;
}

}  // namespace ferry::agent
