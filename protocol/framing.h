// One Cap'n Proto message per ZeroMQ frame, read with limits: everything
// from the wire is untrusted.
#pragma once

#include <capnp/message.h>
#include <capnp/serialize.h>
#include <kj/array.h>

#include <cstdint>
#include <string>
#include <zmq.hpp>

#include "common/error.h"

namespace ferry::proto {

// Every socket refuses larger frames (ZMQ_MAXMSGSIZE): a peer cannot make us
// allocate more. A chunk of 1 MiB plus framing fits.
inline constexpr int64_t kMaxFrameBytes = int64_t{8} << 20;
inline constexpr int kNestingLimit = 16;

// ZMQ_MAXMSGSIZE, ZMQ_LINGER 0 (closing never blocks on a dead peer).
void applySocketLimits(zmq::socket_t& s);

// The message as one frame, its segments copied once, straight into it (a
// segment may be external data: a chunk's bytes go from the caller's buffer
// to the frame).
zmq::message_t encode(capnp::MessageBuilder& message);

// A received frame, decoded with Cap'n Proto reader limits (traversal
// bounded by the frame's size, nesting by kNestingLimit). Throws Error
// kInvalidInput when the frame is not a message.
//
// From a const frame it reads a copy (the frame may go away). From a frame
// moved in it keeps the frame and reads it in place when it is word-aligned
// (a large frame's buffer is; a copy otherwise): a chunk is not copied again
// to be read. Not movable: a short frame's bytes live inside it.
class Decoded {
 public:
  explicit Decoded(const zmq::message_t& frame);
  explicit Decoded(zmq::message_t&& frame);
  Decoded(const Decoded&) = delete;
  Decoded& operator=(const Decoded&) = delete;
  template <class T>
  typename T::Reader root() {
    return guard([&] { return reader_->getRoot<T>(); });
  }

 private:
  void read(kj::ArrayPtr<const capnp::word> words);

  zmq::message_t frame_;
  kj::Array<capnp::word> words_;
  kj::Own<capnp::FlatArrayMessageReader> reader_;
};

// Runs f(); Cap'n Proto's exceptions (a malformed message is found lazily,
// while fields are read) become Error kInvalidInput.
template <class F>
auto guard(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const kj::Exception& e) {
    throw Error(ferry::ErrorCategory::kInvalidInput,
                "malformed message: " + std::string(e.getDescription().cStr()));
  }
}

}  // namespace ferry::proto
