#include "common/service_notify.h"

#include <systemd/sd-daemon.h>

#include <cstdlib>
#include <cstring>

#include "common/log.h"

namespace ferry {

ServiceNotifier::ServiceNotifier() {
  const char* socket = std::getenv("NOTIFY_SOCKET");
  enabled_ = socket != nullptr && *socket != '\0';
  uint64_t usec = 0;
  // > 0 only when WATCHDOG_PID, if set, is this process.
  if (enabled_ && sd_watchdog_enabled(/*unset_environment=*/0, &usec) > 0) {
    watchdog_ = std::chrono::microseconds(usec);
  }
}

void ServiceNotifier::send(const std::string& state) {
  if (!enabled_) return;
  int rc = sd_notify(/*unset_environment=*/0, state.c_str());
  if (rc < 0 && !warned_) {
    warned_ = true;  // once: a daemon must not flood its log over this
    componentLog("service").warn("telling systemd '{}' failed: {} (NOTIFY_SOCKET {})",
                                 state.substr(0, state.find('\n')), std::strerror(-rc),
                                 std::getenv("NOTIFY_SOCKET"));
  }
}

void ServiceNotifier::ready(const std::string& status) {
  send("READY=1\nSTATUS=" + status);
  last_pet_ = std::chrono::steady_clock::now();
}

void ServiceNotifier::status(const std::string& status) { send("STATUS=" + status); }

void ServiceNotifier::stopping(const std::string& status) {
  send("STOPPING=1\nSTATUS=" + status);
}

void ServiceNotifier::tick() {
  if (watchdog_.count() == 0) return;
  auto now = std::chrono::steady_clock::now();
  if (now - last_pet_ < watchdog_ / 2) return;
  last_pet_ = now;
  send("WATCHDOG=1");
}

void ServiceNotifier::extendTimeout(std::chrono::microseconds more) {
  send("EXTEND_TIMEOUT_USEC=" + std::to_string(more.count()));
}

}  // namespace ferry
