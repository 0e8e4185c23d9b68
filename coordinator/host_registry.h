// Hosts' liveness and load: soft state, in memory only (DESIGN.md, "High
// availability"). A heartbeat updates it without touching the store: only
// durable facts (a host registered, its metadata, its cordon, where
// containers are) are committed to SQLite, and only when they change. After
// a coordinator restart it is rebuilt from the agents' next heartbeats.
//
// Times are the caller's (ms since the epoch); no clock is read here.
// Not thread-safe: the coordinator's one thread owns it.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "coordinator/state_store.h"

namespace ferry::coord {

class HostRegistry {
 public:
  // A host the store knows of, not heard from yet by this coordinator: up
  // until it has been silent for the missed-heartbeat window from `now_ms`.
  void add(const std::string& host, int64_t now_ms);
  bool has(const std::string& host) const { return hosts_.count(host) > 0; }
  // The host reported; true when it had been marked down (it is up again).
  bool heard(const std::string& host, int64_t now_ms);
  // Marks hosts silent since before `cutoff_ms` down; returns those newly down.
  std::vector<std::string> markSilentDown(int64_t cutoff_ms);

  bool up(const std::string& host) const;
  int64_t lastHeard(const std::string& host) const;  // 0 when never

  void setLoad(const std::string& host, const LoadRow& load);
  LoadRow load(const std::string& host) const;  // zeros when never reported
  // Each container's memory use from the host's last heartbeat.
  void setMemory(const std::string& host, std::map<std::string, uint64_t> by_container);
  // `row` with its memory use as last reported (the store's when none was).
  ContainerRow withMemory(ContainerRow row) const;

 private:
  struct Host {
    bool up = true;
    int64_t last_heard_ms = 0;
    LoadRow load;
    std::map<std::string, uint64_t> memory;
  };
  std::map<std::string, Host> hosts_;
};

}  // namespace ferry::coord
