#include "agent/transfer.h"

#include "agent/agent_log.h"
#include "agent/link_compression.h"
#include "common/log.h"
#include "common/time_util.h"
#include "common/units.h"

namespace ferry::agent {

namespace {

// Counts what goes through and reports it, at most every 250 ms.
class ProgressSink : public ByteSink {
 public:
  ProgressSink(ByteSink& inner, const SendProgress& report) : inner_(inner), report_(report) {}
  void write(std::string_view data) override {
    inner_.write(data);
    bytes_ += data.size();
    auto now = std::chrono::steady_clock::now();
    if (report_ && now - last_ >= std::chrono::milliseconds(250)) {
      last_ = now;
      report_(phase_, bytes_, note_);
    }
  }
  void setPhase(const char* phase, std::string note = {}) {
    phase_ = phase;
    note_ = std::move(note);
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& inner_;
  const SendProgress& report_;
  const char* phase_ = "transfer";
  std::string note_;
  uint64_t bytes_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

// Pre-copy rounds while the container runs (stop rules in transfer.h).
void precopyRounds(AgentEngine& engine, const std::string& name, const std::string& endpoint,
                   BundleWriter& writer, ProgressSink& counted, const TransferOptions& opts,
                   SendResult& result) {
  int cap = opts.precopy;
  if (cap == kPrecopyAuto) {
    uint64_t memory = engine.memoryBytes(name);
    if (memory < (uint64_t{32} << 20)) {
      result.precopy =
          "off (auto: " + formatBytes(memory) + " of memory migrates as fast without pre-copy)";
      return;
    }
    if (isLoopbackAddress(endpointHost(endpoint))) {
      result.precopy =
          "off (auto: the target is on this machine's loopback, where sending it all while "
          "frozen costs about what pre-copy saves; --precopy N forces rounds)";
      return;
    }
    cap = kPrecopyAutoRounds;
  }
  if (cap <= 0) {
    result.precopy = "off";
    return;
  }
  cap = std::min(cap, kPrecopyMaxRounds);
  auto t0 = std::chrono::steady_clock::now();
  std::string why;
  for (int r = 1; r <= cap; ++r) {
    counted.setPhase("precopy", "round " + std::to_string(r));
    uint64_t wire0 = counted.bytes();
    PrecopyRound pr = engine.precopy(name, writer);
    PrecopyFigures f{r, pr.memory_bytes + pr.files_bytes, pr.sent_bytes, counted.bytes() - wire0,
                     pr.ms};
    for (auto& w : pr.warnings) result.warnings.push_back("round " + std::to_string(r) + ": " + w);
    uint64_t goal = std::max<uint64_t>(uint64_t{8} << 20, f.read_bytes / 50);
    agentLog().info("[{}] pre-copy round {}: read {}, sent {} new in {} ms", name, r,
                     formatBytes(f.read_bytes), formatBytes(f.sent_bytes), f.ms);
    result.rounds.push_back(f);
    if (f.sent_bytes <= goal) {
      why = "the last round sent " + formatBytes(f.sent_bytes) + ", within the goal of " +
            formatBytes(goal);
      break;
    }
    if (r > 1 && f.sent_bytes * 10 > result.rounds[r - 2].sent_bytes * 8) {
      why = "the delta stopped shrinking (" + formatBytes(result.rounds[r - 2].sent_bytes) +
            " then " + formatBytes(f.sent_bytes) +
            "): memory is dirtied about as fast as it is copied";
      break;
    }
    if (r == cap) why = "the round cap of " + std::to_string(cap) + " was reached";
  }
  result.precopy_ms = msSince(t0);
  result.precopy = std::to_string(result.rounds.size()) +
                   (result.rounds.size() == 1 ? " round" : " rounds") + "; stopped: " + why;
}

}  // namespace

SendResult sendCheckpoint(AgentEngine& engine, const std::string& name, zmq::context_t& ctx,
                          const std::string& endpoint, const std::string& token,
                          const TransferOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  SendResult result;
  CheckpointOptions ck{.leave_running = true,
                       .tcp_established = opts.tcp_established,
                       .tcp_close = opts.tcp_close,
                       .file_locks = opts.file_locks,
                       .keep_paused = true};
  bool verdict_unknown = false;
  try {
    proto::ChunkSender tx(ctx, endpoint, token, "checkpoint of " + name, opts.stream);
    struct Note {
      proto::ChunkSender& tx;
      bool& unknown;
      ~Note() { unknown = tx.verdictUnknown(); }
    } note{tx, verdict_unknown};
    ProgressSink counted(tx, opts.progress);
    BlockIndex known;
    CompressionChoice compression =
        opts.level ? askedCompression(*opts.level) : chooseCompression(endpoint, localAddresses());
    agentLog().info("[{}] stream to {}: compression {}", name, endpoint, compression.reason);
    BundleWriter writer(counted,
                        {.level = compression.level, .threads = opts.threads, .known = &known});
    precopyRounds(engine, name, endpoint, writer, counted, opts, result);

    auto tf = std::chrono::steady_clock::now();
    // The bundle's header counts with the frozen part when nothing went before.
    uint64_t wire0 = result.rounds.empty() ? 0 : counted.bytes();
    counted.setPhase("transfer");
    result.checkpoint = engine.exportCheckpoint(name, writer, ck);
    result.stream_ms = msSince(tf);
    if (opts.progress) opts.progress("restore", counted.bytes(), "");
    tx.finish();  // the target's verdict: throws its error
    result.restore_ms = msSince(tf) - result.stream_ms;
    result.downtime_ms = msSince(tf);
    result.wire_bytes = counted.bytes();
    result.final_wire_bytes = counted.bytes() - wire0;
    const BundleWriteStats& ws = writer.stats();
    result.ref_bytes = ws.ref_bytes;
    // What went as data, before compression: new stream bytes and blocks.
    result.compression = compressionReport(
        compression, ws.raw_bytes - ws.ref_bytes + ws.block_bytes, result.wire_bytes);
  } catch (...) {
    bool keep_frozen = verdict_unknown && !opts.resume_on_unknown_verdict;
    // The checkpoint engine resumes on its own failures; after a complete
    // export the container is still frozen here, waiting for this verdict.
    if (!keep_frozen) {
      bestEffort("resuming after a failed transfer", [&] {
        if (engine.inspect(name).status == ContainerStatus::kPaused) engine.resume(name);
      });
    }
    try {
      throw;
    } catch (Error& e) {
      e.addContext("sending " + name + " from " + engine.config().host_name + " to " + endpoint +
                   (keep_frozen ? " (every byte went but no verdict came: it stays frozen here "
                                  "until the target is known not to run it)"
                                : " (it runs on here again)"));
      throw;
    }
  }
  result.total_ms = msSince(t0);
  return result;
}

RestoreResult receiveCheckpoint(AgentEngine& engine, proto::ChunkReceiver& rx,
                                const RestoreOptions& opts) {
  try {
    RestoreResult r = engine.importCheckpoint(rx, opts);
    rx.accept();
    return r;
  } catch (const Error& e) {
    rx.reject(e);
    throw;
  } catch (const std::exception& e) {
    Error err(ErrorCategory::kPermanent, e.what());
    rx.reject(err);
    throw err;
  }
}

}  // namespace ferry::agent
