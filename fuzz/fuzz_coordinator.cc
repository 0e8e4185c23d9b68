// Every control message through the coordinator's real handlers: a real
// Coordinator (its RpcServer, dispatch, migrations, placement and a SQLite
// state store in a fresh directory per input) runs its loop on a thread, and
// an input is the frames that four peers send it over inproc ZeroMQ:
//   flags & 3: 0 hostA, 1 hostB (agents, once they say hello), 2 the CLI,
//              3 hostC (a peer that never registered);
//   flags & 4: the frame's id is set to that of the last message the
//              coordinator sent this peer (a fuzzer cannot know command ids:
//              this is how an input answers a command -- a stream ticket,
//              figures, an error -- and so drives a migration or a drain).
// After each frame its peer pings and waits for the answer, so the frame has
// been handled (and the commands it caused sent) before the next one goes.
// The clock is fixed: command ids and liveness are the same on every run.
// A coordinator that stops answering (30 s) aborts the input: a hang is a
// finding too.
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "common/fs.h"
#include "coordinator/coordinator.h"
#include "fuzz/fuzz_support.h"
#include "protocol/framing.h"
#include "protocol/rpc.h"

namespace {

using namespace ferry;
constexpr int64_t kNowMs = 1'700'000'000'000;
constexpr uint64_t kPingIds = uint64_t{0xF0} << 56;  // apart from the coordinator's command ids

struct Peer {
  Peer(zmq::context_t& ctx, const std::string& id, const std::string& endpoint)
      : sock(ctx, zmq::socket_type::dealer) {
    fuzz::noLinger(sock);
    sock.set(zmq::sockopt::routing_id, id);
    sock.connect(endpoint);
  }
  zmq::socket_t sock;
  uint64_t last_id = 0;  // of the last message from the coordinator, but pings' answers
};

// What the coordinator sent `p`: remembered (its id); nothing else is done with it.
void take(Peer& p, const zmq::message_t& frame) {
  try {
    proto::Decoded d(frame);
    uint64_t id = d.root<proto::Message>().getId();
    if ((id & kPingIds) != kPingIds) p.last_id = id;
  } catch (const Error&) {
    std::fprintf(stderr, "fuzz_coordinator: the coordinator sent a frame it cannot read\n");
    std::abort();
  }
}

// Pings from `p` and waits for the answer; takes what comes before it.
void sync(Peer& p, uint64_t n) {
  uint64_t id = kPingIds | n;
  zmq::message_t ping = proto::buildMessage(id, [](proto::Message::Builder b) { b.setPing(); });
  if (!p.sock.send(ping, zmq::send_flags::none)) std::abort();
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (std::chrono::steady_clock::now() < deadline) {
    zmq::pollitem_t item{p.sock.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(100));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;  // libFuzzer's SIGALRM: poll again
    }
    zmq::message_t frame;
    while (p.sock.recv(frame, zmq::recv_flags::dontwait)) {
      proto::Decoded d(frame);
      if (d.root<proto::Message>().getId() == id) return;
      take(p, frame);
    }
  }
  std::fprintf(stderr, "fuzz_coordinator: no answer to a ping within 30 s: the loop hangs\n");
  std::abort();
}

void drain(Peer& p) {
  zmq::message_t frame;
  while (p.sock.recv(frame, zmq::recv_flags::dontwait)) take(p, frame);
}

std::string withId(const std::string& bytes, uint64_t id) {
  auto e = fuzz::Editable::decode(bytes);
  if (!e) return bytes;
  try {
    e->root<proto::Message>().setId(id);
    return e->encode();
  } catch (const kj::Exception&) {
    return bytes;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  // A context per input, so no input meets what the last one left in
  // libzmq (its ZAP handler's inproc name, sockets not reaped yet): a shared
  // one hung now and then. Its end leaks a few bytes inside libzmq now and
  // then, which lsan.supp leaves out.
  zmq::context_t ctx;
  auto frames = fuzz::splitFrames(data, size, 32);
  TempDir state(fuzz::scratchDir(), "coordinator-");
  coord::CoordinatorOptions opts;
  // Without keys the coordinator admits agents and CLIs over a unix socket
  // (root only) and refuses inproc: the peers come in that way.
  opts.listen = "ipc://" + (state.path() / "coordinator.sock").string();
  opts.state_dir = state.path();
  opts.resolve_grace = std::chrono::milliseconds(0);
  {
    coord::Coordinator c(opts, ctx, [] { return kNowMs; });
    std::atomic<bool> stop{false};
    std::thread loop([&] { c.run(stop); });
    {
      Peer peers[4] = {{ctx, "hostA", c.endpoint()},
                       {ctx, "hostB", c.endpoint()},
                       {ctx, "cli", c.endpoint()},
                       {ctx, "hostC", c.endpoint()}};
      uint64_t n = 0;
      for (const fuzz::Frame& f : frames) {
        Peer& p = peers[f.flags & 3];
        std::string bytes = f.flags & 4 ? withId(f.bytes, p.last_id) : f.bytes;
        if (!p.sock.send(zmq::buffer(bytes), zmq::send_flags::none)) std::abort();
        sync(p, ++n);
        for (Peer& other : peers) drain(other);
      }
    }
    stop = true;
    loop.join();
  }
  return 0;
}
