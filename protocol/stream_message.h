// What both ends of a chunk stream (chunk_stream.cc) and post-copy's page
// feed (page_feed.cc) share to build, check and answer StreamMessages.
// Internal to protocol/.
#pragma once

#include <string>
#include <string_view>
#include <zmq.hpp>

#include "common/error.h"
#include "protocol/framing.h"
#include "protocol/stream.capnp.h"

namespace ferry::proto {

inline ferry::ErrorCategory fromWire(proto::ErrorKind c) {
  switch (c) {
    case proto::ErrorKind::RETRYABLE: return ferry::ErrorCategory::kRetryable;
    case proto::ErrorKind::PERMANENT: return ferry::ErrorCategory::kPermanent;
    case proto::ErrorKind::INCOMPATIBLE: return ferry::ErrorCategory::kIncompatible;
    case proto::ErrorKind::INVALID_INPUT: return ferry::ErrorCategory::kInvalidInput;
  }
  return ferry::ErrorCategory::kPermanent;
}

inline proto::ErrorKind toWire(ferry::ErrorCategory c) {
  switch (c) {
    case ferry::ErrorCategory::kRetryable: return proto::ErrorKind::RETRYABLE;
    case ferry::ErrorCategory::kPermanent: return proto::ErrorKind::PERMANENT;
    case ferry::ErrorCategory::kIncompatible: return proto::ErrorKind::INCOMPATIBLE;
    case ferry::ErrorCategory::kInvalidInput: return proto::ErrorKind::INVALID_INPUT;
  }
  return proto::ErrorKind::PERMANENT;
}

inline void fillError(ErrorInfo::Builder b, const Error& e, const std::string& host) {
  b.setCategory(toWire(e.category()));
  b.setMessage(e.what());
  b.setHost(host);
}

inline Error toError(ErrorInfo::Reader r, const std::string& prefix) {
  std::string msg = prefix + std::string(r.getMessage().cStr());
  if (r.hasHost() && r.getHost().size() > 0) msg += " (on " + std::string(r.getHost().cStr()) + ")";
  return Error(fromWire(r.getCategory()), msg);
}

template <class Fill>
inline zmq::message_t message(Fill&& fill) {
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION);
  fill(m);
  return encode(mb);
}

inline capnp::Data::Reader dataOf(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// Compares without an early exit, so timing says nothing about the token.
inline bool sameToken(capnp::Data::Reader got, const std::string& want) {
  if (got.size() != want.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < want.size(); ++i) diff |= got[i] ^ static_cast<unsigned char>(want[i]);
  return diff == 0;
}

[[noreturn]] inline void violation(const std::string& what) {
  throw Error(ferry::ErrorCategory::kInvalidInput, "stream protocol violation: " + what);
}

inline void checkVersion(StreamMessage::Reader m) {
  if (m.getVersion() != STREAM_PROTOCOL_VERSION) {
    throw Error(ferry::ErrorCategory::kIncompatible,
                "peer speaks stream protocol " + std::to_string(m.getVersion()) + ", this side " +
                    std::to_string(STREAM_PROTOCOL_VERSION));
  }
}

}  // namespace ferry::proto
