#include "coordinator/planner.h"

#include "common/error.h"
#include "common/units.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

namespace ferry::coord {

double memoryPercent(const PlanHost& h) {
  if (h.memory_capacity == 0) return 0;
  return 100.0 * static_cast<double>(h.memory_used) / static_cast<double>(h.memory_capacity);
}

namespace {

uint64_t percentOf(uint64_t capacity, double percent) {
  return static_cast<uint64_t>(static_cast<double>(capacity) * percent / 100.0);
}

bool holdsImage(const PlanHost& h, const std::string& id) {
  return !id.empty() && std::binary_search(h.images.begin(), h.images.end(), id);
}

bool holdsSecrets(const PlanHost& h, const PlanContainer& c) {
  for (const auto& s : c.secrets) {
    if (!std::binary_search(h.secrets.begin(), h.secrets.end(), s)) return false;
  }
  return true;
}



// Containers by host, each list largest first (then by name: plans are
// deterministic).
std::unordered_map<std::string, std::vector<const PlanContainer*>> byHost(
    const std::vector<PlanContainer>& containers) {
  std::unordered_map<std::string, std::vector<const PlanContainer*>> out;
  for (const auto& c : containers) out[c.host].push_back(&c);
  for (auto& [h, list] : out) {
    std::sort(list.begin(), list.end(), [](const PlanContainer* a, const PlanContainer* b) {
      return a->memory_bytes != b->memory_bytes ? a->memory_bytes > b->memory_bytes
                                                : a->name < b->name;
    });
  }
  return out;
}

}  // namespace

Plan planDrain(const std::string& host, const std::vector<PlanHost>& hosts,
               const std::vector<PlanContainer>& containers, const ClassCompatible& compatible) {
  Plan plan;
  const PlanHost* source = nullptr;
  for (const auto& h : hosts) {
    if (h.name == host) source = &h;
  }
  if (!source) {
    plan.notes.push_back("unknown host " + host);
    return plan;
  }
  struct Target {
    const PlanHost* host;
    uint64_t used;
    int placed = 0;
  };
  std::vector<Target> targets;
  for (const auto& h : hosts) {
    if (h.name == host || !h.up || h.cordoned) continue;
    if (!compatible(source->compat_class, h.compat_class)) continue;
    targets.push_back({&h, h.memory_used});
  }
  if (targets.empty()) plan.notes.push_back("no host can take containers from " + host);
  auto mine = byHost(containers);
  for (const PlanContainer* c : mine[host]) {
    Target* best = nullptr;
    uint64_t best_free = 0;
    bool lacking_secrets = false;
    for (Target& t : targets) {
      if (!holdsSecrets(*t.host, *c)) {
        lacking_secrets = true;
        continue;
      }
      uint64_t ceiling = percentOf(t.host->memory_capacity, kTargetCeilingPercent);
      if (t.used + c->memory_bytes > ceiling) continue;
      uint64_t free_after = ceiling - t.used - c->memory_bytes;
      auto better = [&] {
        if (!best) return true;
        if (t.placed != best->placed) return t.placed < best->placed;
        if (free_after != best_free) return free_after > best_free;
        bool img = holdsImage(*t.host, c->image_id),
             best_img = holdsImage(*best->host, c->image_id);
        if (img != best_img) return img;
        if (t.host->cpu_percent != best->host->cpu_percent)
          return t.host->cpu_percent < best->host->cpu_percent;
        return t.host->name < best->host->name;
      };
      if (better()) {
        best = &t;
        best_free = free_after;
      }
    }
    if (!best) {
      std::string why =
          targets.empty() ? "no up, uncordoned, compatible host other than " + host
                          : "no host has " + formatBytes(c->memory_bytes) +
                                " of memory to spare for it (a target stays at most " +
                                std::to_string(static_cast<int>(kTargetCeilingPercent)) + " % full)";
      if (lacking_secrets) why += "; hosts without its secrets were passed over";
      plan.unplaced.push_back({c->name, why});
      continue;
    }
    best->used += c->memory_bytes;
    best->placed++;
    plan.moves.push_back(
        {c->name, host, best->host->name, c->memory_bytes, !holdsImage(*best->host, c->image_id)});
  }
  return plan;
}

namespace {
// A mark as given (%g): it comes from the wire, so it may be huge, infinite
// or NaN, which a cast to int could not show (and would be undefined).
std::string markText(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

void validateRebalanceOptions(const RebalanceOptions& o) {
  // Written so that NaN fails it: every comparison with NaN is false.
  bool ok = std::isfinite(o.high_percent) && std::isfinite(o.low_percent) &&
            o.high_percent <= 100 && o.low_percent >= 0 && o.low_percent < o.high_percent &&
            o.max_moves >= 1;
  if (!ok) {
    throw Error(ErrorCategory::kInvalidInput,
                "the low mark must be below the high one, the high one at most 100 and moves at least "
                "1 (got low " + markText(o.low_percent) + ", high " + markText(o.high_percent) +
                    ", " + std::to_string(o.max_moves) + " move(s))");
  }
}

Plan planRebalance(const std::vector<PlanHost>& hosts, const std::vector<PlanContainer>& containers,
                   const ClassCompatible& compatible, const RebalanceOptions& opts) {
  Plan plan;
  // Targets: hosts below low, ordered per class by room left under high.
  struct Room {
    uint64_t free;
    size_t index;
    bool operator<(const Room& o) const { return free != o.free ? free > o.free : index < o.index; }
  };
  std::map<int, std::set<Room>> rooms;  // compat class -> targets, most room first
  std::vector<uint64_t> used(hosts.size());
  std::vector<size_t> over;
  for (size_t i = 0; i < hosts.size(); ++i) {
    const PlanHost& h = hosts[i];
    used[i] = h.memory_used;
    if (!h.up || h.memory_capacity == 0) continue;
    double load = memoryPercent(h);
    if (load > opts.high_percent) over.push_back(i);
    if (load < opts.low_percent && !h.cordoned) {
      uint64_t high = percentOf(h.memory_capacity, opts.high_percent);
      rooms[h.compat_class].insert({high > h.memory_used ? high - h.memory_used : 0, i});
    }
  }
  if (over.empty()) {
    plan.notes.push_back("no host is above " + std::to_string(static_cast<int>(opts.high_percent)) +
                         " % memory load: nothing to do");
    return plan;
  }
  if (rooms.empty()) {
    plan.notes.push_back("no up, uncordoned host is below " +
                         std::to_string(static_cast<int>(opts.low_percent)) +
                         " % memory load to take containers");
    return plan;
  }
  std::sort(over.begin(), over.end(), [&](size_t a, size_t b) {
    double la = memoryPercent(hosts[a]), lb = memoryPercent(hosts[b]);
    return la != lb ? la > lb : hosts[a].name < hosts[b].name;
  });
  // The compatible target holding c's secrets with the most room that fits
  // it, or none.
  auto findTarget = [&](int from, const PlanContainer& c) -> std::optional<std::pair<int, Room>> {
    std::optional<std::pair<int, Room>> best;
    for (auto& [cls, set] : rooms) {
      if (!compatible(from, cls)) continue;
      for (const Room& r : set) {  // most room first
        if (r.free < c.memory_bytes) break;
        if (!holdsSecrets(hosts[r.index], c)) continue;
        if (!best || r.free > best->second.free) best = std::make_pair(cls, r);
        break;
      }
    }
    return best;
  };
  auto mine = byHost(containers);
  int skipped_cooldown = 0;
  for (size_t i : over) {
    if (static_cast<int>(plan.moves.size()) >= opts.max_moves) break;
    const PlanHost& src = hosts[i];
    uint64_t high = percentOf(src.memory_capacity, opts.high_percent);
    std::vector<const PlanContainer*> movable;
    for (const PlanContainer* c : mine[src.name]) {
      if (c->last_moved_ms > 0 && opts.now_ms - c->last_moved_ms < opts.cooldown_ms) {
        ++skipped_cooldown;
        continue;
      }
      if (c->memory_bytes > 0) movable.push_back(c);
    }
    auto place = [&](const PlanContainer* c) {
      auto t = findTarget(src.compat_class, *c);
      if (!t) return false;
      auto& set = rooms[t->first];
      set.erase(t->second);
      Room r = t->second;
      r.free -= c->memory_bytes;
      set.insert(r);
      used[i] -= std::min(used[i], c->memory_bytes);
      used[r.index] += c->memory_bytes;
      plan.moves.push_back({c->name, src.name, hosts[r.index].name, c->memory_bytes,
                            !holdsImage(hosts[r.index], c->image_id)});
      return true;
    };
    // One container that alone brings the host down: the smallest such.
    uint64_t excess = used[i] - high;
    const PlanContainer* single = nullptr;
    for (auto it = movable.rbegin(); it != movable.rend(); ++it) {  // smallest first
      if ((*it)->memory_bytes >= excess && findTarget(src.compat_class, **it)) {
        single = *it;
        break;
      }
    }
    if (single) {
      place(single);
      continue;
    }
    // Else the largest first, until it is down or nothing more fits.
    for (const PlanContainer* c : movable) {
      if (used[i] <= high || static_cast<int>(plan.moves.size()) >= opts.max_moves) break;
      if (!place(c)) {
        plan.unplaced.push_back({c->name, "no host below " +
                                              std::to_string(static_cast<int>(opts.low_percent)) +
                                              " % has room for " + formatBytes(c->memory_bytes)});
      }
    }
  }
  if (skipped_cooldown > 0) {
    plan.notes.push_back(
        std::to_string(skipped_cooldown) +
        " container(s) on overloaded hosts were moved within the cool-down and stay");
  }
  if (static_cast<int>(plan.moves.size()) >= opts.max_moves) {
    plan.notes.push_back("stopped at the limit of " + std::to_string(opts.max_moves) + " moves");
  }
  return plan;
}

std::string periodicRebalanceHold(const PeriodicRebalanceState& s) {
  auto names = [](const std::vector<std::string>& v) {
    std::string out;
    for (const auto& n : v) out += (out.empty() ? "" : ", ") + n;
    return out;
  };
  if (!s.drained_hosts.empty()) return "a drain of " + names(s.drained_hosts) + " is under way";
  if (s.operations > 0) return "a drain or rebalance is under way";
  if (s.migrations > 0) return std::to_string(s.migrations) + " migration(s) under way";
  if (!s.unheard_hosts.empty()) {
    return names(s.unheard_hosts) + " not heard from since the coordinator started";
  }
  return "";
}

Plan planPeriodicRebalance(const std::vector<PlanHost>& hosts,
                           std::vector<PlanContainer> containers,
                           const std::set<std::string>& owing, const ClassCompatible& compatible,
                           const RebalanceOptions& opts) {
  std::vector<std::string> left;
  std::erase_if(containers, [&](const PlanContainer& c) {
    if (!owing.count(c.name)) return false;
    left.push_back(c.name);
    return true;
  });
  Plan plan = planRebalance(hosts, containers, compatible, opts);
  for (const auto& name : left) {
    plan.notes.push_back(name + " owes cleanup from an earlier migration: not moved by itself");
  }
  return plan;
}

PostcopyChoice choosePostcopy(int asked, uint64_t memory_bytes, const std::string& source,
                              const std::string& source_unavailable, const std::string& target,
                              const std::string& target_unavailable) {
  if (asked < -1 || asked > 1) {
    throw Error(ErrorCategory::kInvalidInput,
                "post-copy must be on (1), off (0) or auto (-1), not " + std::to_string(asked));
  }
  if (asked == 0) return {false, "off (asked)"};
  std::string cannot;
  if (!source_unavailable.empty()) cannot = source + ": " + source_unavailable;
  if (!target_unavailable.empty()) {
    cannot += (cannot.empty() ? "" : "; ") + target + ": " + target_unavailable;
  }
  if (asked == 1) {
    if (!cannot.empty()) {
      throw Error(ErrorCategory::kIncompatible,
                  "post-copy cannot run here (" + cannot + "); migrate without --postcopy");
    }
    return {true, "on (asked)"};
  }
  if (!cannot.empty()) return {false, "off (auto: " + cannot + ")"};
  if (memory_bytes < kPostcopyAutoBytes) {
    return {false, "off (auto: " + formatBytes(memory_bytes) +
                       " of memory pauses about as briefly cold, and a cold migration risks "
                       "nothing; auto takes post-copy from " +
                       formatBytes(kPostcopyAutoBytes) + ")"};
  }
  return {true, "on (auto: " + formatBytes(memory_bytes) +
                    " of memory; the pause no longer grows with it. Pre-copy rounds go first, so "
                    "that the source alone holds only what changed since, until the last page "
                    "arrived)"};
}

}  // namespace ferry::coord
