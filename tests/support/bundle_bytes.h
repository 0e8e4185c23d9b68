// Bytes for bundle tests: random payloads and a hand-made bundle header (to
// build hostile bundles record by record).
#pragma once

#include <cstdint>
#include <random>
#include <string>

namespace ferry::testing {

inline std::string randomBytes(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

// "FERRYBN1", format version 1, reserved 0.
inline std::string bundleFileHeader() {
  std::string h = "FERRYBN1";
  uint32_t v = 1, z = 0;
  h.append(reinterpret_cast<const char*>(&v), 4);
  h.append(reinterpret_cast<const char*>(&z), 4);
  return h;
}

}  // namespace ferry::testing
