// sd_notify for containers run with --sdnotify=container: one datagram
// socket per container, <container dir>/notify/notify.sock, the directory
// bind-mounted at /run/notify (a directory, not the socket: a socket bound
// again later -- by a restarted agent, or on a migration's target -- is then
// what the container reaches). A thread receives READY=1 and STATUS=...
// and keeps them in <container dir>/notify.state, outside what the
// container sees.
//
// Thread-safety: every call may come from any thread. The receiving thread
// starts with the first watch() and ends with the listener.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "common/fd.h"

namespace ferry {

namespace fs = std::filesystem;

struct NotifyState {
  bool ready = false;      // READY=1 was received (at any time, on any host)
  std::string status;      // the last STATUS=
  int64_t ready_unix = 0;  // when READY=1 came
};

// notify.state: "READY=1\nSTATUS=...\nREADY_UNIX=N\n"; a missing file is
// the empty state.
NotifyState readNotifyState(const fs::path& file);
void writeNotifyState(const fs::path& file, const NotifyState& s);
// Applies one sd_notify datagram (newline-separated KEY=VALUE) to a state.
// Returns whether it changed.
bool applyNotifyMessage(NotifyState& s, const std::string& datagram, int64_t now_unix);

class NotifyListener {
 public:
  NotifyListener() = default;
  ~NotifyListener();
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // Binds <dir>/notify.sock (replacing a stale one; dir is created 0755 and
  // the socket made writable by any container user) and records what
  // arrives in `state_file`. Throws Error on failure.
  void watch(const std::string& name, const fs::path& dir, const fs::path& state_file);
  void unwatch(const std::string& name);

 private:
  struct Watched {
    UniqueFd fd;
    fs::path state_file;
  };
  void loop();
  void wake();

  std::mutex mu_;
  std::map<std::string, Watched> watched_;
  UniqueFd wake_fd_;  // eventfd: the set changed, or stop
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace ferry
