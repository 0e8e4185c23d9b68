// The agent's own logger ("agent"); the engine it embeds logs as "engine".
#pragma once

#include "common/log.h"

namespace ferry::agent {
inline spdlog::logger& agentLog() { return componentLog("agent"); }
}  // namespace ferry::agent
