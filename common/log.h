// Logging setup: one spdlog logger per component ("engine", "agent",
// "coordinator", "stream"), each created on first use, writing to stderr.
// Lines about a container start with "[name]". Thread-safe.
#pragma once

#include <spdlog/spdlog.h>

#include <exception>

namespace ferry {
// The logger named `name`, created on first use.
spdlog::logger& componentLog(const char* name);
// The engine's logger: componentLog("engine").
spdlog::logger& engineLog();

// For cleanup on a path that is already failing: runs f(), and logs instead
// of throwing, so one failed step does not skip the others or replace the
// error that started it.
template <class F>
void bestEffort(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    engineLog().warn("cleanup: {} failed: {}", what, e.what());
  } catch (...) {
    engineLog().warn("cleanup: {} failed", what);
  }
}
}  // namespace ferry
