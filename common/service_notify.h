// Telling systemd how a daemon is doing (sd_notify(3)), for units of
// Type=notify: READY=1 once it serves, WATCHDOG=1 from its event loop while
// the loop turns (WatchdogSec=), STOPPING=1 and a STATUS= line. Outside
// systemd (no NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <chrono>
#include <string>

namespace ferry {

class ServiceNotifier {
 public:
  // Reads NOTIFY_SOCKET and WATCHDOG_USEC/WATCHDOG_PID once; the daemon's
  // children never see them (engine/runtime/process.cc leaves them out).
  ServiceNotifier();

  bool underSystemd() const { return enabled_; }
  // Zero when the unit has no watchdog.
  std::chrono::microseconds watchdogInterval() const { return watchdog_; }

  void ready(const std::string& status);
  void status(const std::string& status);
  void stopping(const std::string& status);
  // From the event loop, each turn: WATCHDOG=1 once half the interval has
  // passed since the last. A loop that stops turning stops petting, and
  // systemd restarts the daemon (Restart=on-failure).
  void tick();
  // Asks for `more` time to finish starting or stopping (a drain on stop).
  void extendTimeout(std::chrono::microseconds more);

 private:
  void send(const std::string& state);

  bool enabled_ = false;
  bool warned_ = false;
  std::chrono::microseconds watchdog_{0};
  std::chrono::steady_clock::time_point last_pet_{};
};

}  // namespace ferry
