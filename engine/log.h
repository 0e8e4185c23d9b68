// The engine's spdlog logger ("engine"), created on first use. Lines about a
// container start with "[name]".
#pragma once

#include <spdlog/spdlog.h>

#include <exception>

namespace ferry {
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
