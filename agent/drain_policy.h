// When a host asks to be drained on its own: memory pressure (PSI "some"
// avg10 of /proc/pressure/memory, percent) above a limit, or free space of
// the state root's file system (percent) below one, for kDrainStreak
// heartbeats in a row. Asked once per episode: the drain cordons the host,
// and a new request waits until the condition has cleared.
//
// Thread-safety: DrainPolicy is one heartbeat loop's state, not shared.
// The host source blocks on reading /proc/pressure/memory and statvfs.
#pragma once

#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace ferry::agent {

inline constexpr int kDrainStreak = 3;

// One look at the host; nullopt: unknown (no PSI in this kernel, statvfs
// failed), which never asks for a drain.
struct HostPressure {
  std::optional<double> memory_some_avg10;  // percent
  std::optional<double> disk_free_percent;  // of the state root's file system
};

// The avg10 of the "some" line that /proc/pressure/memory starts with:
// "some avg10=1.23 avg60=... total=..."; nullopt for anything else.
std::optional<double> parsePsiSomeAvg10(std::string_view text);

using PressureSource = std::function<HostPressure()>;
// This host: /proc/pressure/memory, and statvfs of `state_root`.
PressureSource hostPressureSource(std::filesystem::path state_root);

class DrainPolicy {
 public:
  // A limit of 0 (or less) turns its condition off.
  DrainPolicy(double memory_pressure_above, double disk_free_below)
      : memory_limit_(memory_pressure_above), disk_limit_(disk_free_below) {}

  bool enabled() const { return memory_limit_ > 0 || disk_limit_ > 0; }
  // One heartbeat's look: why to ask for a drain now, or nullopt.
  std::optional<std::string> observe(const HostPressure& p);

 private:
  // Why a condition holds in `p` (memory first), or "".
  std::string reason(const HostPressure& p) const;

  double memory_limit_;
  double disk_limit_;
  int streak_ = 0;     // looks in a row that a condition held
  bool asked_ = false; // this episode's drain was asked for
};

}  // namespace ferry::agent
