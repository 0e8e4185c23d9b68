// What the fuzz targets share: quiet logs, a scratch directory, inputs cut
// into frames, and Cap'n Proto messages decoded and re-encoded so that a
// harness can fix up a field a fuzzer cannot guess (a checksum, the id of a
// command it answers).
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <string_view>
#include <vector>
#include <zmq.hpp>

namespace ferry::fuzz {

// Every component logs through spdlog: at info level a fuzzer's output would
// be all log lines. FERRY_FUZZ_LOG=1 keeps them (to read what an input did).
inline void quietLogs() {
  static bool done = [] {
    const char* keep = std::getenv("FERRY_FUZZ_LOG");
    if (!keep || std::string(keep) != "1") spdlog::set_level(spdlog::level::off);
    return true;
  }();
  (void)done;
}

// Where targets make their temporary directories: /dev/shm when there is one
// (state stores fsync every commit), else the system's temp directory.
inline std::filesystem::path scratchDir() {
  static std::filesystem::path dir = [] {
    std::filesystem::path base = std::filesystem::exists("/dev/shm")
                                     ? std::filesystem::path("/dev/shm")
                                     : std::filesystem::temp_directory_path();
    return base;
  }();
  return dir;
}

// An input as a list of frames: each is a flags byte, a length (2 bytes,
// little-endian) and that many bytes (fewer at the input's end). The flags'
// meaning is the target's.
struct Frame {
  uint8_t flags = 0;
  std::string bytes;
};
inline std::vector<Frame> splitFrames(const uint8_t* data, size_t size, size_t max_frames = 64) {
  std::vector<Frame> out;
  size_t i = 0;
  while (i + 3 <= size && out.size() < max_frames) {
    Frame f;
    f.flags = data[i];
    size_t n = data[i + 1] | (size_t{data[i + 2]} << 8);
    i += 3;
    n = std::min(n, size - i);
    f.bytes.assign(reinterpret_cast<const char*>(data + i), n);
    i += n;
    out.push_back(std::move(f));
  }
  return out;
}
// The inverse, for seed generators.
inline void appendFrame(std::string& input, uint8_t flags, std::string_view bytes) {
  input.push_back(static_cast<char>(flags));
  input.push_back(static_cast<char>(bytes.size() & 0xff));
  input.push_back(static_cast<char>((bytes.size() >> 8) & 0xff));
  input.append(bytes);
}

// A Cap'n Proto message (one segment table and its segments) as a copy that
// can be changed and encoded again; nullptr when the bytes are not one.
class Editable {
 public:
  static std::unique_ptr<Editable> decode(std::string_view bytes) {
    if (bytes.empty() || bytes.size() % sizeof(capnp::word) != 0) return nullptr;
    auto e = std::make_unique<Editable>();
    e->words_ = kj::heapArray<capnp::word>(bytes.size() / sizeof(capnp::word));
    std::memcpy(e->words_.begin(), bytes.data(), bytes.size());
    try {
      capnp::ReaderOptions limits;
      limits.traversalLimitInWords = bytes.size();
      limits.nestingLimit = 16;
      capnp::FlatArrayMessageReader reader(e->words_, limits);
      e->builder_.setRoot(reader.getRoot<capnp::AnyStruct>());
    } catch (const kj::Exception&) {
      return nullptr;
    }
    return e;
  }
  template <class T>
  typename T::Builder root() {
    return builder_.getRoot<T>();
  }
  std::string encode() {
    kj::Array<capnp::word> words = capnp::messageToFlatArray(builder_);
    auto bytes = words.asBytes();
    return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
  }

 private:
  kj::Array<capnp::word> words_;
  capnp::MallocMessageBuilder builder_;
};

inline std::string encode(capnp::MessageBuilder& b) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(b);
  auto bytes = words.asBytes();
  return std::string(reinterpret_cast<const char*>(bytes.begin()), bytes.size());
}

// A socket option every harness socket gets: closing never waits.
inline void noLinger(zmq::socket_t& s) { s.set(zmq::sockopt::linger, 0); }

// A name no other call in this process used, for inproc endpoints.
inline std::string uniqueName(const char* prefix) {
  static uint64_t n = 0;
  return std::string(prefix) + std::to_string(++n);
}

}  // namespace ferry::fuzz
