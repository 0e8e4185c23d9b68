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
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/state_store.h"

namespace ferry::coord {

// A host's load from its last heartbeat.
struct LoadRow {
  double cpu_percent = 0;  // of the host's capacity, 0..100
  uint64_t memory_used_bytes = 0;
  uint64_t memory_total_bytes = 0;
  uint64_t memory_capacity_bytes = 0;  // what it offers containers (planning)
};

// What a heartbeat says of a container besides its placement: the secrets
// it is given (a migration's target must hold them) and its readiness
// (sd_notify).
struct ContainerExtras {
  std::vector<std::string> secrets;
  bool ready = false;
  std::string notify_status;
  // Its init's pid on the host that said all this (`reported_by`).
  uint32_t pid = 0;
  std::string reported_by;
};

// One heartbeat, read within the bounds of heartbeat.h.
struct HeartbeatReport {
  LoadRow load;
  std::vector<ContainerRow> containers;  // memory_bytes as reported
  std::map<std::string, ContainerExtras> extras;
  std::vector<ImageRow> images;
  std::set<std::string> secrets;  // the names in the host's secrets store
  std::vector<std::string> refused;  // what was left out, and why
  // The cluster network its containers can join ("" none), and why none.
  std::string network, network_error;
};

struct HostNetworkState {
  std::string cidr;   // "" none (yet)
  std::string error;  // why none, as the agent said
};

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
  // Its container network as its last heartbeat said (none before one).
  HostNetworkState network(const std::string& host) const;
  // A registered host's heartbeat: its load, and what it says of each
  // container replaces what the last one said -- a container no longer
  // reported is forgotten, so what is kept is bounded by what one
  // heartbeat may carry.
  void report(const std::string& host, const HeartbeatReport& r);
  // Each container's memory use from the host's last heartbeat.
  void setMemory(const std::string& host, std::map<std::string, uint64_t> by_container);
  // `row` with its memory use as last reported (the store's when none was).
  ContainerRow withMemory(ContainerRow row) const;
  // What an agent's answer said of a container, ahead of its next heartbeat.
  void noteExtras(const std::string& host, const std::string& container, ContainerExtras x);
  // A container's extras as `host` last said them, else as any host did
  // (just after a migration, before the target's next heartbeat).
  std::optional<ContainerExtras> extras(const std::string& host,
                                        const std::string& container) const;
  // Containers described, over all hosts (soft state; tests check it stays
  // bounded).
  size_t containersKnown() const;

 private:
  struct Host {
    bool up = true;
    int64_t last_heard_ms = 0;
    LoadRow load;
    HostNetworkState network;
    std::map<std::string, uint64_t> memory;
    std::map<std::string, ContainerExtras> extras;
  };
  std::map<std::string, Host> hosts_;
};

// What of a heartbeat is durable, so written to the store only when it
// differs from what the store holds (in any order): which containers the
// host holds with their image and status (not their memory use, which is
// soft state here), and its images by name and id.
bool placementChanged(std::vector<ContainerRow> stored, std::vector<ContainerRow> reported);
bool imagesChanged(std::vector<ImageRow> stored, std::vector<ImageRow> reported);

}  // namespace ferry::coord
