// Small helpers the command-line tools share.
#pragma once

#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

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

// 512 B, 12.0 KiB, 3.4 MiB, 1.2 GiB
inline std::string humanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%llu B", static_cast<unsigned long long>(b));
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  }
  return buf;
}

}  // namespace ferry
