// Names of hosts, containers, images and volumes: one rule everywhere,
// checked wherever a name arrives (CLI, wire, archive). Part of ferry_base.
#pragma once

#include <string>

namespace ferry {

// A host or container name: [A-Za-z0-9][A-Za-z0-9_.-]{0,62}. Throws Error
// kInvalidInput naming `what` otherwise.
void validateName(const std::string& name, const std::string& what);

}  // namespace ferry
