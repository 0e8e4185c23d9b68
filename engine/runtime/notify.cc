#include "engine/runtime/notify.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <sstream>
#include <vector>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/time_util.h"

namespace ferry {

NotifyState readNotifyState(const fs::path& file) {
  NotifyState s;
  std::optional<std::string> text = readFileIfExists(file);  // gone with its container
  if (!text) return s;
  std::istringstream in(*text);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "READY=1") s.ready = true;
    if (line.rfind("STATUS=", 0) == 0) s.status = line.substr(7);
    if (line.rfind("READY_UNIX=", 0) == 0) s.ready_unix = std::atoll(line.c_str() + 11);
  }
  return s;
}

void writeNotifyState(const fs::path& file, const NotifyState& s) {
  std::string out = s.ready ? "READY=1\n" : "";
  if (!s.status.empty()) out += "STATUS=" + s.status + "\n";
  if (s.ready_unix) out += "READY_UNIX=" + std::to_string(s.ready_unix) + "\n";
  // Renamed into place, not synced: it changes as often as a container
  // says something, and a crash losing the last STATUS= is harmless.
  fs::path tmp = file;
  tmp += ".tmp";
  {
    UniqueFd fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    writeAll(fd.get(), out, tmp);
  }
  if (::rename(tmp.c_str(), file.c_str()) != 0) throwErrno("rename " + tmp.string());
}

bool applyNotifyMessage(NotifyState& s, const std::string& datagram, int64_t now_unix) {
  bool changed = false;
  std::istringstream in(datagram);
  std::string line;
  while (std::getline(in, line)) {
    if (line == "READY=1" && !s.ready) {
      s.ready = true;
      s.ready_unix = now_unix;
      changed = true;
    } else if (line.rfind("STATUS=", 0) == 0) {
      // One line, printable: it is shown to operators.
      std::string status = line.substr(7, 256);
      for (char& c : status) {
        if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = '?';
      }
      changed = changed || status != s.status;
      s.status = status;
    }
  }
  return changed;
}

NotifyListener::~NotifyListener() {
  {
    std::lock_guard<std::mutex> g(mu_);
    stop_ = true;
  }
  if (thread_.joinable()) {
    wake();
    thread_.join();
  }
}

void NotifyListener::wake() {
  uint64_t one = 1;
  if (wake_fd_) (void)!::write(wake_fd_.get(), &one, sizeof one);
}

void NotifyListener::watch(const std::string& name, const fs::path& dir, const fs::path& state_file) {
  makeDirs(dir, 0755);
  fs::path sock = dir / "notify.sock";
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (sock.string().size() >= sizeof addr.sun_path) {
    throwInvalidInput("notify socket path " + sock.string() + " is too long for a unix socket");
  }
  std::strncpy(addr.sun_path, sock.c_str(), sizeof addr.sun_path - 1);
  UniqueFd fd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) throwErrno("socket for " + sock.string());
  ::unlink(sock.c_str());  // stale, from an earlier process
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) throwErrno("bind " + sock.string());
  // Any container user may notify (connect needs write permission). Never
  // through a link: the directory is the container's to see (read-only).
  if (::fchmodat(AT_FDCWD, sock.c_str(), 0777, AT_SYMLINK_NOFOLLOW) != 0) throwErrno("chmod " + sock.string());
  std::lock_guard<std::mutex> g(mu_);
  watched_[name] = Watched{std::move(fd), state_file};
  if (!wake_fd_) {
    wake_fd_ = UniqueFd(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!wake_fd_) throwErrno("eventfd");
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
  wake();
}

void NotifyListener::unwatch(const std::string& name) {
  std::lock_guard<std::mutex> g(mu_);
  if (watched_.erase(name)) wake();
}

void NotifyListener::loop() {
  std::vector<pollfd> fds;
  std::vector<std::string> names;
  for (;;) {
    {
      std::lock_guard<std::mutex> g(mu_);
      if (stop_) return;
      fds.assign(1, pollfd{wake_fd_.get(), POLLIN, 0});
      names.assign(1, "");
      for (const auto& [n, w] : watched_) {
        fds.push_back({w.fd.get(), POLLIN, 0});
        names.push_back(n);
      }
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) {
      engineLog().error("sd_notify listener: poll: {}", std::strerror(errno));
      return;
    }
    if (fds[0].revents) {
      uint64_t n;
      (void)!::read(wake_fd_.get(), &n, sizeof n);
    }
    for (size_t i = 1; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      std::lock_guard<std::mutex> g(mu_);
      auto it = watched_.find(names[i]);
      if (it == watched_.end() || it->second.fd.get() != fds[i].fd) continue;  // unwatched meanwhile
      // A bounded batch per wakeup, one state write for it: a container
      // that floods its socket neither holds the lock for long nor starves
      // the others (poll takes them in turn).
      constexpr int kBatch = 16;
      char buf[4096];
      try {
        NotifyState s = readNotifyState(it->second.state_file);
        bool was_ready = s.ready, changed = false;
        for (int k = 0; k < kBatch; ++k) {
          ssize_t got = ::recv(it->second.fd.get(), buf, sizeof buf, MSG_DONTWAIT);
          if (got < 0) break;
          changed |= applyNotifyMessage(s, std::string(buf, static_cast<size_t>(got)), unixNow());
        }
        if (changed) writeNotifyState(it->second.state_file, s);
        if (s.ready && !was_ready) {
          engineLog().info("[{}] sd_notify: ready{}", names[i], s.status.empty() ? "" : " (" + s.status + ")");
        }
      } catch (const std::exception& e) {
        engineLog().warn("[{}] sd_notify: {}", names[i], e.what());
      }
    }
  }
}

}  // namespace ferry
