// Helpers shared by the coordinator's source files (coordinator.cc,
// dispatch.cc, migration.cc, cleanups.cc, placement.cc); not part of its
// interface.
#pragma once

#include <spdlog/spdlog.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "compat/host_info.h"
#include "coordinator/migration_machine.h"
#include "coordinator/state_store.h"
#include "protocol/capnp_text.h"
#include "protocol/control.capnp.h"
#include "protocol/rpc.h"

#include "common/log.h"
#include "common/random.h"

namespace ferry::coord::detail {

inline spdlog::logger& log() { return componentLog("coordinator"); }

using proto::text;

inline HostInfo hostInfoOf(const HostRow& row) {
  nlohmann::json j = nlohmann::json::parse(row.host_info_json, nullptr, false);
  return j.is_object() ? j.get<HostInfo>() : HostInfo{};
}

// A one-time stream token.
// A one-time stream token: 32 bytes from the kernel (getrandom).
inline std::string randomToken() { return randomBytes(32); }

// An agent's refusal of rollbackSource saying it holds no frozen copy.
inline bool noFrozenCopy(const Error& e) {
  return std::string_view(e.what()).find(proto::NO_FROZEN_COPY.get().cStr()) !=
         std::string_view::npos;
}

inline capnp::Data::Reader dataOf(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

inline std::string joinNames(const std::vector<HostRow>& hosts) {
  std::string out;
  for (const auto& h : hosts) out += (out.empty() ? "" : ", ") + h.name;
  return out.empty() ? "none registered" : out;
}

inline int64_t msBetween(std::chrono::steady_clock::time_point a,
                         std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

// What an agent is told for migration commands that cleanups also send
// (commit, discard, rollback): one filler for both.
proto::Fill fillCleanup(Command c, const std::string& container, int64_t migration);

// A migration's record as the CLI shows it (history, the final answer).
void fillFigures(proto::MigrationFigures::Builder f, const MigrationRow& m);

}  // namespace ferry::coord::detail
