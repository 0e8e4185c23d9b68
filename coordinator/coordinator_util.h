// Helpers shared by the coordinator's source files (coordinator.cc,
// placement.cc); not part of its interface.
#pragma once

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>
#include <string>

#include "coordinator/state_store.h"
#include "compat/host_info.h"
#include "protocol/control.capnp.h"
#include "protocol/capnp_text.h"

namespace ferry::coord::detail {

inline spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto existing = spdlog::get("coordinator");
    return existing ? existing : spdlog::stderr_color_mt("coordinator");
  }();
  return *l;
}

using proto::text;

inline HostInfo hostInfoOf(const HostRow& row) {
  nlohmann::json j = nlohmann::json::parse(row.host_info_json, nullptr, false);
  return j.is_object() ? j.get<HostInfo>() : HostInfo{};
}

}  // namespace ferry::coord::detail
