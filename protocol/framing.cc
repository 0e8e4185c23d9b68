#include "protocol/framing.h"

#include <cstring>

namespace ferry::proto {

void applySocketLimits(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, kMaxFrameBytes);
  s.set(zmq::sockopt::linger, 0);
}

zmq::message_t encode(capnp::MessageBuilder& message) {
  kj::Array<capnp::word> words = capnp::messageToFlatArray(message);
  kj::ArrayPtr<const kj::byte> bytes = words.asBytes();
  return zmq::message_t(bytes.begin(), bytes.size());
}

Decoded::Decoded(const zmq::message_t& frame) {
  size_t size = frame.size();
  if (size == 0 || size % sizeof(capnp::word) != 0) {
    throw Error(ferry::ErrorCategory::kInvalidInput,
                "malformed message: " + std::to_string(size) + " bytes is not a whole message");
  }
  // Copy into word-aligned memory: a zmq frame's data has no alignment promise.
  words_ = kj::heapArray<capnp::word>(size / sizeof(capnp::word));
  std::memcpy(words_.begin(), frame.data(), size);
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = words_.size() * 2 + 64;
  opts.nestingLimit = kNestingLimit;
  reader_ = guard([&] { return kj::heap<capnp::FlatArrayMessageReader>(words_.asPtr(), opts); });
}

}  // namespace ferry::proto
