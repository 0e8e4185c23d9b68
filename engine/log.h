// The engine's spdlog logger ("engine"), created on first use. Lines about a
// container start with "[name]".
#pragma once

#include <spdlog/spdlog.h>

namespace ferry {
spdlog::logger& engineLog();
}  // namespace ferry
