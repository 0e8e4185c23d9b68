// Placement planning for host drain and load rebalancing: pure functions of
// a snapshot of the cluster (no I/O, no clock), so that they are unit-tested
// and benchmarked on their own (tools/bench/planner_bench.cc).
//
// The load model: a host's memory load is what ferry's containers use on it
// against the memory it offers containers (the agent's --memory-capacity,
// the host's memory by default) -- like Kubernetes' allocatable. CPU is the
// host's whole CPU use in percent, as its agent reports it; containers report
// no CPU rate, and the host figure is a load average that every host of a
// one-machine cluster shares, so CPU only breaks ties between targets.
//
// Compatibility is by class: hosts whose recorded metadata are the same for
// every compatibility check share a class, and the caller says which classes
// may migrate to which (ferry_compat's checks, computed once per pair of
// classes instead of once per pair of hosts).
#pragma once

#include <cstdint>
#include <functional>
#include <set>
#include <string>
#include <vector>

namespace ferry::coord {

struct PlanHost {
  std::string name;
  bool up = true;
  bool cordoned = false;
  uint64_t memory_capacity = 0;  // bytes the host offers containers
  uint64_t memory_used = 0;      // bytes its containers use
  double cpu_percent = 0;        // the whole host, 0..100
  int compat_class = 0;
  std::vector<std::string> images;  // image ids it holds (sorted)
  std::vector<std::string> secrets; // names in its secrets store (sorted)
};

struct PlanContainer {
  std::string name;
  std::string host;
  std::string image_id;       // empty when unknown
  uint64_t memory_bytes = 0;  // what a migration copies
  int64_t last_moved_ms = 0;  // end of its last migration (0: never)
  std::vector<std::string> secrets;  // host secrets it is given: a target must hold them
};

struct Move {
  std::string container;
  std::string source;
  std::string target;
  uint64_t memory_bytes = 0;
  bool sends_image = false;  // the target lacks its image (sent first)
};

struct Unplaced {
  std::string container;
  std::string reason;
};

struct Plan {
  std::vector<Move> moves;
  std::vector<Unplaced> unplaced;  // could not be placed, with why
  std::vector<std::string> notes;  // what the planner decided, for the operator
};

// Whether a container may go from a host of class `from` to one of class `to`.
using ClassCompatible = std::function<bool(int from, int to)>;

// A host stays at most this full after a move onto it (percent of capacity).
inline constexpr double kTargetCeilingPercent = 90;

// Every container of `host` to another host: largest first, each to the
// up, uncordoned, compatible host with the most memory left after it,
// preferring (in this order) fewer containers already placed there by this
// plan (spread), a host that holds the image, and a less busy CPU. A container
// no host can take is listed in `unplaced` with the reason.
Plan planDrain(const std::string& host, const std::vector<PlanHost>& hosts,
               const std::vector<PlanContainer>& containers, const ClassCompatible& compatible);

struct RebalanceOptions {
  double high_percent = 80;  // a host above this much memory load gives
  double low_percent = 50;   // a host below this takes, up to high_percent
  int max_moves = 10;
  int64_t now_ms = 0;
  int64_t cooldown_ms = 10 * 60 * 1000;  // not moved again within this
};
// low below high, high at most 100. Throws Error kInvalidInput saying so.
void validateRebalanceOptions(const RebalanceOptions& o);

// In the spirit of the descheduler's LowNodeUtilization: hosts above high
// shed containers until they are at or below high, onto hosts below low,
// which take them only while they stay at or below high. For each
// overloaded host (most loaded first): one container that alone brings it
// down if there is one (the smallest such: fewest moves, least to copy),
// else the largest first. Never onto a cordoned, down or incompatible
// host; never a container moved within the cool-down; at most max_moves.
Plan planRebalance(const std::vector<PlanHost>& hosts, const std::vector<PlanContainer>& containers,
                   const ClassCompatible& compatible, const RebalanceOptions& opts);

// --- the coordinator's own rebalance (ferry-coordinator --rebalance-every) ---

// What the coordinator knows when a period comes round.
struct PeriodicRebalanceState {
  size_t operations = 0;                   // drains and rebalances under way
  size_t migrations = 0;                   // migrations under way
  std::vector<std::string> drained_hosts;  // drains recorded: running, or to resume
  std::vector<std::string> unheard_hosts;  // up, not heard from since the coordinator started
};
// Why a periodic rebalance does not plan now, or "" when it may. Never beside
// a drain (also one recorded but not resumed yet after a restart), another
// rebalance or a migration: it would plan over a cluster that is moving.
// Never before every up host has reported since the coordinator started:
// their load would be from before.
std::string periodicRebalanceHold(const PeriodicRebalanceState& s);

// A periodic rebalance's plan: planRebalance over the containers that owe
// no cleanup (`owing`): a migration of one is refused at once, so the
// coordinator never picks one by itself. A note names each one left out; its
// memory still counts in its host's load.
Plan planPeriodicRebalance(const std::vector<PlanHost>& hosts,
                           std::vector<PlanContainer> containers,
                           const std::set<std::string>& owing, const ClassCompatible& compatible,
                           const RebalanceOptions& opts);

// Memory load in percent (0 for a host without capacity).
double memoryPercent(const PlanHost& h);

// --- post-copy or not, for one migration ---

struct PostcopyChoice {
  bool on = false;
  std::string why;  // for the result: what was chosen and why
};
// asked: 1 (--postcopy), 0 (--no-postcopy), -1 (auto). A host's
// `unavailable` is its reason post-copy cannot run there ("" it can).
// --postcopy is refused (kIncompatible, with the host's reason) where it
// cannot run. Pre-copy rounds (`precopy`: auto or N) run before it either
// way: the hybrid, whose post-copy fetches only what changed since the
// last round.
//
// Auto chooses it where both hosts can run it and the container has at
// least kPostcopyAutoBytes of memory. Measured here (BENCHMARKS.md): the
// pause a cold migration costs grows with memory (2.6 s at 256 MiB, 7.1 s
// at 1 GiB) while post-copy's stays under a second at any size; below that
// size cold pauses about as briefly and risks nothing. The risk post-copy
// takes: until the last page arrived, the source's death loses the
// container. Its pre-copy rounds first keep that window to what changed
// since them (pre-copy off, the window is the whole memory's transfer).
inline constexpr uint64_t kPostcopyAutoBytes = uint64_t{256} << 20;
PostcopyChoice choosePostcopy(int asked, uint64_t memory_bytes, const std::string& source,
                              const std::string& source_unavailable, const std::string& target,
                              const std::string& target_unavailable);

}  // namespace ferry::coord
