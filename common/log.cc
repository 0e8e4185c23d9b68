#include "common/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>

namespace ferry {

spdlog::logger& componentLog(const char* name) {
  // spdlog's registry is thread-safe, but get-then-create is not atomic.
  static std::mutex mu;
  std::lock_guard lock(mu);
  std::shared_ptr<spdlog::logger> l = spdlog::get(name);
  if (!l) l = spdlog::stderr_color_mt(name);
  return *l;  // the registry keeps it alive
}

spdlog::logger& engineLog() {
  static spdlog::logger& l = componentLog("engine");
  return l;
}

}  // namespace ferry
