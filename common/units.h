// Sizes for people: the one formatter every part uses.
#pragma once

#include <cstdint>
#include <string>

namespace ferry {

// 512 B, 12.0 KiB, 3.4 MiB, 1.2 GiB (binary units, one decimal).
std::string formatBytes(uint64_t bytes);

}  // namespace ferry
