// Byte sinks and sources over std::string, for tests.
#pragma once

#include <algorithm>
#include <cstring>
#include <string>
#include <string_view>

#include "common/byte_stream.h"

namespace ferry::testing {

class StringSink : public ByteSink {
 public:
  void write(std::string_view d) override { data.append(d); }
  std::string data;
};

class StringSource : public ByteSource {
 public:
  explicit StringSource(std::string d) : data(std::move(d)) {}
  size_t read(char* buf, size_t n) override {
    n = std::min(n, data.size() - pos);
    std::memcpy(buf, data.data() + pos, n);
    pos += n;
    return n;
  }
  std::string data;
  size_t pos = 0;
};

}  // namespace ferry::testing
