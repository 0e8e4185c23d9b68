#include "common/fd.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/byte_stream.h"
#include "common/error.h"

namespace ferry {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // close(2) must not be retried on EINTR on Linux
  fd_ = fd;
}

UniqueFd openFile(const std::string& path, int flags, int mode) {
  int fd = retryEintr([&] { return ::open(path.c_str(), flags | O_CLOEXEC, mode); });
  if (fd < 0) throwErrno("open " + path);
  return UniqueFd(fd);
}

Pipe makePipe() {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC) != 0) throwErrno("pipe2");
  return Pipe{UniqueFd(fds[0]), UniqueFd(fds[1])};
}

void writeAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = retryEintr([&] { return ::write(fd, data.data(), data.size()); });
    if (n < 0) throwErrno("write " + what);
    data.remove_prefix(static_cast<size_t>(n));
  }
}

std::string readAll(int fd, const std::string& what) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t n = retryEintr([&] { return ::read(fd, buf, sizeof buf); });
    if (n < 0) throwErrno("read " + what);
    if (n == 0) return out;
    out.append(buf, static_cast<size_t>(n));
  }
}

size_t FdSource::read(char* buf, size_t n) {
  ssize_t got = retryEintr([&] { return ::read(fd_, buf, n); });
  if (got < 0) throwErrno("read " + what_);
  return static_cast<size_t>(got);
}

uint64_t copyAll(ByteSource& in, ByteSink& out, const std::function<void(uint64_t)>& progress) {
  std::string buf(1 << 20, '\0');
  uint64_t total = 0;
  while (size_t n = in.read(buf.data(), buf.size())) {
    out.write(std::string_view(buf.data(), n));
    total += n;
    if (progress) progress(total);
  }
  return total;
}

namespace {

sockaddr_in loopbackAddress(uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  return a;
}

}  // namespace

UniqueFd boundLoopbackSocket(uint16_t* port, int backlog, const std::string& what) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket (" + what + ")");
  sockaddr_in a = loopbackAddress(0);
  socklen_t len = sizeof a;
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      (backlog > 0 && ::listen(fd.get(), backlog) != 0) ||
      ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throwErrno("binding 127.0.0.1 (" + what + ")");
  }
  *port = ntohs(a.sin_port);
  return fd;
}

UniqueFd connectLoopback(uint16_t port, const std::string& what) {
  UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) throwErrno("socket (" + what + ")");
  sockaddr_in a = loopbackAddress(port);
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    throwErrno("connecting to 127.0.0.1:" + std::to_string(port) + " (" + what + ")");
  }
  return fd;
}

}  // namespace ferry
