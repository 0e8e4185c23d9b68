#include "agent/transfer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "agent/agent_log.h"
#include "agent/link_compression.h"
#include "common/log.h"
#include "common/time_util.h"
#include "common/units.h"
#include "engine/bundle/blocks.h"
#include "engine/checkpoint/lazy_pagemap.h"
#include "engine/runtime/runtime.h"

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
  LogFields phase("FERRY_PHASE", "pre-copy");  // the journal's field (common/log.h)
  int cap = opts.precopy;
  if (cap == kPrecopyAuto) {
    // What would cross while frozen: the memory, the rootfs diff and the
    // volumes (the files counted only as far as the thresholds need).
    // (walked only when they can change the decision).
    uint64_t memory = engine.memoryBytes(name);
    const bool loopback = !opts.postcopy && isLoopbackAddress(endpointHost(endpoint));
    uint64_t files = memory < kPrecopyAutoBytes || loopback
                         ? engine.filesBytes(name, kPrecopyAutoFilesBytes)
                         : 0;
    if (memory + files < kPrecopyAutoBytes) {
      result.precopy = "off (auto: " + formatBytes(memory) + " of memory and " +
                       formatBytes(files) +
                       " of rootfs diff and volumes migrate as fast without pre-copy)";
      return;
    }
    if (loopback && files < kPrecopyAutoFilesBytes) {
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

// A pre-copied block's hash as post-copy names it on the wire, and back.
proto::BlockName nameOf(const BlockHash& h) {
  proto::BlockName n;
  std::memcpy(n.data(), &h.lo, 8);
  std::memcpy(n.data() + 8, &h.hi, 8);
  return n;
}
BlockHash hashOf(const proto::BlockName& n) {
  BlockHash h;
  std::memcpy(&h.lo, n.data(), 8);
  std::memcpy(&h.hi, n.data() + 8, 8);
  return h;
}

// Source: the pages the target holds from pre-copy rounds (none without).
proto::HeldLookup heldLookup(const BlockIndex& known) {
  if (known.size() == 0) return {};
  return [&known](std::string_view page, proto::BlockName& name) {
    BlockHash h = hashBlock(page);
    if (!known.contains(h)) return false;
    name = nameOf(h);
    return true;
  };
}

// Target: the pages named, from the pre-copied blocks.
proto::HeldPages heldPages(std::shared_ptr<BlockStore> store) {
  if (!store) return {};
  return [store](const std::vector<proto::BlockName>& names, std::string& out) {
    std::vector<BlockStore::Ref> refs;
    refs.reserve(names.size());
    for (const auto& n : names) refs.push_back({hashOf(n), static_cast<uint32_t>(kPageBlock)});
    store->copyOut(refs, [&](std::string_view d) { out.append(d); });
  };
}

// A connected pair of TCP sockets on loopback, for CRIU's lazy-pages daemon
// (its page server connection: CRIU sets TCP options on it) and the pump.
// The listener is gone before either is used: nothing else can connect.
std::pair<UniqueFd, UniqueFd> loopbackPair() {
  const std::string what = "the lazy-pages daemon's connection";
  uint16_t port = 0;
  UniqueFd listener = boundLoopbackSocket(&port, 1, what);
  UniqueFd one = connectLoopback(port, what);
  sockaddr_in peer{}, mine{};
  socklen_t plen = sizeof peer, mlen = sizeof mine;
  UniqueFd two(::accept4(listener.get(), reinterpret_cast<sockaddr*>(&peer), &plen, SOCK_CLOEXEC));
  if (!two) throwErrno("accepting " + what);
  // Only our own connection is taken (another process could have raced it).
  if (::getsockname(one.get(), reinterpret_cast<sockaddr*>(&mine), &mlen) != 0 ||
      mine.sin_port != peer.sin_port) {
    throw Error(ErrorCategory::kRetryable, "another connection raced " + what);
  }
  return {std::move(one), std::move(two)};
}

// What killing a copy cut short takes on the target beyond its timeout
// (the guard's runc kill and its wait for the container to stop).
constexpr std::chrono::milliseconds kPostcopyKillMargin{10000};

}  // namespace

void removeWithVolumes(AgentEngine& engine, const ContainerInfo& c) {
  engine.remove(c.name(), true);
  for (const auto& v : c.record.spec.volumes) {
    bool used = false;
    for (const auto& other : engine.list()) {
      for (const auto& ov : other.record.spec.volumes) used = used || ov.name == v.name;
    }
    if (!used) engine.removeVolume(v.name);
  }
}

SendResult sendCheckpoint(AgentEngine& engine, const std::string& name, zmq::context_t& ctx,
                          const std::string& endpoint, const std::string& token,
                          const TransferOptions& opts) {
  LogFields scope(LogFields::Fields{{"CONTAINER_NAME", name}, {"FERRY_PHASE", "send"}});
  auto t0 = std::chrono::steady_clock::now();
  SendResult result;
  CheckpointOptions ck{.leave_running = true,
                       .tcp_established = opts.tcp_established,
                       .tcp_close = opts.tcp_close,
                       .file_locks = opts.file_locks,
                       .keep_paused = true,
                       .lazy_pages = opts.postcopy,
                       // No disk on the frozen path: the memory crosses as
                       // CRIU dumps it (a post-copy's stays with the tasks).
                       // The pages stream is cut in 4 KiB pages: a host of
                       // another page size dumps to disk first, as before.
                       .stream_pages = !opts.postcopy && ::sysconf(_SC_PAGESIZE) == 4096,
                       .nftables_lock = opts.nftables_lock};
  bool verdict_unknown = false;
  bool cut_short = false;  // post-copy: a copy restored there, short of pages
  std::optional<std::chrono::milliseconds> peer_timeout;  // the target's, when it said
  // Post-copy: the page server's connection, then the dump serving it --
  // ended in that order on every path (its end lets CRIU go; the tasks stay
  // paused), before the container is resumed or removed.
  UniqueFd pages;
  std::shared_ptr<LazyDump> lazy;
  auto endServing = [&] {
    pages.reset();
    if (lazy) {
      auto l = std::move(lazy);
      bestEffort("ending CRIU's page server", [&] { l->wait(std::chrono::seconds(30)); });
    }
  };
  const uint64_t estimate = opts.postcopy ? engine.memoryBytes(name) : 0;
  try {
    proto::ChunkSender tx(ctx, endpoint, token, "checkpoint of " + name, opts.stream);
    struct Note {
      proto::ChunkSender& tx;
      bool& unknown;
      bool& cut_short;
      std::optional<std::chrono::milliseconds>& peer_timeout;
      ~Note() {
        unknown = tx.verdictUnknown();
        cut_short = tx.copyCutShort();
        peer_timeout = tx.peerTimeout();
      }
    } note{tx, verdict_unknown, cut_short, peer_timeout};
    ProgressSink counted(tx, opts.progress);
    BlockIndex known;
    CompressionChoice compression =
        opts.level ? askedCompression(*opts.level) : chooseCompression(endpoint, localAddresses());
    // A link elsewhere is measured first (before any freeze), then each
    // record is compressed only while that is measured to beat it.
    std::optional<RecordCompression> adaptive;
    if (compression.measure) {
      proto::LinkProbe probe = tx.probeLink();
      result.link_bytes_per_s = probe.bytesPerSecond();
      compression.probe = formatBytes(probe.bytes) + " in " +
                          std::to_string((probe.us + 500) / 1000) + " ms";
      adaptive.emplace(result.link_bytes_per_s, opts.threads, compression.level);
      agentLog().info("[{}] the link to {} carried {} raw ({} in {} us)", name, endpoint,
                      formatRate(result.link_bytes_per_s), formatBytes(probe.bytes), probe.us);
    } else {
      agentLog().info("[{}] stream to {}: compression {}", name, endpoint, compression.reason);
    }
    BundleWriter writer(counted, {.level = compression.level,
                                  .threads = opts.threads,
                                  .adaptive = adaptive ? &*adaptive : nullptr,
                                  .known = &known});
    precopyRounds(engine, name, endpoint, writer, counted, opts, result);

    auto tf = std::chrono::steady_clock::now();
    // The bundle's header counts with the frozen part when nothing went before.
    uint64_t wire0 = result.rounds.empty() ? 0 : counted.bytes();
    counted.setPhase("transfer");
    uint64_t postcopy_wire = 0;  // pages and the names of held ones
    result.checkpoint = engine.exportCheckpoint(name, writer, ck);
    lazy = std::move(result.checkpoint.lazy);
    result.stream_ms = msSince(tf);
    if (opts.progress) opts.progress("restore", counted.bytes(), "");
    if (!lazy) {
      tx.finish();  // the target's verdict: throws its error
      result.restore_ms = msSince(tf) - result.stream_ms;
      result.downtime_ms = msSince(tf);
    } else {
      LogFields phase("FERRY_PHASE", "post-copy");
      pages = connectLoopback(lazy->port(), "CRIU's page server");
      lazy->unguard();
      std::optional<std::chrono::steady_clock::time_point> restored;
      const uint64_t before = counted.bytes();
      const proto::PageFeedStats ps = tx.finishWithPages(
          pages.get(), heldLookup(known),
          [&] {
            restored = std::chrono::steady_clock::now();
            agentLog().info("[{}] runs on the target after {} ms frozen; its pages follow", name,
                            msSince(tf));
          },
          [&](uint64_t out) {
            if (!opts.progress) return;
            uint64_t left = estimate > out ? estimate - out : 0;
            opts.progress("postcopy", before + out, formatBytes(left) + " of memory left");
          });
      auto end = std::chrono::steady_clock::now();
      auto at = restored.value_or(end);
      result.downtime_ms = std::chrono::duration_cast<std::chrono::milliseconds>(at - tf).count();
      result.restore_ms = result.downtime_ms - result.stream_ms;
      result.postcopy = PostcopyFigures{
          std::chrono::duration_cast<std::chrono::milliseconds>(end - at).count(),
          ps.urgent_pages * proto::kPostcopyPageBytes, ps.ahead_pages * proto::kPostcopyPageBytes,
          ps.held_pages * proto::kPostcopyPageBytes};
      postcopy_wire = ps.bytes + ps.held_pages * sizeof(proto::BlockName);
      endServing();
      agentLog().info("[{}] post-copy done in {} ms: {} on demand, {} pushed, {} held there",
                      name, result.postcopy->ms, formatBytes(result.postcopy->on_demand_bytes),
                      formatBytes(result.postcopy->pushed_bytes),
                      formatBytes(result.postcopy->held_bytes));
    }
    // Post-copy's pages cross after the freeze: in the total, not the frozen part.
    result.wire_bytes = counted.bytes() + postcopy_wire;
    result.final_wire_bytes = counted.bytes() - wire0;
    const BundleWriteStats& ws = writer.stats();
    result.ref_bytes = ws.ref_bytes;
    // What went as data, before compression: new stream bytes and blocks.
    std::optional<RecordCompression::Figures> measured;
    if (adaptive) measured = adaptive->figures();
    result.compression =
        compressionReport(compression, ws.raw_bytes - ws.ref_bytes + ws.block_bytes,
                          result.wire_bytes, measured ? &*measured : nullptr);
  } catch (...) {
    endServing();
    if (cut_short) {
      // A copy there may wait for pages that will not come; its agent kills
      // it once the stream was silent for its own timeout (said at the
      // tunnel's start), which began at the latest when this side last
      // spoke -- about now. Not before that, and the kill itself, does this
      // copy run again: never two at once.
      auto wait = std::max(opts.stream.timeout, peer_timeout.value_or(opts.stream.timeout)) +
                  kPostcopyKillMargin;
      agentLog().warn("[{}] post-copy to {} cut short; resuming here in {} ms, once the copy "
                      "there is surely killed",
                      name, endpoint, wait.count());
      std::this_thread::sleep_for(wait);
    }
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
                    : cut_short ? " (post-copy was cut short: it runs on here again from the "
                                  "moment it froze, and what it did on the target since is lost)"
                                : " (it runs on here again)"));
      throw;
    }
  }
  result.total_ms = msSince(t0);
  return result;
}

namespace {

// The target's half of post-copy: the pump serving the daemon's page
// requests from the stream (its own thread, started by the restore once the
// bundle is in) and what it ended with.
struct Pump {
  UniqueFd daemon_end, our_end;  // connected: the daemon's, the pump's
  std::atomic<bool> restored{false}, stop{false}, done{false};
  std::thread thread;
  std::exception_ptr error;
  proto::PageFeedStats stats;

  ~Pump() {
    stop = true;
    if (thread.joinable()) thread.join();
  }
};

}  // namespace

RestoreResult receiveCheckpoint(AgentEngine& engine, proto::ChunkReceiver& rx,
                                const RestoreOptions& opts_in, const std::atomic<bool>* stop) {
  auto pump = std::make_unique<Pump>();
  std::string name = opts_in.name;
  LogFields scope(LogFields::Fields{{"CONTAINER_NAME", name}, {"FERRY_PHASE", "receive"}});
  try {
    RestoreOptions opts = opts_in;
    Pump* p = pump.get();
    opts.on_lazy_start = [&rx, p](const RestoreOptions::LazyStart& start) {
      std::vector<proto::PageRange> lazy;
      for (const LazyPages& l : lazyPagemap(start.images)) lazy.push_back({l.pid, l.vaddr, l.pages});
      auto [daemon_end, our_end] = loopbackPair();
      p->daemon_end = std::move(daemon_end);
      p->our_end = std::move(our_end);  // made non-blocking by the page feed
      p->thread = std::thread([&rx, p, lazy = std::move(lazy),
                               held = heldPages(start.precopied)]() mutable {
        try {
          p->stats = rx.servePages(p->our_end.get(), std::move(lazy), held, p->restored, p->stop);
        } catch (...) {
          p->error = std::current_exception();
        }
        p->done = true;
      });
      return RestoreOptions::LazyPagesFds{p->daemon_end.get(), p->our_end.get()};
    };
    RestoreResult r = engine.importCheckpoint(rx, opts);
    pump->daemon_end.reset();  // the daemon has its own now
    name = r.container.name();
    if (!r.lazy) {
      pump.reset();
      rx.accept();
      return r;
    }
    // It runs; its pages follow. The verdict waits for the last of them.
    auto t0 = std::chrono::steady_clock::now();
    pump->restored = true;
    try {
      for (;;) {
        if (r.lazy->waitFor(std::chrono::milliseconds(100))) break;  // throws: the guard killed it
        if (pump->done && pump->error) std::rethrow_exception(pump->error);
        if (stop && stop->load()) {
          throw Error(ErrorCategory::kRetryable, "the agent is stopping");
        }
      }
      // The daemon ended with every page: its connection ends with it.
      auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      while (!pump->done && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      pump->stop = true;
      if (pump->thread.joinable()) pump->thread.join();
    } catch (...) {
      r.lazy->abort();  // the container dies before the daemon lets go of its faults
      pump.reset();
      bestEffort("removing the copy whose pages did not all arrive",
                 [&] { removeWithVolumes(engine, engine.inspect(name)); });
      throw;
    }
    agentLog().info("[{}] every page arrived in {} ms ({} faults; {} pages on demand, {} ahead, "
                    "{} held from pre-copy)",
                    name, msSince(t0), pump->stats.fault_requests, pump->stats.urgent_pages,
                    pump->stats.ahead_pages, pump->stats.held_pages);
    pump.reset();
    rx.accept();
    return r;
  } catch (const Error& e) {
    pump.reset();
    rx.reject(e);
    throw;
  } catch (const std::exception& e) {
    pump.reset();
    Error err(ErrorCategory::kPermanent, e.what());
    rx.reject(err);
    throw err;
  }
}

}  // namespace ferry::agent
