// The data plane's chunk stream alone (not a test): how fast ChunkSender
// moves bytes to a ChunkReceiver over TCP on loopback, plain and with
// CurveZMQ, with the agents' chunk (1 MiB) and window (8), the receiver
// reading as a bundle reader does (64 KiB reads), each end with its own
// ZeroMQ context (and I/O thread), as the two agents have: one context
// for both ends made its single I/O thread the limit (0.7-0.8 GB/s here,
// half what two carry). No CRIU, no disk, no bundle: the floor the stream
// puts under a migration's transfer, for issue 16's 1.5 GB/s aim. Best of
// R runs; JSON on stdout.
//
//   stream-bench [--mib 1024] [--runs 3]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <zmq.hpp>

#include "protocol/chunk_stream.h"
#include "protocol/curve.h"

using namespace ferry::proto;

namespace {

double runOnce(zmq::context_t& rx_ctx, zmq::context_t& tx_ctx, uint64_t bytes, bool curve, const KeyPair& target,
               const KeyPair& source) {
  StreamOptions rx_opts;
  StreamOptions tx_opts;
  if (curve) {
    rx_opts.own_keys = target;
    tx_opts.own_keys = source;
    tx_opts.peer_public_key = target.public_key;
  }
  ChunkReceiver rx(rx_ctx, "tcp://127.0.0.1:0", "bench", "target", rx_opts);
  auto received = std::async(std::launch::async, [&] {
    static char buf[64 << 10];
    uint64_t n = 0;
    for (size_t got; (got = rx.read(buf, sizeof buf)) > 0;) n += got;
    rx.accept();
    return n;
  });
  // Half random, half regular, like the workload's pages (nothing here
  // compresses; the content does not matter to the stream).
  std::string block(1 << 20, '\0');
  for (size_t i = 0; i < block.size(); ++i) block[i] = static_cast<char>((i * 2654435761u) >> 13);
  auto t0 = std::chrono::steady_clock::now();
  ChunkSender tx(tx_ctx, rx.endpoint(), "bench", "bench", tx_opts);
  for (uint64_t sent = 0; sent < bytes; sent += block.size()) tx.write(block);
  tx.finish();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (received.get() < bytes) {
    std::fprintf(stderr, "stream-bench: the receiver got fewer bytes than were sent\n");
    std::exit(1);
  }
  return static_cast<double>(bytes) / s;
}

}  // namespace

int main(int argc, char** argv) {
  uint64_t mib = 1024;
  int runs = 3;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--mib")) {
      mib = std::strtoull(argv[i + 1], nullptr, 10);
    } else if (!std::strcmp(argv[i], "--runs")) {
      runs = std::atoi(argv[i + 1]);
    } else {
      std::fprintf(stderr, "usage: stream-bench [--mib M] [--runs R]\n");
      return 2;
    }
  }
  if (mib == 0 || runs <= 0 || (argc % 2) == 0) {
    std::fprintf(stderr, "usage: stream-bench [--mib M] [--runs R]\n");
    return 2;
  }
  // One context (and ZeroMQ I/O thread) per end, as the two agents have.
  zmq::context_t rx_ctx, tx_ctx;
  KeyPair target = generateKeyPair(), source = generateKeyPair();
  ZapAuthenticator zap(rx_ctx, {source.public_key});
  std::printf("[\n");
  for (bool curve : {false, true}) {
    double best = 0;
    for (int r = 0; r < runs; ++r) best = std::max(best, runOnce(rx_ctx, tx_ctx, mib << 20, curve, target, source));
    std::printf("  {\"stream\": \"%s\", \"mib\": %llu, \"best_bytes_per_s\": %.0f}%s\n",
                curve ? "curve" : "plain", static_cast<unsigned long long>(mib), best,
                curve ? "" : ",");
    std::fprintf(stderr, "%s: %.0f MB/s (best of %d, %llu MiB)\n", curve ? "curve" : "plain",
                 best / 1e6, runs, static_cast<unsigned long long>(mib));
  }
  std::printf("]\n");
  return 0;
}
