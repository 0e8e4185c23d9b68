// Engine::checkpoint and Engine::exportCheckpoint: CRIU through runc, the
// rootfs diff and the volumes, into a CheckpointOutput (layout in engine.h).
#include "engine/engine.h"

#include <poll.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include <fstream>
#include <future>
#include <optional>
#include <thread>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/time_util.h"
#include "engine/checkpoint/page_stream.h"
#include "engine/image/tree_archive.h"
#include "engine/runtime/socket_table.h"

namespace ferry {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

json optionsJson(const CheckpointOptions& o) {
  return {{"leave_running", o.leave_running},
          {"tcp_established", o.tcp_established},
          {"tcp_close", o.tcp_close},
          {"file_locks", o.file_locks},
          {"lazy_pages", o.lazy_pages}};
}

void writeJson(CheckpointOutput& out, const std::string& kind, const std::string& name,
               const json& j) {
  out.open(kind, name).write(j.dump(2) + "\n");
  out.close();
}

// Whatever escaped (a filesystem_error, bad_alloc, ...) as an Error, so the
// rollback path sees one kind of failure.
Error asError(std::exception_ptr p) {
  try {
    std::rethrow_exception(p);
  } catch (const Error& e) {
    return e;
  } catch (const std::exception& e) {
    return Error(ErrorCategory::kPermanent, e.what());
  } catch (...) {
    return Error(ErrorCategory::kPermanent, "unknown failure");
  }
}

// Whether this process has `cap` (a capability number) in its effective set.
bool hasCapability(int cap) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("CapEff:", 0) == 0) {
      uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> cap) & 1;
    }
  }
  return false;
}

constexpr int kCapSysResource = 24;

// CRIU reads a process's rlimits with prlimit(2), which for a process of
// another user needs CAP_SYS_RESOURCE: refuse before freezing anything,
// saying why, rather than fail inside the dump. In a user namespace of the
// container's own (--userns=auto) root owns the namespace and has every
// capability there: any user checkpoints.
void requireDumpableIdentity(const json& config, const std::string& name) {
  for (const auto& ns : config["linux"].value("namespaces", json::array())) {
    if (ns.value("type", "") == "user") return;
  }
  uint32_t uid = config["process"]["user"].value("uid", 0u);
  uint32_t gid = config["process"]["user"].value("gid", 0u);
  if ((uid != 0 || gid != 0) && !hasCapability(kCapSysResource)) {
    throw Error(ErrorCategory::kIncompatible,
                name + " runs as uid " + std::to_string(uid) + " gid " + std::to_string(gid) +
                    ": CRIU reads its rlimits with prlimit(2), which for another user's process "
                    "needs CAP_SYS_RESOURCE, and this agent does not have it; give the agent "
                    "CAP_SYS_RESOURCE, run the container in a user namespace of its own "
                    "(--userns=auto, the default), or run it as root:root");
  }
}

// A container's namespace is remade on the target with only its own address
// (and loopback): a socket bound to another one could not come back there,
// and CRIU would find out only in the restore, after the freeze. Refused now,
// naming the socket. (Its connections to anyone are fine: TCP repair.)
void requireKeepableSockets(const std::string& name, pid_t pid, Ipv4 own) {
  if (pid <= 0) return;
  for (const SocketEntry& s : readSockets(pid)) {
    if (auto why = whyNotKept(s, own)) {
      throw Error(ErrorCategory::kIncompatible,
                  name + " cannot be checkpointed with its network: it has " + *why +
                      "; close or rebind that socket (to " + toString(own) +
                      " or to any address), or run the container with --network none");
    }
  }
}

// How long CRIU may keep its page-server connection waiting: for the
// connection itself it seizes and freezes the tasks first, and between
// processes it dumps everything else of the last.
constexpr std::chrono::minutes kPageServerSilence{2};

// The uid that owns the established TCP socket connected from
// 127.0.0.1:`from` to 127.0.0.1:`to` in this network namespace (nullopt:
// no such socket).
std::optional<uint32_t> loopbackSocketUid(uint16_t from, uint16_t to) {
  for (const SocketEntry& e : parseSocketTable(readFile("/proc/self/net/tcp"), "tcp")) {
    // Established only: a connection closed while it waited to be accepted
    // lingers as a socket of no process, which the kernel lists as root's.
    if (e.local == "127.0.0.1" && e.port == from && e.remote == "127.0.0.1" && e.remote_port == to &&
        e.state == 1) {
      return e.uid;
    }
  }
  return std::nullopt;
}

// Takes CRIU's connection to the page-server port `port`, refusing one that
// is not root's: whoever connects first would feed the container's memory
// to the target (root could do worse anyway). Gives up when the dump ended
// first (it failed before connecting) or after kPageServerSilence.
UniqueFd acceptCriu(int listener, uint16_t port, std::future<void>& dump) {
  auto deadline = Clock::now() + kPageServerSilence;
  while (Clock::now() < deadline) {
    if (dump.wait_for(std::chrono::seconds(0)) == std::future_status::ready) {
      dump.get();  // throws CRIU's errors
      throw Error(ErrorCategory::kPermanent, "runc checkpoint ended without sending the memory");
    }
    pollfd p{listener, POLLIN, 0};
    if (::poll(&p, 1, 50) <= 0) continue;
    sockaddr_in peer{};
    socklen_t len = sizeof peer;
    UniqueFd fd(::accept4(listener, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_CLOEXEC));
    if (!fd) continue;
    auto uid = loopbackSocketUid(ntohs(peer.sin_port), port);
    if (uid && *uid == 0) return fd;
    engineLog().warn("refused a connection to CRIU's page-server port {} from port {} (uid {})",
                     port, ntohs(peer.sin_port), uid ? std::to_string(*uid) : "unknown");
  }
  throw Error(ErrorCategory::kPermanent,
              "CRIU did not connect to its page server within " +
                  std::to_string(kPageServerSilence.count()) + " min");
}

}  // namespace

CheckpointResult Engine::checkpoint(const std::string& name, const fs::path& dir,
                                    const CheckpointOptions& opts) {
  fs::path abs = fs::absolute(dir);
  return withContext("checkpointing " + name + " on " + cfg_.host_name, [&] {
    if (opts.stream_pages) {
      throwInvalidInput("a checkpoint into a directory cannot stream its memory (only into a "
                        "bundle a migration's target reads)");
    }
    CheckpointResult r = checkpointTo(name, [&] { return directoryOutput(abs); }, opts);
    r.dir = abs;
    return r;
  });
}

CheckpointResult Engine::exportCheckpoint(const std::string& name, ByteSink& sink,
                                          const CheckpointOptions& opts,
                                          const BundleWriteOptions& bundle) {
  return withContext("exporting a checkpoint of " + name + " on " + cfg_.host_name, [&] {
    return checkpointTo(name, [&] { return bundleOutput(sink, bundle, cfg_.root / "tmp"); }, opts);
  });
}

CheckpointResult Engine::exportCheckpoint(const std::string& name, BundleWriter& out,
                                          const CheckpointOptions& opts) {
  return withContext("exporting a checkpoint of " + name + " on " + cfg_.host_name, [&] {
    return checkpointTo(name, [&] { return bundleOutput(out, cfg_.root / "tmp"); }, opts);
  });
}

namespace {

// The container's last output may still be on its way from the pipe into
// the log through conmon when the dump ends (the process is frozen or gone,
// so nothing new comes). The log counts as complete once its size has not
// changed for 5 ms -- usually already so by the time the archives are done
// -- or after 200 ms at most.
class LogSettle {
 public:
  explicit LogSettle(fs::path log) : log_(std::move(log)), size_(sizeOf()), since_(Clock::now()) {}
  void wait() {
    auto start = Clock::now();
    for (;;) {
      uint64_t now_size = sizeOf();
      if (now_size != size_) {
        size_ = now_size;
        since_ = Clock::now();
      }
      if (Clock::now() - since_ >= std::chrono::milliseconds(5) ||
          Clock::now() - start >= std::chrono::milliseconds(200)) {
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }

 private:
  uint64_t sizeOf() const {
    std::error_code ec;
    uint64_t n = fs::file_size(log_, ec);
    return ec ? 0 : n;
  }
  fs::path log_;
  uint64_t size_;
  Clock::time_point since_;
};

}  // namespace

CheckpointResult Engine::checkpointTo(const std::string& name, const OutputFactory& make_output,
                                      const CheckpointOptions& asked) {
  FileLock held = containerLock(name);  // through the dump and the stream
  auto t0 = Clock::now();
  ContainerRecord rec = containers_.get(name, cfg_.host_name);
  CheckpointOptions opts = asked;
  const bool networked = !rec.spec.network.empty();
  if (networked) {
    // Its TCP connections go with it (CRIU's TCP repair), unless the caller
    // drops them on purpose: then they restore closed, and the peers see
    // them end.
    opts.tcp_established = !opts.tcp_close;
  }
  // A lazy dump's page server would listen on every address (runc passes
  // CRIU only its port): kept to loopback, where only the agent reaches it.
  writeFileAtomic(containers_.paths(name).criu_config(),
                  std::string(networked && opts.tcp_close ? "tcp-close\n" : "") +
                      (opts.lazy_pages ? "address 127.0.0.1\n" : ""),
                  0600);
  ContainerInfo info = inspectRecord(rec);
  if (info.status != ContainerStatus::kRunning) {
    throwInvalidInput("container is " + std::string(statusName(info.status)) +
                      "; only a running container can be checkpointed");
  }
  if (opts.keep_paused && !opts.leave_running) {
    throwInvalidInput("keep-paused needs leave-running: without it the checkpoint ends the container");
  }
  for (const auto& v : rec.spec.volumes) {
    if (v.overlay) {
      throwInvalidInput(name + " has an overlay (O) volume, " + v.name +
                        ", whose writes are this container's alone and go with it: checkpointing "
                        "or migrating it is not supported");
    }
  }
  if (rec.spec.listen_fds > 0) {
    throwInvalidInput(name + " holds " + std::to_string(rec.spec.listen_fds) +
                      " socket(s) handed over by this host's service manager (socket activation, "
                      "LISTEN_FDS): they belong to that manager and cannot be checkpointed or "
                      "migrated; start it anew where it should run");
  }
  if (networked) requireKeepableSockets(name, info.pid, parseIpv4(rec.spec.network.ip));
  const json config = json::parse(readFile(containers_.paths(name).config()));
  requireDumpableIdentity(config, name);
  if (opts.lazy_pages) {
    if (!opts.keep_paused) throwInvalidInput("a lazy-pages dump keeps the container paused (keep-paused)");
    const json annotations = config.value("annotations", json::object());
    if (annotations.value("org.criu.config", "") != containers_.paths(name).criu_config().string()) {
      throw Error(ErrorCategory::kIncompatible,
                  name + " was started by an older ferry, whose runtime settings cannot keep CRIU's "
                         "page server to loopback: post-copy would expose its memory on every "
                         "address; migrate it without --postcopy (its copy on the target can)");
    }
  }
  if (opts.stream_pages) {
    // A dump that ended the container with its memory half-sent would lose
    // it; one left running (frozen) loses nothing when the stream breaks.
    if (!opts.leave_running || !opts.keep_paused) {
      throwInvalidInput("streaming the memory as CRIU dumps it keeps the container (leave-running "
                        "and keep-paused)");
    }
    if (opts.lazy_pages) {
      throwInvalidInput("a lazy-pages dump leaves the memory with the tasks: it cannot stream it too");
    }
  }
  ImageRecord image = images_.resolve(rec.image_id);
  ContainerPaths p = containers_.paths(name);
  // Before the freeze: it runs CRIU and runc. The checkpoint records the
  // lock its dump used (nftables only where the caller knows the restoring
  // host's CRIU can lift it too, and this one's can take it).
  HostInfo source = hostInfo();
  opts.nftables_lock = asked.nftables_lock && source.nftables_lock;
  source.nftables_lock = opts.nftables_lock;
  // CRIU's dump.log and stats live beside the host's other logs, so an
  // error can point at them after the output is discarded.
  fs::path work = logDir(name, "checkpoint");
  makeDirs(work, 0700);
  std::unique_ptr<CheckpointOutput> out = make_output();  // only now: nothing to undo before

  // Everything known before the freeze goes first: a reader can check it
  // (and refuse) before the rest arrives.
  try {
    if (rec.spec.sdnotify == "container") {
      NotifyState n = readNotifyState(p.notify_state());
      rec.notify_ready = n.ready;
      rec.notify_status = n.status;
    }
    writeJson(*out, "metadata", "checkpoint.json",
              {{"format", kCheckpointFormat},
               {"container", rec},
               {"image", {{"id", image.id}, {"names", image.names}}},
               {"host", source},
               {"options", optionsJson(opts)},
               {"created_unix", unixNow()}});
    // For inspection only (a restore writes its own): secrets left out.
    out->open("spec", "config.json")
        .write(redactSecrets(config, rec.spec.secrets).dump(2) + "\n");
    out->close();
  } catch (...) {
    out->discard();
    throw;
  }

  // With --leave-running the container is paused around the dump and the
  // archives, so memory, rootfs and volumes are one consistent moment.
  // A source that stays (frozen) while its copy restores elsewhere is cut
  // off the network first: its sockets must neither answer nor reset a
  // peer until it either ends (the namespace goes, the lock with it) or
  // runs on (unlocked).
  const bool locking = networked && opts.leave_running && networking_;
  if (locking) networking_->lock(name);
  if (opts.leave_running) runtime_.pause(name);
  auto resumeIfPaused = [&] {
    if (opts.leave_running && inspectRecord(rec).status == ContainerStatus::kPaused) {
      runtime_.resume(name);
    }
    if (locking) networking_->unlock(name);
  };
  auto td = Clock::now();
  CheckpointResult result;
  try {
    if (opts.lazy_pages) {
      result.lazy = runtime_.checkpointLazy(name, out->criuDir(), work, opts);
    } else if (opts.stream_pages) {
      result.streamed_pages = dumpStreamingPages(name, *out, work, opts);
    } else {
      runtime_.checkpoint(name, out->criuDir(), work, opts);
    }
  } catch (...) {
    resumeIfPaused();
    out->discard();
    throw;
  }
  result.dump_ms = msSince(td);
  LogSettle log_settle(p.log());
  if (!opts.leave_running) {
    rec.checkpointed = true;
    containers_.save(rec);
  }

  try {
    out->addCriuImages();
    std::vector<TreeChange> changes;
    writeTreeArchive(p.upper(), TreeKind::kOverlayUpper, out->open("rootfs", "rootfs.tar"),
                     images_.rootfs(image.id), &changes);
    out->close();
    json list = json::array();
    for (const auto& c : changes) list.push_back({{"mark", std::string(1, c.mark)}, {"path", c.path}});
    writeJson(*out, "changes", "rootfs-changes.json", list);
    for (const auto& v : rec.spec.volumes) {
      writeTreeArchive(volumes_.path(v.name), TreeKind::kPlain, out->open("volume", v.name));
      out->close();
    }
    log_settle.wait();
    writeLogTail(p.log(), out->open("log", "ctr.log"));
    out->close();
    result.criu = readCriuStats(work / "stats-dump").value_or(CriuStats{}).dump;
    out->commit({{"criu_dump_stats", result.criu ? json(*result.criu) : json(nullptr)},
                 {"dump_ms", result.dump_ms},
                 {"source_host", cfg_.host_name}});
    bestEffort("marking the dump's log done", [&] { markLogDone(work); });
  } catch (...) {
    Error e = asError(std::current_exception());
    if (opts.leave_running) {
      result.lazy.reset();  // CRIU lets go of the tasks (still paused) first
      resumeIfPaused();
      out->discard();
      throw e;
    }
    rollBackCheckpoint(rec, *out, opts, e);  // throws e, with what happened
  }
  if (!opts.keep_paused) resumeIfPaused();

  result.memory_bytes = out->rawBytes("criu") + out->rawBytes("pages");
  result.rootfs_bytes = out->rawBytes("rootfs");
  result.volume_bytes = out->rawBytes("volume");
  result.bundle_bytes = out->wireBytes();
  result.total_ms = msSince(t0);
  engineLog().info("[{}] checkpointed in {} ms (dump {} ms, {} bytes of memory)", name,
                   result.total_ms, result.dump_ms, result.memory_bytes);
  return result;
}

uint64_t Engine::dumpStreamingPages(const std::string& name, CheckpointOutput& out,
                                    const fs::path& work, const CheckpointOptions& opts) {
  // Whether a failure came from the output (the peer went) or from CRIU.
  bool out_failed = false;
  auto onOutput = [&](auto&& f) -> decltype(auto) {
    try {
      return f();
    } catch (...) {
      out_failed = true;
      throw;
    }
  };
  struct Watched : ByteSink {
    ByteSink& inner;
    bool& failed;
    Watched(ByteSink& s, bool& f) : inner(s), failed(f) {}
    void write(std::string_view d) override {
      try {
        inner.write(d);
      } catch (...) {
        failed = true;
        throw;
      }
    }
  };
  uint16_t port = 0;
  UniqueFd listener = boundLoopbackSocket(&port, 4, "CRIU's page server connection");
  std::future<void> dump = std::async(std::launch::async, [&] {
    runtime_.checkpoint(name, out.criuDir(), work, opts, port);
  });
  UniqueFd criu;
  std::optional<Watched> sink;
  try {
    criu = acceptCriu(listener.get(), port, dump);
    listener.reset();
    sink.emplace(onOutput([&]() -> ByteSink& { return out.open("pages", "page-server"); }),
                 out_failed);
    PageStreamStats stats = relayPageServer(criu.get(), *sink, kPageServerSilence);
    onOutput([&] { out.close(); });
    dump.get();
    engineLog().info("[{}] {} pages of {} processes or segments streamed as CRIU dumped them",
                     name, stats.pages, stats.pagemaps);
    return stats.pages;
  } catch (...) {
    // Closing CRIU's connection fails the dump (the tasks go on); when the
    // dump failed first, its error says why.
    criu.reset();
    listener.reset();
    Error e = asError(std::current_exception());
    if (!dump.valid()) throw e;  // it was the dump's own error
    try {
      dump.get();
    } catch (...) {
      Error de = asError(std::current_exception());
      if (!out_failed) {
        // CRIU's failure, and the relay's account of the connection.
        throw Error(de.category(),
                    std::string(de.what()) + " (the relay of its memory: " + e.what() + ")",
                    de.errnum());
      }
      e.addContext("streaming the memory (the dump then failed: " + std::string(de.what()) + ")");
      throw e;
    }
    e.addContext("streaming the memory");
    throw e;
  }
}

void Engine::rollBackCheckpoint(ContainerRecord& rec, CheckpointOutput& out,
                                const CheckpointOptions& opts, Error e) {
  // The dump ended the process: bring it back from its own images so a
  // failed checkpoint loses nothing.
  try {
    giveImagesToItsRoot(out.criuDir(), rec.id_range);
    ConmonLaunch l = launchFor(rec.name());
    l.restore_from = out.criuDir();
    l.restore_opts = opts;
    l.restore_work = logDir(rec.name(), "rollback");
    runtime_.launch(l);
  } catch (...) {
    // Then the images are the only copy left: they stay, and the record
    // says where.
    Error re = asError(std::current_exception());
    rec.checkpoint_dir = out.keep().string();
    containers_.save(rec);
    re.addContext("rolling back a checkpoint that failed after the dump (" + std::string(e.what()) +
                  "); the container's CRIU images are kept in " + rec.checkpoint_dir);
    throw re;
  }
  rec.checkpointed = false;
  containers_.save(rec);
  out.discard();
  e.addContext("after the dump (the container was restored from its images and runs again)");
  throw e;
}

}  // namespace ferry
