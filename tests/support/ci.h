// Whether this run is CI's: CI=true exactly (as CI machines set it). Under
// CI a test whose prerequisite (root, CRIU, ...) is missing fails instead of
// skipping, so a green CI run means every test that can run here ran. Any
// other value, or none, is a developer's machine, where a missing
// prerequisite skips with the reason.
#pragma once

#include <cstdlib>
#include <string_view>

namespace ferry::testing {

inline bool underCi() {
  const char* ci = std::getenv("CI");
  return ci != nullptr && std::string_view(ci) == "true";
}

// In a test body: skips a test that no setup of this machine could run --
// a property of the machine itself (its kernel, its capability bounding
// set), not a package or privilege a CI machine must provide. Say which
// property, and which test covers the other side. CI skips these too, and
// tools/test.sh lets only these skips pass a CI run, listing each.
#define FERRY_SKIP_CANNOT_RUN_HERE(reason) GTEST_SKIP() << "cannot run on this machine: " << reason

}  // namespace ferry::testing
