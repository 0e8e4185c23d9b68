#include "protocol/connection_limit.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>

#include <cstring>
#include <filesystem>

namespace ferry::proto {

namespace {

std::string monitorEndpoint(const void* self) {
  return "inproc://ferry-connections-" + std::to_string(reinterpret_cast<uintptr_t>(self));
}

// Still a connected socket? An fd libzmq closed may be reused by then
// (by a file, or another connection, which its own event then reports):
// shut down only what is a socket with a peer.
bool connectedSocket(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  return ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) == 0;
}

// Who is at the other end, for fairness: an IP address, or a unix peer's uid.
std::string sourceOf(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  char buf[INET6_ADDRSTRLEN] = "";
  if (ss.ss_family == AF_INET) {
    ::inet_ntop(AF_INET, &reinterpret_cast<sockaddr_in*>(&ss)->sin_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_INET6) {
    ::inet_ntop(AF_INET6, &reinterpret_cast<sockaddr_in6*>(&ss)->sin6_addr, buf, sizeof buf);
  } else if (ss.ss_family == AF_UNIX) {
    ucred cred{};
    socklen_t clen = sizeof cred;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) == 0) {
      return "uid " + std::to_string(cred.uid);
    }
  }
  return buf;
}

}  // namespace

ConnectionLimit::ConnectionLimit(zmq::context_t& ctx, zmq::socket_t& server, size_t max)
    : max_(max), monitor_(ctx, zmq::socket_type::pair) {
  std::string ep = monitorEndpoint(this);
  if (zmq_socket_monitor(server.handle(), ep.c_str(),
                         ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_DISCONNECTED) != 0) {
    throw zmq::error_t();
  }
  monitor_.set(zmq::sockopt::linger, 0);
  monitor_.connect(ep);
  thread_ = std::thread([this] { run(); });
}

ConnectionLimit::~ConnectionLimit() {
  stop_ = true;
  thread_.join();
}

void ConnectionLimit::run() {
  while (!stop_.load()) {
    zmq::pollitem_t item{monitor_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) > 0) enforce();
    } catch (const zmq::error_t& e) {
      if (e.num() == ETERM) return;
      if (e.num() != EINTR) throw;
    }
  }
}

void ConnectionLimit::enforce() {
  // Every pending event first: a disconnect read after its fd was shed
  // would otherwise count twice.
  for (;;) {
    zmq::message_t head, addr;
    if (!monitor_.recv(head, zmq::recv_flags::dontwait)) break;
    if (head.more()) (void)monitor_.recv(addr, zmq::recv_flags::dontwait);
    if (head.size() < 6) continue;
    uint16_t event;
    uint32_t value;
    std::memcpy(&event, head.data(), 2);
    std::memcpy(&value, static_cast<const char*>(head.data()) + 2, 4);
    int fd = static_cast<int>(value);
    if (event == ZMQ_EVENT_ACCEPTED) {
      open_.emplace(sequence_++, Conn{fd, sourceOf(fd)});
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      std::erase_if(open_, [fd](const auto& e) { return e.second.fd == fd; });
    }
  }
  size_t now = 0;
  while (open_.size() > max_) {
    // The source holding the most; of its connections the newest.
    std::map<std::string, size_t> held;
    for (const auto& [seq, c] : open_) ++held[c.source];
    auto most = std::max_element(held.begin(), held.end(),
                                 [](const auto& a, const auto& b) { return a.second < b.second; });
    auto victim = std::find_if(open_.rbegin(), open_.rend(),
                               [&](const auto& e) { return e.second.source == most->first; });
    int fd = victim->second.fd;
    if (connectedSocket(fd)) {
      ::shutdown(fd, SHUT_RDWR);
      ++now;
    }
    open_.erase(std::next(victim).base());  // its disconnect event finds nothing to erase
  }
  shed_ += now;
  open_count_ = open_.size();
}

size_t connectionsWithinFdLimit(size_t reserve) {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) return SIZE_MAX;
  size_t in_use = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    ++in_use;
  }
  size_t limit = static_cast<size_t>(rl.rlim_cur);
  return limit > in_use + reserve ? limit - in_use - reserve : 0;
}

uint64_t raiseFdLimit() {
  rlimit rl{};
  if (::getrlimit(RLIMIT_NOFILE, &rl) != 0) return 0;
  if (rl.rlim_cur < rl.rlim_max) {
    rlimit raised = rl;
    raised.rlim_cur = rl.rlim_max;
    if (::setrlimit(RLIMIT_NOFILE, &raised) == 0) rl = raised;
  }
  return rl.rlim_cur;
}

}  // namespace ferry::proto

// libzmq 4.3 (and its master) asserts on EMFILE in its unix-socket
// listener's accept4 (ipc_listener.cpp: only ENFILE, EAGAIN, EINTR,
// ECONNABORTED and EPROTO are expected) and aborts the process: a TCP
// flood that filled the coordinator's fd table took it down the moment the
// CLI connected over its unix socket. ENFILE is the same condition to a
// listener (no fd for the connection; it stays queued and is accepted once
// one is free), and libzmq treats it so. This definition takes the place of
// libc's for every accept4 of a process linking it (the executable's
// symbols come first), and reports EMFILE as ENFILE; nothing else changes.
extern "C" int accept4(int fd, sockaddr* addr, socklen_t* len, int flags) {
  long r = ::syscall(SYS_accept4, fd, addr, len, flags);
  if (r < 0 && errno == EMFILE) errno = ENFILE;
  return static_cast<int>(r);
}
