// A plain HTTP/1.0 GET over a real TCP socket, for tests that scrape a
// daemon's /metrics or ask Prometheus's API: no client library between the
// test and the server. Blocking, bounded by `timeout` for connect, send and
// each read.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>

#include "common/error.h"

namespace ferry::test {

struct HttpResponse {
  int status = 0;    // 200, 404, ...
  std::string body;  // after the headers
};

// GET http://host:port/path. Throws Error kRetryable when the server cannot
// be reached or answers something that is not HTTP.
inline HttpResponse httpGet(const std::string& host, int port, const std::string& path,
                            std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
  std::string where = "http://" + host + ":" + std::to_string(port) + path;
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throwErrno("socket for " + where);
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  timeval tv{static_cast<time_t>(timeout.count() / 1000),
             static_cast<suseconds_t>(timeout.count() % 1000 * 1000)};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &sa.sin_addr) != 1) {
    throwInvalidInput("not an IPv4 address: " + host);
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
    throw Error(ErrorCategory::kRetryable, "connecting to " + where, errno);
  }
  std::string request = "GET " + path + " HTTP/1.0\r\nHost: " + host + "\r\n\r\n";
  for (size_t sent = 0; sent < request.size();) {
    ssize_t n = ::send(fd, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) throw Error(ErrorCategory::kRetryable, "sending to " + where, errno);
    sent += static_cast<size_t>(n);
  }
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(ErrorCategory::kRetryable, "reading from " + where, errno);
    if (n == 0) break;  // HTTP/1.0: the server closes after the body
    raw.append(buf, static_cast<size_t>(n));
  }
  size_t head_end = raw.find("\r\n\r\n");
  if (raw.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos || raw.size() < 12) {
    throw Error(ErrorCategory::kRetryable,
                where + " answered something other than HTTP: " + raw.substr(0, 200));
  }
  return {std::stoi(raw.substr(9, 3)), raw.substr(head_end + 4)};
}

}  // namespace ferry::test
