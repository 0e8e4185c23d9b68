// Whether this run is CI's: CI=true exactly (as CI machines set it). Under
// CI a test whose prerequisite (root, CRIU, ...) is missing fails instead of
// skipping, so a green CI run means every test ran. Any other value, or
// none, is a developer's machine, where a missing prerequisite skips with
// the reason.
#pragma once

#include <cstdlib>
#include <string_view>

namespace ferry::testing {

inline bool underCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

}  // namespace ferry::testing
