#include "agent/commands.h"

#include <fcntl.h>
#include <unistd.h>

#include <regex>
#include <set>
#include <thread>

#include "agent/agent_log.h"
#include "agent/agent_network.h"
#include "common/log.h"
#include "engine/bundle/bundle.h"
#include "engine/spec/run_args.h"
#include "protocol/capnp_text.h"
#include "protocol/convert/run_args_proto.h"
#include "protocol/framing.h"

namespace ferry::agent {

namespace {
using proto::text;
std::string bytes(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

proto::Fill logChunkReply(LogChunk c) {
  auto chunk = std::make_shared<const LogChunk>(std::move(c));  // a Fill is copied
  return [chunk](proto::Message::Builder m) {
    auto r = m.initLogChunk();
    auto lines = r.initLines(static_cast<unsigned>(chunk->lines.size()));
    for (size_t i = 0; i < chunk->lines.size(); ++i) {
      lines.set(static_cast<unsigned>(i), chunk->lines[i].text);
    }
    r.setNextOffset(chunk->next.offset);
    r.setMark(chunk->next.mark);
    r.setMore(chunk->more);
    r.setRestarted(chunk->restart == LogRestart::kFromStart);
    r.setEnded(chunk->ended);
  };
}
}  // namespace

void fillContainer(proto::Container::Builder b, const ContainerInfo& c, const std::string& host) {
  b.setName(c.name());
  b.setHost(host);
  b.setImage(c.record.spec.image);
  b.setStatus(std::string(statusName(c.status)));
  b.setPid(static_cast<uint32_t>(c.pid));
  b.setExitCode(c.exit_code.value_or(-1));
  auto vols = b.initVolumes(static_cast<unsigned>(c.record.spec.volumes.size()));
  for (size_t i = 0; i < c.record.spec.volumes.size(); ++i) {
    vols.set(static_cast<unsigned>(i), c.record.spec.volumes[i].name);
  }
  auto secrets = b.initSecrets(static_cast<unsigned>(c.record.spec.secrets.size()));
  for (size_t i = 0; i < c.record.spec.secrets.size(); ++i) {
    secrets.set(static_cast<unsigned>(i), c.record.spec.secrets[i].name);
  }
  b.setReady(c.ready);
  b.setNotifyStatus(c.notify_status);
  const NetworkSpec& net = c.record.spec.network;
  b.setIp(net.ip);
  b.setMac(net.mac);
  auto ports = b.initPorts(static_cast<unsigned>(net.ports.size()));
  for (size_t i = 0; i < net.ports.size(); ++i) ports.set(static_cast<unsigned>(i), net.ports[i]);
}

proto::Fill errorReply(const Error& e, const std::string& host) {
  return [e, host](proto::Message::Builder m) { proto::fillErrorInfo(m.initError(), e, host); };
}

proto::Fill replyOf(const std::function<proto::Fill()>& work, const std::string& host) {
  try {
    return work();
  } catch (const Error& e) {
    return errorReply(e, host);
  } catch (const std::exception& e) {
    return errorReply(Error(ErrorCategory::kPermanent, e.what()), host);
  }
}

proto::Fill Commands::ticketReply(const std::string& bound) const {
  // Bound on the --listen address; the sender is told the advertised one,
  // with the same port.
  std::string endpoint = "tcp://" + opts_.advertisedAddress() + bound.substr(bound.rfind(':'));
  std::optional<std::string> key;
  if (opts_.keys) key = opts_.keys->public_key;
  return [endpoint, key](proto::Message::Builder m) {
    auto t = m.initStreamTicket();
    t.setEndpoint(endpoint);
    if (key) t.setServerKey(*key);
  };
}

Commands::Commands(const AgentOptions& opts, AgentEngine& engine, zmq::context_t& ctx,
                   BusyContainers& busy, PostFn post)
    : opts_(opts), engine_(engine), ctx_(ctx), busy_(busy), post_(std::move(post)) {
  // Before any stream binds: without a ZAP handler libzmq admits every key.
  if (opts_.keys) stream_keys_.emplace(ctx_);
}

proto::StreamOptions Commands::streamOptions() const {
  proto::StreamOptions so;
  so.timeout = opts_.stream_timeout;
  if (opts_.keys) so.own_keys = opts_.keys;
  if (metrics_) {
    so.count_bytes = [m = metrics_](uint64_t n) { m->streamed(metrics::Direction::kSent, n); };
  }
  return so;
}

proto::StreamOptions Commands::receiverOptions(const std::string& sender_key,
                                               std::shared_ptr<proto::StreamKeys::Vouch>& vouch) {
  proto::StreamOptions so = streamOptions();
  if (metrics_) {
    so.count_bytes = [m = metrics_](uint64_t n) { m->streamed(metrics::Direction::kReceived, n); };
  }
  if (stream_keys_) {
    vouch = stream_keys_->vouch(sender_key);
    so.zap_domain = vouch->domain();
  }
  return so;
}

TransferOptions Commands::transferOptions(uint64_t id, const std::string& container,
                                       const std::string& server_key,
                                       const std::string& restore_phase) {
  TransferOptions t;
  t.stream = streamOptions();
  // Locks a process holds are part of its state: without --file-locks
  // CRIU refuses to dump it ("Some file locks are hold by dumping tasks!
  // You can try --file-locks to dump them."), so a process holding an
  // flock or a POSIX lock -- SQLite in WAL mode always does -- could not
  // move. Podman checkpoints with it too.
  t.file_locks = true;
  if (opts_.keys) t.stream.peer_public_key = server_key;
  // What the stream will roughly carry: the container's memory (CRIU's
  // pages dominate); for the ETA only.
  uint64_t estimate = engine_.memoryBytes(container);
  t.progress = [this, id, estimate, restore_phase](const char* phase, uint64_t sent,
                                                   const std::string& note) {
    std::string ph = std::string(phase) == "restore" ? restore_phase : phase;
    // Pre-copy rounds each send up to the estimate; the total is per round.
    post_(id, [ph, sent, estimate, note](proto::Message::Builder m) {
      auto p = m.initProgress();
      p.setPhase(ph);
      p.setBytesDone(sent);
      p.setBytesTotal(ph != "precopy" && sent < estimate ? estimate : 0);
      p.setMessage(note);
    });
  };
  return t;
}

proto::Fill Commands::containerReply(const ContainerInfo& c) const {
  std::string host = opts_.name;
  return [c, host](proto::Message::Builder r) { fillContainer(r.initContainer(), c, host); };
}

namespace {
proto::Fill okReply() {
  return [](proto::Message::Builder r) { r.setOk(); };
}
// Where a stream goes is read from the wire (a receiver's ticket): only
// tcp://HOST:PORT, which is what every receiver binds. An inproc:// endpoint
// would reach this process's own sockets (the ZAP handler) or, one nobody
// bound, hold a file descriptor for good; ipc:// any local unix socket; a
// "tcp://SOURCE;DEST" pair would pick this host's source address.
void requireTcpEndpoint(const std::string& endpoint) {
  static const std::regex kTcp(R"(tcp://[A-Za-z0-9.\-]{1,253}:[0-9]{1,5}|tcp://\[[0-9A-Fa-f:.]{2,45}\]:[0-9]{1,5})");
  if (!std::regex_match(endpoint, kTcp)) {
    throw Error(ErrorCategory::kInvalidInput,
                "stream endpoint '" + endpoint.substr(0, 80) +
                    "' is not tcp://HOST:PORT (what a receiver's ticket names)");
  }
}
// "tcp://HOST:PORT" -> HOST (an endpoint requireTcpEndpoint admitted).
std::string endpointHost(const std::string& endpoint) {
  std::string rest = endpoint.substr(6);
  return rest.substr(0, rest.rfind(':'));
}

std::optional<ContainerInfo> findContainer(AgentEngine& engine, const std::string& name) {
  for (auto& c : engine.list()) {
    if (c.name() == name) return c;
  }
  return std::nullopt;
}
}  // namespace

// --sdnotify=container: `run` answers once the container said READY=1 (as
// Podman's), with progress meanwhile so the caller keeps waiting.
ContainerInfo Commands::awaitReady(uint64_t id, const std::string& name) {
  using namespace std::chrono;
  constexpr auto kReadyWait = seconds(120);
  auto start = steady_clock::now(), last_progress = start;
  for (;;) {
    ContainerInfo c = engine_.inspect(name);
    if (c.ready) return c;
    if (c.status != ContainerStatus::kRunning) {
      throw Error(ErrorCategory::kPermanent,
                  name + " is " + std::string(statusName(c.status)) +
                      (c.exit_code ? " (exit code " + std::to_string(*c.exit_code) + ")" : "") +
                      " and never said READY=1 (see `ferry logs " + name + "`)");
    }
    auto now = steady_clock::now();
    if (now - start > kReadyWait) {
      throw Error(ErrorCategory::kRetryable,
                  name + " runs but has not said READY=1 to $NOTIFY_SOCKET in " +
                      std::to_string(duration_cast<seconds>(kReadyWait).count()) +
                      " s; it is left running (`ferry ps` shows when it is ready)");
    }
    if (now - last_progress > seconds(2)) {
      last_progress = now;
      std::string msg = "waiting for " + name + " to say READY=1" +
                        (c.notify_status.empty() ? "" : " (status: " + c.notify_status + ")");
      post_(id, [msg](proto::Message::Builder b) {
        auto p = b.initProgress();
        p.setPhase("start");
        p.setMessage(msg);
      });
    }
    // Each look runs `runc state`: a few a second is plenty.
    std::this_thread::sleep_for(milliseconds(200));
  }
}

// Host secrets: values in, names (never values) out.
proto::Fill Commands::secretCommand(proto::Message::Secret::Reader s) {
  std::string name = text(s.getName());
  switch (s.getOp()) {
    case proto::Message::Secret::Op::CREATE: {
      auto v = s.getValue();
      engine_.putSecret(name, std::string(reinterpret_cast<const char*>(v.begin()), v.size()),
                            s.getReplace());
      agentLog().info("{}: secret {} stored ({} bytes)", opts_.name, name, v.size());
      return okReply();
    }
    case proto::Message::Secret::Op::REMOVE: {
      engine_.removeSecret(name);
      agentLog().info("{}: secret {} removed", opts_.name, name);
      return okReply();
    }
    case proto::Message::Secret::Op::LIST: {
      std::vector<SecretInfo> all = engine_.listSecrets();
      auto users = engine_.secretUsers();
      return [all, users](proto::Message::Builder r) {
        auto l = r.initSecrets(static_cast<unsigned>(all.size()));
        for (size_t i = 0; i < all.size(); ++i) {
          auto e = l[static_cast<unsigned>(i)];
          e.setName(all[i].name);
          e.setBytes(all[i].bytes);
          e.setCreatedUnix(all[i].created_unix);
          auto it = users.find(all[i].name);
          size_t n = it == users.end() ? 0 : it->second.size();
          auto u = e.initUsedBy(static_cast<unsigned>(n));
          for (size_t k = 0; k < n; ++k) u.set(static_cast<unsigned>(k), it->second[k]);
        }
      };
    }
  }
  throw Error(ErrorCategory::kInvalidInput, "unknown secret operation");
}


Handled Commands::handle(uint64_t id, proto::Message::Reader m) {
  switch (m.which()) {
    case proto::Message::START_CONTAINER: {
      ContainerSpec spec = specFromRunArgs(proto::runArgsFrom(m.getStartContainer()));
      return {.work = [this, id, spec] {
        ContainerInfo c = engine_.run(spec);
        if (spec.sdnotify == "container") c = awaitReady(id, spec.name);
        return containerReply(c);
      }};
    }
    case proto::Message::STOP_CONTAINER: {
      std::string name = text(m.getStopContainer());
      return {.work = [this, name] { return containerReply(engine_.stop(name)); }};
    }
    case proto::Message::REMOVE_CONTAINER: {
      std::string name = text(m.getRemoveContainer());
      return {.work = [this, name]() -> proto::Fill {
        busy_.awaitIdle(name, opts_.busy_wait);
        engine_.remove(name, /*force=*/false);
        return okReply();
      }};
    }
    case proto::Message::COMMIT_SOURCE:
      return {.work = [this, name = text(m.getCommitSource())] { return commitSource(name); }};
    case proto::Message::ROLLBACK_SOURCE:
      return {.work = [this, name = text(m.getRollbackSource())] { return rollbackSource(name); }};
    case proto::Message::DISCARD_TARGET: {
      auto d = m.getDiscardTarget();
      std::string name = text(d.getContainer());
      std::string origin = ":migration " + std::to_string(d.getMigration());
      return {.work = [this, name, origin] { return discardTarget(name, origin); }};
    }
    case proto::Message::SEND_IMAGE:
      return sendImage(m.getSendImage());
    case proto::Message::SECRET:
      return {.reply = secretCommand(m.getSecret())};
    case proto::Message::INSPECT_CONTAINER:
      return {.reply = containerReply(engine_.inspect(text(m.getInspectContainer())))};
    case proto::Message::READ_LOGS_FROM: {
      auto q = m.getReadLogsFrom();
      std::string name = text(q.getContainer());
      LogPosition from{q.getOffset(), q.getMark()};
      // Up to a MiB read (the whole log, when a cut one is searched for
      // where the reader was): a worker's, not the loop's.
      return {.work = [this, name, from] { return logChunkReply(engine_.logsFrom(name, from)); }};
    }
    case proto::Message::PREPARE_RECEIVE:
      return prepareReceive(m.getPrepareReceive());
    case proto::Message::SEND_CHECKPOINT:
      return sendCheckpointCommand(id, m.getSendCheckpoint());
    case proto::Message::PREPARE_IMPORT:
      return prepareImport(m.getPrepareImport());
    case proto::Message::EXPORT_CHECKPOINT:
      return exportCheckpointCommand(id, m.getExportCheckpoint());
    default:
      throw Error(ErrorCategory::kInvalidInput, "not a command an agent carries out");
  }
}

// The target runs it: delete the copy frozen here -- only a frozen one,
// never a copy that runs (someone resumed it: keep it).
proto::Fill Commands::commitSource(const std::string& name) {
  busy_.awaitIdle(name, opts_.busy_wait);
  auto c = findContainer(engine_, name);
  if (!c) return okReply();  // already gone: commit is idempotent
  if (c->status != ContainerStatus::kPaused) {
    throw Error(ErrorCategory::kPermanent, name + " is " + std::string(statusName(c->status)) +
                                               " on " + opts_.name +
                                               ", not frozen by the migration; it is kept");
  }
  if (network_) network_->routeToNewHost(name);
  removeWithVolumes(engine_, *c);
  return okReply();
}

proto::Fill Commands::rollbackSource(const std::string& name) {
  busy_.awaitIdle(name, opts_.busy_wait);
  auto c = findContainer(engine_, name);
  if (!c) {
    throw Error(ErrorCategory::kPermanent, name + " is not on " + opts_.name + ": " +
                                               proto::NO_FROZEN_COPY.get().cStr());
  }
  if (network_) network_->forgetMove(name);
  if (c->status == ContainerStatus::kPaused) {
    engine_.resume(name);
  } else if (c->status != ContainerStatus::kRunning) {
    // Its frozen copy is gone (its machine restarted, say): nothing runs
    // again from the freeze, which the coordinator must know.
    throw Error(ErrorCategory::kPermanent, name + " is " + std::string(statusName(c->status)) +
                                               " on " + opts_.name + ": its copy did not survive, " +
                                               proto::NO_FROZEN_COPY.get().cStr());
  }
  return okReply();
}

// Removes only what this migration restored here: a container of the same
// name that came from anywhere else is none of its business.
proto::Fill Commands::discardTarget(const std::string& name, const std::string& origin) {
  busy_.awaitIdle(name, opts_.busy_wait);
  auto c = findContainer(engine_, name);
  const std::string& from = c ? c->record.restored_from : std::string();
  if (c && from.size() >= origin.size() &&
      from.compare(from.size() - origin.size(), origin.size(), origin) == 0) {
    removeWithVolumes(engine_, *c);
    agentLog().info("[{}] discarded the copy{} restored here", name, origin);
  }
  return okReply();
}

Handled Commands::sendImage(proto::Message::SendImage::Reader si) {
  std::string image = text(si.getImage()), endpoint = text(si.getEndpoint());
  std::string token = bytes(si.getToken()), key = text(si.getServerKey());
  std::string target = si.hasTarget() && si.getTarget().size() > 0 ? text(si.getTarget()) : "TARGET";
  requireTcpEndpoint(endpoint);
  return {.work = [this, image, endpoint, token, key, target]() -> proto::Fill {
      ImageRecord rec = engine_.resolveImage(image);
      auto file = engine_.imageSourceFile(rec.id);
      if (!file) {
        throw Error(ErrorCategory::kInvalidInput,
                    "image " + image + " was imported on " + opts_.name +
                        " from a directory, so it cannot be sent; import it on the target "
                        "first (ferry image import " +
                        image + " FILE --host " + target + ")");
      }
      proto::StreamOptions so = streamOptions();
      if (opts_.keys) so.peer_public_key = key;
      proto::ChunkSender tx(ctx_, endpoint, token, "image " + image, so);
      UniqueFd fd(::open(file->c_str(), O_RDONLY | O_CLOEXEC));
      if (!fd) throwErrno("opening " + file->string());
      FdSource in(fd.get(), "reading " + file->string());
      copyAll(in, tx);
      tx.finish();
      return okReply();
  }};
}

// The target side of a migration: bind a stream for this one token, answer
// with where to send it, then restore what arrives (on a worker).
Handled Commands::prepareReceive(proto::Message::PrepareReceive::Reader r) {
  std::string token = bytes(r.getToken());
  std::string container = text(r.getContainer());
  uint64_t migration = r.getMigration();
  validateName(container, "container name");
  std::set<std::string> ignore;
  for (auto i : r.getIgnore()) ignore.insert(text(i));
  std::shared_ptr<proto::StreamKeys::Vouch> vouch;
  proto::StreamOptions so = receiverOptions(text(r.getSenderKey()), vouch);
  auto rx = std::make_shared<proto::ChunkReceiver>(ctx_, "tcp://" + opts_.data_address + ":0",
                                                   token, opts_.name, so);
  std::string endpoint = rx->endpoint();
  // The restore's outcome travels back to the sender on the stream itself;
  // this worker only logs it.
  busy_.markBusy(container);
  // Held by the work: the mark ends when it has run, or is dropped unrun.
  auto idle = std::make_shared<BusyContainers::Release>(&busy_, container);
  return {.reply = ticketReply(endpoint),
          .background = [this, rx, container, migration, ignore, idle, vouch] {
    try {
      RestoreOptions ro;
      ro.origin = "migration " + std::to_string(migration);
      ro.ignore = ignore;
      // Only the container this stream was prepared for: a bundle of
      // another is refused once its metadata arrives, before a restore.
      ro.expect_container = container;
      receiveCheckpoint(engine_, *rx, ro);
      agentLog().info("[{}] received and restored on {}", container, opts_.name);
    } catch (const std::exception& e) {
      agentLog().warn("[{}] receiving on {} failed: {}", container, opts_.name, e.what());
    }
  }};
}

// The source side: freeze, stream, await the target's verdict (on a worker).
// Progress goes to the coordinator as interim replies to this command.
Handled Commands::sendCheckpointCommand(uint64_t id, proto::Message::SendCheckpoint::Reader r) {
  std::string container = text(r.getContainer()), endpoint = text(r.getEndpoint());
  std::string token = bytes(r.getToken()), server_key = text(r.getServerKey());
  int precopy = r.getPrecopy();
  bool tcp_close = r.getTcpClose();
  bool postcopy = r.getPostcopy();
  bool nftables_lock = r.getNftablesLock();
  int compress = r.getCompress();
  requireTcpEndpoint(endpoint);
  if (postcopy && !engine_.hostInfo().postcopy_unavailable.empty()) {
    throw Error(ErrorCategory::kIncompatible, "post-copy cannot run on " + opts_.name + ": " +
                                                  engine_.hostInfo().postcopy_unavailable);
  }
  busy_.claimForTransfer(container);
  auto idle = std::make_shared<BusyContainers::Release>(&busy_, container);  // as in prepareReceive
  return {.work = [this, id, container, endpoint, token, server_key, precopy, tcp_close, postcopy,
                   nftables_lock, compress, idle]() -> proto::Fill {
    TransferOptions t = transferOptions(id, container, server_key, "restore");
    t.precopy = precopy;
    t.tcp_close = tcp_close;
    t.postcopy = postcopy;
    t.nftables_lock = nftables_lock;
    if (compress >= 0) t.level = std::min(compress, 19);  // the coordinator checked -1..19
    SendResult s = sendCheckpoint(engine_, container, ctx_, endpoint, token, t);
    if (network_) network_->restoredOn(container, endpointHost(endpoint));
    return [s](proto::Message::Builder m) {
      auto f = m.initMigration();
      f.setBytesRaw(s.checkpoint.memory_bytes + s.checkpoint.rootfs_bytes +
                    s.checkpoint.volume_bytes);
      f.setBytesWire(s.wire_bytes);
      f.setFinalBytesWire(s.final_wire_bytes);
      f.setBytesReferenced(s.ref_bytes);
      f.setDowntimeMs(static_cast<uint64_t>(s.downtime_ms));
      f.setTotalMs(static_cast<uint64_t>(s.total_ms));
      f.setCompression(s.compression);
      f.setLinkBytesPerS(static_cast<uint64_t>(s.link_bytes_per_s));
      f.setPrecopy(s.precopy);
      if (s.postcopy) {
        f.setPostcopyMs(static_cast<uint64_t>(s.postcopy->ms));
        f.setBytesOnDemand(s.postcopy->on_demand_bytes);
        f.setBytesPushed(s.postcopy->pushed_bytes);
        f.setBytesHeld(s.postcopy->held_bytes);
      }
      auto rounds = f.initRounds(static_cast<unsigned>(s.rounds.size()));
      for (size_t i = 0; i < s.rounds.size(); ++i) {
        const PrecopyFigures& pf = s.rounds[i];
        rounds[i].setRound(static_cast<uint32_t>(pf.round));
        rounds[i].setReadBytes(pf.read_bytes);
        rounds[i].setSentBytes(pf.sent_bytes);
        rounds[i].setWireBytes(pf.wire_bytes);
        rounds[i].setMs(static_cast<uint64_t>(pf.ms));
      }
      auto warnings = f.initWarnings(static_cast<unsigned>(s.warnings.size()));
      for (size_t i = 0; i < s.warnings.size(); ++i) warnings.set(i, s.warnings[i]);
      // Pre-copy ran while the container did; the rest is the downtime.
      std::vector<std::pair<const char*, int64_t>> phases;
      if (!s.rounds.empty()) phases.emplace_back("precopy", s.precopy_ms);
      phases.emplace_back("dump", s.checkpoint.dump_ms);
      phases.emplace_back("transfer", std::max<int64_t>(0, s.stream_ms - s.checkpoint.dump_ms));
      phases.emplace_back("restore", s.restore_ms);
      if (s.postcopy) phases.emplace_back("postcopy", s.postcopy->ms);
      auto ph = f.initPhaseMs(static_cast<unsigned>(phases.size()));
      for (size_t i = 0; i < phases.size(); ++i) {
        ph[i].setPhase(phases[i].first);
        ph[i].setMs(static_cast<uint64_t>(phases[i].second));
      }
    };
  }};
}

// A file from the CLI: an image to import, or a checkpoint bundle to
// restore. Binds a stream for the coordinator's token and answers with a
// ticket; the outcome goes back to the CLI on the stream.
Handled Commands::prepareImport(proto::Message::ImportFile::Reader r) {
  std::string token = bytes(r.getToken());
  bool image = r.getKind() == proto::Message::ImportFile::Kind::IMAGE;
  std::string name = text(r.getName());
  if (image || !name.empty()) validateName(name, image ? "image name" : "container name");
  RestoreOptions ro;
  ro.name = name;
  ro.replace_volumes = r.getReplaceVolumes();
  for (auto i : r.getIgnore()) ro.ignore.insert(text(i));
  std::shared_ptr<proto::StreamKeys::Vouch> vouch;
  proto::StreamOptions so = receiverOptions(text(r.getSenderKey()), vouch);
  auto rx = std::make_shared<proto::ChunkReceiver>(ctx_, "tcp://" + opts_.data_address + ":0",
                                                   token, opts_.name, so);
  std::string endpoint = rx->endpoint();
  return {.reply = ticketReply(endpoint), .background = [this, rx, image, name, ro, vouch] {
    try {
      if (image) {
        TempDir stage(engine_.config().root / "staging",
                      "import-" + std::to_string(::getpid()) + "-");
        fs::path file = stage.path() / "image";
        {
          UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
          if (!fd) throwErrno("creating " + file.string());
          FdSink out(fd.get(), "writing " + file.string());
          // The file may not fill the disk either; what it unpacks to is
          // bounded by the import itself (ImageStore::import).
          BundleLimits limits = boundedByFreeDisk({}, stage.path(), opts_.name);
          copyAll(*rx, out, [&](uint64_t n) { checkExpansion(limits, n, n, "image"); });
          if (::fsync(fd.get()) != 0) throwErrno("writing " + file.string());
        }
        ImageRecord rec = engine_.importImage(name, file);
        agentLog().info("image {} imported on {} ({})", name, opts_.name, rec.id.substr(0, 12));
      } else {
        RestoreResult res = engine_.importCheckpoint(*rx, ro);
        agentLog().info("[{}] restored from an imported bundle on {}", res.container.name(),
                         opts_.name);
      }
      rx->accept();
    } catch (const Error& e) {
      rx->reject(e);
      agentLog().warn("import on {} failed: {}", opts_.name, e.what());
    } catch (const std::exception& e) {
      rx->reject(Error(ErrorCategory::kPermanent, e.what()));
    }
  }};
}

// A checkpoint to the CLI's file: frozen while it is written, then resumed
// (--leave-running) or removed once the CLI has the whole file safely; any
// failure resumes it.
Handled Commands::exportCheckpointCommand(uint64_t id, proto::Message::ExportTo::Reader r) {
  std::string container = text(r.getContainer()), endpoint = text(r.getEndpoint());
  std::string token = bytes(r.getToken()), server_key = text(r.getServerKey());
  bool leave_running = r.getLeaveRunning();
  int level = r.getLevel();
  requireTcpEndpoint(endpoint);
  busy_.claimForTransfer(container);
  auto idle = std::make_shared<BusyContainers::Release>(&busy_, container);  // as in prepareReceive
  return {.work =
        [this, id, container, endpoint, token, server_key, leave_running, level,
         idle]() -> proto::Fill {
          TransferOptions t = transferOptions(id, container, server_key, "write");
          t.level = level;
          t.resume_on_unknown_verdict = true;  // a file, not a second running copy
          SendResult s = sendCheckpoint(engine_, container, ctx_, endpoint, token, t);
          try {
            if (leave_running) {
              engine_.resume(container);
            } else {
              engine_.remove(container, true);
            }
          } catch (Error& e) {
            bestEffort("resuming after a failed export", [&] {
              if (engine_.inspect(container).status == ContainerStatus::kPaused)
                engine_.resume(container);
            });
            e.addContext("the checkpoint of " + container + " was written, but " +
                         (leave_running ? "resuming" : "removing") + " it on " + opts_.name +
                         " failed (it runs on as before)");
            throw;
          }
          return [s](proto::Message::Builder m) {
            auto f = m.initMigration();
            f.setBytesRaw(s.checkpoint.memory_bytes + s.checkpoint.rootfs_bytes +
                          s.checkpoint.volume_bytes);
            f.setBytesWire(s.wire_bytes);
            f.setDowntimeMs(static_cast<uint64_t>(s.downtime_ms));
            f.setTotalMs(static_cast<uint64_t>(s.total_ms));
          };
        }};
}


}  // namespace ferry::agent
