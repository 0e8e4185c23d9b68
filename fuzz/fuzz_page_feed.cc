// Post-copy's target end (protocol/page_feed.h) fed what a hostile source
// and a confused daemon could send: an input is frames, each either bytes on
// the daemon's connection (flags bit 0 clear: page_server_iov records) or a
// stream message from the source (bit 0 set: page runs, pagesHeld). After
// each, the target answers what it can. Every failure must be an Error;
// nothing may crash, hang or hand the daemon a page it was not sent.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/error.h"
#include "fuzz/fuzz_support.h"
#include "protocol/framing.h"
#include "protocol/page_feed.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry;
  fuzz::quietLogs();
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return 0;
  // Two processes' lazy memory, as the dump's pagemap images give it.
  std::vector<proto::PageRange> lazy = {{1, 0x10000, 4}, {1, 0x7f0000000000, 300}, {9, 0x400000, 2}};
  // Pre-copied blocks: a name whose first byte is even is held (a page of
  // that byte); any other is not, as a store says of a name never sent.
  proto::HeldPages held = [](const std::vector<proto::BlockName>& names, std::string& out) {
    for (const auto& n : names) {
      if (n[0] % 2) throw Error(ErrorCategory::kInvalidInput, "not held");
      out.append(proto::kPostcopyPageBytes, static_cast<char>(n[0]));
    }
  };
  try {
    proto::PageTarget target(sp[1], lazy, held, [](zmq::message_t&&) {});
    for (const auto& f : fuzz::splitFrames(data, size)) {
      if (f.flags & 1) {
        zmq::message_t frame(f.bytes.data(), f.bytes.size());
        proto::Decoded d(frame);
        proto::guard([&] { target.take(d.root<proto::StreamMessage>()); });
      } else {
        if (::send(sp[0], f.bytes.data(), f.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
        target.onEvents(POLLIN);
      }
      target.pump();
      // Drain what the daemon was answered, so the connection never fills.
      char buf[65536];
      while (::recv(sp[0], buf, sizeof buf, MSG_DONTWAIT) > 0) {
      }
    }
  } catch (const Error&) {
    // Refused: what must happen to bad input.
  }
  ::close(sp[0]);
  ::close(sp[1]);
  return 0;
}
