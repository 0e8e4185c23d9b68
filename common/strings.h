// Splitting option strings ("ro,U,z", "db,type=env", "hostA,hostB"): one
// loop for every parser.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ferry {

// Every field between `sep`s, empty ones included ("a,,b" -> a, "", b;
// "" -> one empty field).
inline std::vector<std::string> splitFields(std::string_view s, char sep) {
  std::vector<std::string> out;
  for (size_t start = 0;;) {
    size_t end = s.find(sep, start);
    out.emplace_back(s.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

}  // namespace ferry
