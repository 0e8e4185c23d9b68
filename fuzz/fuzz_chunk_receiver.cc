// The chunk stream receiver (protocol/chunk_stream) over real ZeroMQ sockets:
// an input is frames that two peers send to one receiver -- the sender
// (flags bit 0 clear) and a stranger that has no token (bit 0 set) -- and
// the receiver is then read to the end, as a restore reads a bundle, and
// gives its verdict.
//
// A fuzzer cannot compute XXH3, so a frame with flags bit 1 set has its
// checksums made right before it goes: a chunk's of its data, an end's of
// every chunk fixed so far (stream protocol 5: over their checksums); and
// its version set to this build's, so inputs found under an older protocol
// still reach past the version check. Inputs reach the receiver's later checks (order,
// credit, size, the end's counts) that way; frames without the bit test the
// checksums themselves.
//
// Every frame is queued before the receiver reads, over inproc, so a short
// timeout (the receiver's only wait once the frames are used up) suffices.
#include <xxhash.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz/fuzz_support.h"
#include "protocol/chunk_stream.h"
#include "protocol/stream.capnp.h"

namespace {

constexpr const char* kToken = "fuzz-token";

// Makes the checksums of one frame right (see the top), if it is a chunk or
// an end; `all` is the hash of the fixed chunks so far.
std::string fixChecksums(const std::string& bytes, XXH3_state_t* all) {
  auto e = ferry::fuzz::Editable::decode(bytes);
  if (!e) return bytes;
  try {
    auto m = e->root<ferry::proto::StreamMessage>();
    m.setVersion(ferry::proto::STREAM_PROTOCOL_VERSION);
    if (m.isChunk()) {
      auto c = m.getChunk();
      auto d = c.getData();
      c.setXxh3(XXH3_64bits(d.begin(), d.size()));
      ferry::proto::addChunkHash(all, c.getXxh3());
    } else if (m.isEnd()) {
      m.getEnd().setXxh3(XXH3_64bits_digest(all));
    }
    return e->encode();
  } catch (const kj::Exception&) {
    return bytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace ferry;
  fuzz::quietLogs();
  static zmq::context_t ctx;
  proto::StreamOptions opts;
  opts.chunk_bytes = 4096;
  opts.window = 4;
  opts.timeout = std::chrono::milliseconds(5);
  proto::ChunkReceiver rx(ctx, "inproc://" + fuzz::uniqueName("fuzz-stream-"), kToken, "fuzzhost",
                          opts);
  zmq::socket_t sender(ctx, zmq::socket_type::dealer), stranger(ctx, zmq::socket_type::dealer);
  fuzz::noLinger(sender);
  fuzz::noLinger(stranger);
  sender.connect(rx.endpoint());
  stranger.connect(rx.endpoint());

  XXH3_state_t* all = XXH3_createState();
  XXH3_64bits_reset(all);
  for (const fuzz::Frame& f : fuzz::splitFrames(data, size)) {
    std::string bytes = f.flags & 2 ? fixChecksums(f.bytes, all) : f.bytes;
    zmq::socket_t& from = f.flags & 1 ? stranger : sender;
    (void)from.send(zmq::buffer(bytes), zmq::send_flags::dontwait);
  }
  XXH3_freeState(all);

  try {
    char buf[1000];
    uint64_t total = 0;
    while (size_t n = rx.read(buf, sizeof buf)) total += n;
    rx.accept();
  } catch (const Error& e) {
    rx.reject(e);
  }
  return 0;
}
