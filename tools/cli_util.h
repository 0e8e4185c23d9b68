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

// The command line, consumed front to back.
struct Args {
  std::vector<std::string> v;
  size_t i = 0;
  bool more() const { return i < v.size(); }
  const std::string& peek() const { return v[i]; }
  std::string next(const std::string& what) {
    if (!more()) throw UsageError("missing " + what);
    return v[i++];
  }
  bool flag(const std::string& f) {
    if (more() && v[i] == f) return ++i, true;
    return false;
  }
};

}  // namespace ferry
