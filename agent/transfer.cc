#include "agent/transfer.h"

#include "engine/log.h"
#include "engine/time_util.h"

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
      report_("transfer", bytes_);
    }
  }
  uint64_t bytes() const { return bytes_; }

 private:
  ByteSink& inner_;
  const SendProgress& report_;
  uint64_t bytes_ = 0;
  std::chrono::steady_clock::time_point last_{};
};

}  // namespace

SendResult sendCheckpoint(Engine& engine, const std::string& name, zmq::context_t& ctx,
                          const std::string& endpoint, const std::string& token,
                          const TransferOptions& opts) {
  auto t0 = std::chrono::steady_clock::now();
  SendResult result;
  CheckpointOptions ck{.leave_running = true,
                       .tcp_established = opts.tcp_established,
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
    result.checkpoint = engine.exportCheckpoint(name, counted, ck, opts.bundle);
    result.stream_ms = msSince(t0);
    if (opts.progress) opts.progress("restore", counted.bytes());
    tx.finish();  // the target's verdict: throws its error
    result.restore_ms = msSince(t0) - result.stream_ms;
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
  result.transfer_ms = msSince(t0);
  return result;
}

RestoreResult receiveCheckpoint(Engine& engine, proto::ChunkReceiver& rx,
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
