// Cap'n Proto text and text lists as std::string: the one conversion every
// part that reads messages uses.
#pragma once

#include <capnp/list.h>

#include <string>
#include <vector>

namespace ferry::proto {

inline std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

inline std::vector<std::string> strings(capnp::List<capnp::Text>::Reader l) {
  std::vector<std::string> out;
  for (auto t : l) out.push_back(text(t));
  return out;
}

}  // namespace ferry::proto
