#include "protocol/framing.h"

#include <kj/io.h>

#include <cstdint>
#include <cstring>

namespace ferry::proto {

void applySocketLimits(zmq::socket_t& s) {
  s.set(zmq::sockopt::maxmsgsize, kMaxFrameBytes);
  s.set(zmq::sockopt::linger, 0);
}

zmq::message_t encode(capnp::MessageBuilder& message) {
  auto segments = message.getSegmentsForOutput();
  zmq::message_t frame(capnp::computeSerializedSizeInWords(segments) * sizeof(capnp::word));
  kj::ArrayOutputStream out(kj::arrayPtr(static_cast<kj::byte*>(frame.data()), frame.size()));
  capnp::writeMessage(out, segments);
  if (out.getArray().size() != frame.size()) {
    throw Error(ferry::ErrorCategory::kPermanent, "a message encoded to an unexpected size");
  }
  return frame;
}

namespace {

size_t wholeWords(size_t size) {
  if (size == 0 || size % sizeof(capnp::word) != 0) {
    throw Error(ferry::ErrorCategory::kInvalidInput,
                "malformed message: " + std::to_string(size) + " bytes is not a whole message");
  }
  return size / sizeof(capnp::word);
}

}  // namespace

Decoded::Decoded(const zmq::message_t& frame) {
  size_t words = wholeWords(frame.size());
  // Copy into word-aligned memory: a zmq frame's data has no alignment promise.
  words_ = kj::heapArray<capnp::word>(words);
  std::memcpy(words_.begin(), frame.data(), frame.size());
  read(words_.asPtr());
}

Decoded::Decoded(zmq::message_t&& frame) : frame_(std::move(frame)) {
  size_t words = wholeWords(frame_.size());
  if (reinterpret_cast<uintptr_t>(frame_.data()) % alignof(capnp::word) == 0) {
    read(kj::arrayPtr(static_cast<const capnp::word*>(frame_.data()), words));
    return;
  }
  words_ = kj::heapArray<capnp::word>(words);
  std::memcpy(words_.begin(), frame_.data(), frame_.size());
  frame_.rebuild();  // read from the copy: the frame's bytes need not stay
  read(words_.asPtr());
}

void Decoded::read(kj::ArrayPtr<const capnp::word> words) {
  capnp::ReaderOptions opts;
  opts.traversalLimitInWords = words.size() * 2 + 64;
  opts.nestingLimit = kNestingLimit;
  reader_ = guard([&] { return kj::heap<capnp::FlatArrayMessageReader>(words, opts); });
}

}  // namespace ferry::proto
