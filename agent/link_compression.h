// How a migration's stream is compressed, chosen per link by the source
// agent, and the sentence its figures report about it.
//
// Measured here (2 shared cores, zstd 1.5.4, 64 MiB of half-random pages as
// tools/bench/workload.c makes them, 1 MiB records as the bundle writer
// compresses them, one thread): level 1 makes 0.57 of the size at 410-570
// MB/s, level 3 0.566 at 525-610 MB/s; decompression runs at 2.3-2.9 GB/s
// (level 1) and 1.8-2.0 GB/s (level 3); reading the pages at 7.6 GB/s.
//
// So a target on this machine (loopback, or an address of any local
// interface) gets the stream raw: no wire is saved, and compressing only
// adds downtime. A target elsewhere is reached over a link whose speed is
// measured first (ChunkSender::probeLink, before the freeze); then each
// record goes at level 1 only while compressing is measured, on the
// stream's own data, to move it faster than the link moves it raw
// (engine/bundle/record_compression.h has the rule). Level 1, not 3: 3
// saves half a percent more and decompresses slower on the target, whose
// restore is in the downtime.
//
// Pure except localAddresses().
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "engine/bundle/record_compression.h"

namespace ferry::agent {

inline constexpr int kRemoteLinkLevel = 1;

struct CompressionChoice {
  int level = 0;         // zstd level of the stream's records; 0 sends them raw
  bool measure = false;  // a link elsewhere: probe it, then choose per record at `level`
  std::string reason;    // what was chosen and why, as the figures say it
  std::string probe;     // measured: how ("18.2 MiB in 170 ms")
};

// The host of a ZeroMQ tcp endpoint: "tcp://127.0.0.3:4100" -> "127.0.0.3",
// "tcp://[::1]:4100" -> "::1"; empty for anything else.
std::string endpointHost(std::string_view endpoint);

// 127.0.0.0/8, ::1 (also as ::ffff:127.x.x.x) and "localhost".
bool isLoopbackAddress(const std::string& host);

// Whether `host` is an address of this machine: loopback, the unspecified
// address (0.0.0.0, ::; connecting to it reaches this machine), or one of
// `local_addresses` (numeric, as localAddresses() gives them). Addresses are
// compared by value, so "::ffff:10.0.0.1" is "10.0.0.1". A name other than
// "localhost" is not resolved and counts as elsewhere.
bool isLocalAddress(const std::string& host, const std::vector<std::string>& local_addresses);

// The choice for a stream to `endpoint`: none when its host is an address of
// this machine; otherwise measured (kRemoteLinkLevel where it pays), the
// reason naming the target.
CompressionChoice chooseCompression(const std::string& endpoint,
                                    const std::vector<std::string>& local_addresses);

// A level the caller asked for (an export to a file: `ferry checkpoint
// --level`), said as such.
CompressionChoice askedCompression(int level);

// A rate as the figures say it: "117 MB/s", "1.9 GB/s" (decimal units, as
// links are rated).
std::string formatRate(double bytes_per_s);

// The choice's sentence, with what compression achieved when it ran:
// "zstd level 1 (...); measured: 96.0 MiB of data went as 51.2 MiB (53 %)".
// `data_bytes` are the bytes that went as data (before compression). A
// measured choice says what `adaptive` found: the link's rate, the data's
// ratio and the compressor's rate, how many records went compressed, and
// why.
std::string compressionReport(const CompressionChoice& choice, uint64_t data_bytes,
                              uint64_t wire_bytes,
                              const RecordCompression::Figures* adaptive = nullptr);

// The numeric addresses of this machine's interfaces (getifaddrs), IPv6
// without a scope; none when the kernel will not say (then only loopback
// and the unspecified address count as this machine: the stream is
// compressed, which costs time but is never wrong).
std::vector<std::string> localAddresses();

}  // namespace ferry::agent
