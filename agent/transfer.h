// A migration's transfer, where engine and network meet: the source agent
// streams a checkpoint straight to the target agent over a chunk stream, and
// the target restores it as it arrives in staging.
//
// The source container is frozen (paused) for the dump and stays frozen
// until the caller decides: remove it once the target runs (commit), or
// resume it (rollback). Downtime is the time it is frozen.
//
// Blocking: both calls block for the whole transfer; each wait on the peer is
// bounded by the stream's timeout. One thread per call.
#pragma once

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <vector>
#include <zmq.hpp>

#include "engine/agent_engine.h"
#include "protocol/chunk_stream.h"

namespace ferry::agent {

// Progress of a send: phase "precopy" while pre-copy rounds go out (note:
// "round N"), "transfer" while the checkpoint does, "restore" once it all
// went and the target is restoring. Bytes count everything sent so far.
using SendProgress =
    std::function<void(const char* phase, uint64_t bytes_sent, const std::string& note)>;

// Pre-copy before the freeze (see Engine::precopy): rounds go on while the
// container runs, each sending only blocks the target lacks, and stop at the
// first of
//   - the round cap;
//   - a round that sent no more than the goal (max(8 MiB, 2 % of what it
//     read)): the frozen part will carry about that much;
//   - a round that sent more than 80 % of the round before: the container
//     dirties memory about as fast as it is copied, more rounds do not help.
// kPrecopyAuto runs up to 4 rounds when what would cross while frozen --
// memory, rootfs diff and volumes -- is at least kPrecopyAutoBytes, none for
// less (a cold migration of it is as quick). Over loopback it runs none for
// memory alone (measured here: what pre-copy saves is the frozen transfer,
// which loopback makes nearly free, while the target still writes the whole
// checkpoint; BENCHMARKS.md) -- unless post-copy follows, where the rounds
// shorten the time the source alone holds pages the container needs, or the
// rootfs diff and volumes hold at least kPrecopyAutoFilesBytes (measured
// here over loopback: a 300 MB file in the rootfs froze a container 1.6 s
// cold, 1.15 s after pre-copy).
inline constexpr int kPrecopyAuto = -1;
inline constexpr uint64_t kPrecopyAutoBytes = uint64_t{32} << 20;
inline constexpr uint64_t kPrecopyAutoFilesBytes = uint64_t{32} << 20;
inline constexpr int kPrecopyAutoRounds = 4;
inline constexpr int kPrecopyMaxRounds = 20;

struct TransferOptions {
  // zstd level of the stream; unset: chosen for the link by
  // chooseCompression (link_compression.h): none to this machine, measured
  // record by record over a link elsewhere.
  std::optional<int> level;
  int threads = 2;  // records compressed at once
  proto::StreamOptions stream;
  bool tcp_established = false;
  bool file_locks = false;
  SendProgress progress;  // called at most every 250 ms, on the sending thread
  int precopy = 0;  // rounds at most; 0 off; kPrecopyAuto
  bool tcp_close = false;  // a networked container's connections are dropped, not kept
  // When every byte went but the verdict never came, the target may run the
  // container: a migration keeps the source frozen (false) for the
  // coordinator to resolve; an export to a file resumes it (true).
  bool resume_on_unknown_verdict = false;
  // Post-copy: the dump leaves the memory with CRIU's page server, the
  // target restores at once and fetches the pages (ahead of the process
  // and when it waits for one) through this stream; its verdict comes once
  // every page is there, and only then may the source's copy go. Phase
  // "postcopy" while the pages go. After pre-copy rounds (a hybrid), the
  // pages the target holds from them go as names, not bytes.
  bool postcopy = false;
  // CRIU locks the network with nftables (CheckpointOptions::nftables_lock):
  // the coordinator says so when both hosts' CRIU can.
  bool nftables_lock = false;
};

// What post-copy carried (SendResult::postcopy).
struct PostcopyFigures {
  int64_t ms = 0;                 // from the target's restore to its last page
  uint64_t on_demand_bytes = 0;   // pages sent because the restored process waited for them
  uint64_t pushed_bytes = 0;      // pages sent ahead of it
  uint64_t held_bytes = 0;        // pages the target held from pre-copy: only their names went
};

struct PrecopyFigures {
  int round = 0;
  uint64_t read_bytes = 0;  // memory, rootfs diff and volumes read
  uint64_t sent_bytes = 0;  // new to the target (before compression)
  uint64_t wire_bytes = 0;  // on the wire
  int64_t ms = 0;
};

struct SendResult {
  CheckpointResult checkpoint;
  std::vector<PrecopyFigures> rounds;
  std::string precopy;          // what pre-copy did and why it stopped
  std::string compression;      // what the stream used and why (compressionReport)
  double link_bytes_per_s = 0;  // what the link carried raw, measured (0: not measured)
  std::vector<std::string> warnings;
  int64_t precopy_ms = 0;       // all rounds, while the container ran
  int64_t downtime_ms = 0;      // from the final checkpoint to the target's verdict
  int64_t stream_ms = 0;        // the final export: dump and every byte sent
  int64_t restore_ms = 0;       // then waiting for the target to restore
  int64_t total_ms = 0;
  uint64_t wire_bytes = 0;      // everything sent
  uint64_t final_wire_bytes = 0;  // sent while frozen
  uint64_t ref_bytes = 0;       // checkpoint bytes the target rebuilt from pre-copied blocks
  std::optional<PostcopyFigures> postcopy;  // set for a post-copy send
};

// A migrated container's named volumes moved with it: where its copy is
// deleted (the source after a commit, the target after a rollback) they go
// too, unless another container here still mounts them.
void removeWithVolumes(AgentEngine& engine, const ContainerInfo& c);

// Source side. Freezes `name`, streams its checkpoint to `endpoint` with the
// one-time `token`, and returns once the target reports the container
// running -- still frozen here: the caller commits (Engine::remove) or rolls
// back (Engine::resume). On a failure that leaves no copy on the target (it
// refused or failed, the stream broke before its end) the container is
// resumed here before the error is thrown. When every byte went and the
// verdict never came, it stays frozen unless resume_on_unknown_verdict: the
// target may be running it, and two copies must never run.
SendResult sendCheckpoint(AgentEngine& engine, const std::string& name, zmq::context_t& ctx,
                          const std::string& endpoint, const std::string& token,
                          const TransferOptions& opts = {});

// Target side. Restores the stream arriving on `rx` and tells the sender
// the verdict: accepted once the container runs here, else the error (which
// is also thrown). Nothing of a failed restore stays on this host.
// A post-copy checkpoint (dumped with lazy pages) runs here as soon as it
// restored; the verdict waits until CRIU's lazy-pages daemon has every page
// through `rx`. Should the pages stop coming (the source, the link, or
// `stop`), the copy here is killed before it could read a page that never
// came, and removed: the source still holds them all.
RestoreResult receiveCheckpoint(AgentEngine& engine, proto::ChunkReceiver& rx,
                                const RestoreOptions& opts = {},
                                const std::atomic<bool>* stop = nullptr);

}  // namespace ferry::agent
