// Where bytes go and come from: a file today, a bundle stream or a network
// stream tomorrow. Writers of archives and bundles know only these.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "common/fd.h"

namespace ferry {

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  // Takes all of data or throws Error. Blocks as the destination does.
  virtual void write(std::string_view data) = 0;
};

class ByteSource {
 public:
  virtual ~ByteSource() = default;
  // Reads up to n bytes into buf; returns 0 only at the end. Throws Error.
  virtual size_t read(char* buf, size_t n) = 0;
};

// A sink over a borrowed file descriptor.
class FdSink : public ByteSink {
 public:
  FdSink(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  void write(std::string_view data) override { writeAll(fd_, data, what_); }

 private:
  int fd_;
  std::string what_;
};

// A source over a borrowed file descriptor.
class FdSource : public ByteSource {
 public:
  FdSource(int fd, std::string what) : fd_(fd), what_(std::move(what)) {}
  size_t read(char* buf, size_t n) override;

 private:
  int fd_;
  std::string what_;
};

// Everything `in` has, into `out`, a MiB at a time; `progress` (when set)
// hears the running total after each piece. Returns the total.
uint64_t copyAll(ByteSource& in, ByteSink& out,
                 const std::function<void(uint64_t)>& progress = {});

}  // namespace ferry
