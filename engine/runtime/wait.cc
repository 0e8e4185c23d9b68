#include "engine/runtime/wait.h"

#include <limits.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "common/error.h"

namespace ferry {

namespace {

using Clock = std::chrono::steady_clock;

// Milliseconds left until `deadline`, rounded up so that a wait never wakes
// just before it and spins; 0 once it has passed.
int msLeft(Clock::time_point deadline) {
  auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
  return left <= 0 ? 0 : left > INT32_MAX ? INT32_MAX : static_cast<int>(left);
}

// poll(2) on one descriptor until it is readable or the deadline passes,
// retrying EINTR with the time that is left.
bool readableBy(int fd, Clock::time_point deadline, const char* what) {
  for (;;) {
    pollfd p{fd, POLLIN, 0};
    int n = ::poll(&p, 1, msLeft(deadline));
    if (n > 0) return true;
    if (n == 0) return false;
    if (errno != EINTR) throwErrno(std::string("poll ") + what);
  }
}

}  // namespace

PidFd PidFd::open(pid_t pid) {
  if (pid <= 0) return PidFd();
  // glibc 2.36 has no wrapper for pidfd_open.
  int fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  if (fd < 0) {
    if (errno == ESRCH) return PidFd();
    throwErrno("pidfd_open " + std::to_string(pid));
  }
  // pidfds are close-on-exec from birth (pidfd_open(2)).
  return PidFd(UniqueFd(fd));
}

bool PidFd::waitExit(std::chrono::milliseconds timeout) const {
  if (!valid()) return true;
  return readableBy(fd_.get(), Clock::now() + timeout, "pidfd");
}

void PidFd::signal(int sig) const {
  if (!valid()) return;
  if (::syscall(SYS_pidfd_send_signal, fd_.get(), sig, nullptr, 0) != 0 && errno != ESRCH) {
    throwErrno("pidfd_send_signal " + std::to_string(sig));
  }
}

bool waitForFile(const std::filesystem::path& file, std::chrono::milliseconds timeout,
                 const std::function<bool()>& ready) {
  auto done = [&] {
    std::error_code ec;
    return ready ? ready() : std::filesystem::exists(file, ec);
  };
  auto deadline = Clock::now() + timeout;
  UniqueFd in(::inotify_init1(IN_CLOEXEC | IN_NONBLOCK));
  if (!in) throwErrno("inotify_init1");
  std::filesystem::path dir = file.has_parent_path() ? file.parent_path() : ".";
  if (::inotify_add_watch(in.get(), dir.c_str(), IN_CLOSE_WRITE | IN_MOVED_TO) < 0) {
    if (errno == ENOENT) return done();
    throwErrno("inotify_add_watch " + dir.string());
  }
  // Checked after the watch is in place: a write in between is not missed.
  if (done()) return true;
  const std::string name = file.filename().string();
  alignas(inotify_event) char buf[16 * (sizeof(inotify_event) + NAME_MAX + 1)];
  while (readableBy(in.get(), deadline, "inotify")) {
    bool ours = false;
    ssize_t n;
    while ((n = retryEintr([&] { return ::read(in.get(), buf, sizeof buf); })) > 0) {
      for (char* p = buf; p < buf + n;) {
        auto* ev = reinterpret_cast<inotify_event*>(p);
        // A removed directory ends the watch; an overflow may have dropped
        // our event.
        if (ev->mask & IN_IGNORED) return done();
        if ((ev->mask & IN_Q_OVERFLOW) ||
            (ev->len > 0 && std::strcmp(ev->name, name.c_str()) == 0)) {
          ours = true;
        }
        p += sizeof(inotify_event) + ev->len;
      }
    }
    if (n < 0 && errno != EAGAIN) throwErrno("read inotify");
    if (ours && done()) return true;
  }
  return done();
}

}  // namespace ferry
