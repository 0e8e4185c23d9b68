// RAII for file descriptors, and the one place that retries EINTR.
#pragma once

#include <cerrno>
#include <string>
#include <utility>

namespace ferry {

// Calls f() again while it fails with EINTR; returns its last result.
template <class F>
auto retryEintr(F&& f) -> decltype(f()) {
  decltype(f()) r;
  do {
    r = f();
  } while (r == -1 && errno == EINTR);
  return r;
}

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  explicit operator bool() const { return valid(); }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// open(2) with O_CLOEXEC added; throws Error naming the path on failure.
UniqueFd openFile(const std::string& path, int flags, int mode = 0644);

// A pipe whose both ends are O_CLOEXEC.
struct Pipe {
  UniqueFd read;
  UniqueFd write;
};
Pipe makePipe();

// Writes all of data to fd (retrying short writes and EINTR); throws on error.
void writeAll(int fd, std::string_view data, const std::string& what);

// Reads until EOF; throws on error.
std::string readAll(int fd, const std::string& what);

// A TCP socket bound to 127.0.0.1 on a port the kernel picked (*port),
// listening when backlog > 0. Throws Error saying `what` it was for.
UniqueFd boundLoopbackSocket(uint16_t* port, int backlog, const std::string& what);
// A TCP connection to 127.0.0.1:port. Throws Error saying `what` it was for.
UniqueFd connectLoopback(uint16_t port, const std::string& what);

}  // namespace ferry
