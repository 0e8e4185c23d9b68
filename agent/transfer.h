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

#include <string>
#include <zmq.hpp>

#include "engine/engine.h"
#include "protocol/chunk_stream.h"

namespace ferry::agent {

#include <functional>

// Progress of a send: phase "transfer" while bytes go out, "restore" once
// they all went and the target is restoring.
using SendProgress = std::function<void(const char* phase, uint64_t bytes_sent)>;

struct TransferOptions {
  BundleWriteOptions bundle{.level = 0, .threads = 2};  // loopback: compression only costs
  proto::StreamOptions stream;
  bool tcp_established = false;
  bool file_locks = false;
  SendProgress progress;  // called at most every 250 ms, on the sending thread
  // When every byte went but the verdict never came, the target may run the
  // container: a migration keeps the source frozen (false) for the
  // coordinator to resolve; an export to a file resumes it (true).
  bool resume_on_unknown_verdict = false;
};

struct SendResult {
  CheckpointResult checkpoint;
  int64_t transfer_ms = 0;  // from the freeze to the target's verdict
  int64_t stream_ms = 0;    // the export: dump and every byte sent
  int64_t restore_ms = 0;   // then waiting for the target to restore
};

// Source side. Freezes `name`, streams its checkpoint to `endpoint` with the
// one-time `token`, and returns once the target reports the container
// running -- still frozen here: the caller commits (Engine::remove) or rolls
// back (Engine::resume). On a failure that leaves no copy on the target (it
// refused or failed, the stream broke before its end) the container is
// resumed here before the error is thrown. When every byte went and the
// verdict never came, it stays frozen unless resume_on_unknown_verdict: the
// target may be running it, and two copies must never run.
SendResult sendCheckpoint(Engine& engine, const std::string& name, zmq::context_t& ctx,
                          const std::string& endpoint, const std::string& token,
                          const TransferOptions& opts = {});

// Target side. Restores the stream arriving on `rx` and tells the sender
// the verdict: accepted once the container runs here, else the error (which
// is also thrown). Nothing of a failed restore stays on this host.
RestoreResult receiveCheckpoint(Engine& engine, proto::ChunkReceiver& rx,
                                const RestoreOptions& opts = {});

}  // namespace ferry::agent
