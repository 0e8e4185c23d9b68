// Waiting without polling: for a process to exit (a pidfd) and for a file to
// be written (inotify). The engine waits on containers, conmon and its exit
// files with these instead of sleeping in a loop.
//
// Thread-safety: a PidFd is a value like UniqueFd; the functions keep no
// state. Every call blocks at most for the timeout it is given.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>

#include "common/fd.h"

namespace ferry {

// A process, held by a pidfd (pidfd_open(2)): it refers to the one process
// for its whole life, so a pid reused by another process is never waited on
// or signalled by mistake. The process need not be our child.
class PidFd {
 public:
  PidFd() = default;
  // Opens `pid`'s pidfd. A process that no longer exists (reaped already:
  // ESRCH) gives an empty PidFd, which counts as exited. Throws Error on any
  // other failure.
  static PidFd open(pid_t pid);

  bool valid() const { return fd_.valid(); }
  // Readable (poll) once the process has exited; -1 when empty.
  int get() const { return fd_.get(); }

  // Blocks until the process has exited (a zombie counts) or the timeout
  // passes; whether it has exited.
  bool waitExit(std::chrono::milliseconds timeout) const;
  bool exited() const { return waitExit(std::chrono::milliseconds(0)); }
  // pidfd_send_signal(2); nothing when the process has exited.
  void signal(int sig) const;

 private:
  explicit PidFd(UniqueFd fd) : fd_(std::move(fd)) {}
  UniqueFd fd_;
};

// Blocks until `file` is written (renamed into its directory or closed
// after writing: conmon writes exit files through a rename) and `ready`
// holds, or the timeout passes; whether `ready` holds. `ready` defaults to
// "the file exists". It is checked once before waiting, so a file written
// earlier is found at once. When the directory does not exist, nothing is
// waited for.
bool waitForFile(const std::filesystem::path& file, std::chrono::milliseconds timeout,
                 const std::function<bool()>& ready = {});

}  // namespace ferry
