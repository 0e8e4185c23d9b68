// Small helpers the command-line tools share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/units.h"  // formatBytes, for every tool

namespace ferry {

// Bad usage: the tools print it with a pointer to --help and exit 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace ferry
