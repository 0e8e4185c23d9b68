// A migration's "pages" stream on the target (engine/checkpoint/page_stream.h:
// PageStreamFeed) fed what a hostile source could put in the bundle, with a
// page server that answers what the input says. An input is frames: bytes
// of the stream (flags bit 0 clear) or bytes the page server answers (bit 0
// set). The page server is a socket this harness reads and discards (a real
// CRIU per input would be too slow; the unit tests feed a real one). Every
// failure must be an Error; nothing may crash or hang.
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstdint>

#include "common/error.h"
#include "engine/checkpoint/page_stream.h"
#include "fuzz/fuzz_support.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry;
  fuzz::quietLogs();
  int sp[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) != 0) return 0;
  auto drain = [&] {
    char buf[65536];
    while (::recv(sp[1], buf, sizeof buf, MSG_DONTWAIT) > 0) {
    }
  };
  try {
    PageStreamFeed feed(sp[0], std::chrono::milliseconds(1));
    for (const auto& f : fuzz::splitFrames(data, size)) {
      if (f.flags & 1) {
        if (::send(sp[1], f.bytes.data(), f.bytes.size(), MSG_DONTWAIT | MSG_NOSIGNAL) < 0) break;
      } else {
        feed.write(f.bytes);
      }
      drain();
    }
    feed.finish();
  } catch (const Error&) {
    // Refused: what must happen to bad input.
  }
  ::close(sp[0]);
  ::close(sp[1]);
  return 0;
}
