#include "agent/agent.h"

#include <sys/statvfs.h>

#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <random>

#include "agent/transfer.h"
#include "common/log.h"
#include "engine/spec/run_args.h"
#include "protocol/framing.h"
#include "protocol/convert/host_info_proto.h"
#include "protocol/convert/run_args_proto.h"
#include "protocol/capnp_text.h"

namespace ferry::agent {

namespace {

using proto::text;
std::string bytes(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

// Host memory from /proc/meminfo, CPU from the 1-minute load average over
// the core count: what a planner needs to compare hosts.
void fillLoad(proto::Load::Builder b, uint32_t cpus, uint64_t capacity) {
  std::ifstream mem("/proc/meminfo");
  std::string key;
  uint64_t value = 0, total = 0, available = 0;
  std::string unit;
  while (mem >> key >> value >> unit) {
    if (key == "MemTotal:") total = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  double load = 0;
  std::ifstream("/proc/loadavg") >> load;
  b.setCpuPercent(static_cast<float>(cpus ? std::min(100.0, 100.0 * load / cpus) : 0));
  b.setMemoryTotalBytes(total);
  b.setMemoryUsedBytes(total > available ? total - available : 0);
  b.setMemoryCapacityBytes(capacity ? capacity : total);
}

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
}

}  // namespace

Agent::Agent(AgentOptions opts, AgentEngine& engine, zmq::context_t& ctx)
    : opts_(std::move(opts)), engine_(engine), ctx_(ctx), sock_(ctx, zmq::socket_type::dealer) {
  proto::applySocketLimits(sock_);
  if (opts_.keys) proto::makeCurveClient(sock_, *opts_.keys, opts_.coordinator_key);
  sock_.set(zmq::sockopt::routing_id, opts_.name);  // the coordinator addresses hosts by name
  sock_.connect(opts_.coordinator);
}

Agent::~Agent() {
  for (auto& w : workers_) {
    if (w.thread.joinable()) w.thread.join();
  }
}

void Agent::hello() {
  const HostInfo& info = engine_.hostInfo();
  hello_id_ = next_id_++;
  sock_.send(proto::buildMessage(hello_id_,
                                 [&](proto::Message::Builder m) {
                                   auto h = m.initHello();
                                   h.setName(opts_.name);
                                   h.setDataEndpoint("tcp://" + opts_.data_address);
                                   proto::fillHostInfo(h.initInfo(), info);
                                   if (opts_.keys) h.setPublicKey(opts_.keys->public_key);
                                 }),
             zmq::send_flags::dontwait);
}

void Agent::heartbeat() {
  std::vector<ContainerInfo> all = engine_.list();
  std::vector<ImageRecord> images = engine_.listImages();
  std::vector<SecretInfo> secrets = engine_.listSecrets();
  uint32_t cpus = engine_.hostInfo().cpus;
  sock_.send(proto::buildMessage(next_id_++,
                                 [&](proto::Message::Builder m) {
                                   auto hb = m.initHeartbeat();
                                   hb.setName(opts_.name);
                                   fillLoad(hb.initLoad(), cpus, opts_.memory_capacity);
                                   auto list = hb.initContainers(static_cast<unsigned>(all.size()));
                                   for (size_t i = 0; i < all.size(); ++i) {
                                     auto c = list[static_cast<unsigned>(i)];
                                     fillContainer(c, all[i], opts_.name);
                                     if (all[i].status == ContainerStatus::kRunning ||
                                         all[i].status == ContainerStatus::kPaused) {
                                       c.setMemoryBytes(engine_.memoryBytes(all[i].name()));
                                       c.setCpuUsec(engine_.cpuUsec(all[i].name()));
                                     }
                                   }
                                   size_t n = 0;
                                   for (const auto& im : images) n += im.names.size();
                                   auto refs = hb.initImages(static_cast<unsigned>(n));
                                   unsigned k = 0;
                                   for (const auto& im : images) {
                                     for (const auto& name : im.names) {
                                       refs[k].setName(name);
                                       refs[k++].setId(im.id);
                                     }
                                   }
                                   auto names = hb.initSecrets(static_cast<unsigned>(secrets.size()));
                                   for (size_t i = 0; i < secrets.size(); ++i) {
                                     names.set(static_cast<unsigned>(i), secrets[i].name);
                                   }
                                 }),
             zmq::send_flags::dontwait);
}

void Agent::reply(uint64_t id, const proto::Fill& fill) {
  sock_.send(proto::buildMessage(id, fill), zmq::send_flags::dontwait);
}

void Agent::replyError(uint64_t id, const Error& e) {
  reply(id, [&](proto::Message::Builder m) { proto::fillErrorInfo(m.initError(), e, opts_.name); });
}

void Agent::post(uint64_t id, proto::Fill fill) {
  std::lock_guard<std::mutex> g(mu_);
  done_.emplace_back(id, std::move(fill));
}

void Agent::spawnQuiet(std::function<void()> work) {
  auto finished = std::make_shared<std::atomic<bool>>(false);
  std::thread t([work = std::move(work), finished] {
    try {
      work();
    } catch (const std::exception& e) {
      engineLog().warn("agent worker failed: {}", e.what());
    }
    *finished = true;
  });
  workers_.push_back({std::move(t), finished});
}

void Agent::spawn(uint64_t id, std::function<proto::Fill()> work) {
  spawnQuiet([this, id, work = std::move(work)] {
    proto::Fill result;
    try {
      result = work();
    } catch (const std::exception& e) {
      const auto* fe = dynamic_cast<const Error*>(&e);
      Error copy = fe ? *fe : Error(ErrorCategory::kPermanent, e.what());
      std::string host = opts_.name;
      result = [copy, host](proto::Message::Builder m) {
        proto::fillErrorInfo(m.initError(), copy, host);
      };
    }
    post(id, std::move(result));
  });
}

void Agent::drainWorkerReplies() {
  std::deque<std::pair<uint64_t, proto::Fill>> ready;
  {
    std::lock_guard<std::mutex> g(mu_);
    ready.swap(done_);
  }
  for (auto& [id, fill] : ready) reply(id, fill);
}

void Agent::reapWorkers() {
  std::erase_if(workers_, [](Worker& w) {
    if (!*w.finished) return false;
    w.thread.join();
    return true;
  });
}

void Agent::markBusy(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  ++busy_[container];
}

void Agent::claimForTransfer(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  if (busy_.count(container)) {
    throw Error(ErrorCategory::kRetryable, "a transfer of " + container +
                                               " is already in progress on " + opts_.name +
                                               "; try again when it has ended");
  }
  ++busy_[container];
}

void Agent::markIdle(const std::string& container) {
  std::lock_guard<std::mutex> g(mu_);
  if (--busy_[container] <= 0) busy_.erase(container);
  idle_cv_.notify_all();
}

void Agent::awaitIdle(const std::string& container) {
  std::unique_lock<std::mutex> l(mu_);
  if (!idle_cv_.wait_for(l, opts_.busy_wait, [&] { return busy_.count(container) == 0; })) {
    throw Error(ErrorCategory::kRetryable,
                "a transfer of " + container + " is still in progress on " + opts_.name +
                    " after " + std::to_string(opts_.busy_wait.count() / 1000) +
                    " s; try again later");
  }
}

proto::StreamOptions Agent::streamOptions() const {
  proto::StreamOptions so;
  so.timeout = opts_.stream_timeout;
  if (opts_.keys) so.own_keys = opts_.keys;
  return so;
}

TransferOptions Agent::transferOptions(uint64_t id, const std::string& container,
                                       const std::string& server_key,
                                       const std::string& restore_phase) {
  TransferOptions t;
  t.stream = streamOptions();
  if (opts_.keys) t.stream.peer_public_key = server_key;
  // What the stream will roughly carry: the container's memory (CRIU's
  // pages dominate); for the ETA only.
  uint64_t estimate = engine_.memoryBytes(container);
  t.progress = [this, id, estimate, restore_phase](const char* phase, uint64_t sent,
                                                   const std::string& note) {
    std::string ph = std::string(phase) == "restore" ? restore_phase : phase;
    // Pre-copy rounds each send up to the estimate; the total is per round.
    post(id, [ph, sent, estimate, note](proto::Message::Builder m) {
      auto p = m.initProgress();
      p.setPhase(ph);
      p.setBytesDone(sent);
      p.setBytesTotal(ph != "precopy" && sent < estimate ? estimate : 0);
      p.setMessage(note);
    });
  };
  return t;
}

proto::Fill Agent::containerReply(const ContainerInfo& c) const {
  std::string host = opts_.name;
  return [c, host](proto::Message::Builder r) { fillContainer(r.initContainer(), c, host); };
}

namespace {
proto::Fill okReply() {
  return [](proto::Message::Builder r) { r.setOk(); };
}
std::optional<ContainerInfo> findContainer(AgentEngine& engine, const std::string& name) {
  for (auto& c : engine.list()) {
    if (c.name() == name) return c;
  }
  return std::nullopt;
}
// A migrated container's named volumes moved with it: where its copy is
// deleted (the source after a commit, the target after a rollback) they go
// too, unless another container here still mounts them.
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
}  // namespace

// --sdnotify=container: `run` answers once the container said READY=1 (as
// Podman's), with progress meanwhile so the caller keeps waiting.
ContainerInfo Agent::awaitReady(uint64_t id, const std::string& name) {
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
      post(id, [msg](proto::Message::Builder b) {
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
proto::Fill Agent::secretCommand(proto::Message::Secret::Reader s) {
  std::string name = text(s.getName());
  switch (s.getOp()) {
    case proto::Message::Secret::Op::CREATE: {
      auto v = s.getValue();
      engine_.putSecret(name, std::string(reinterpret_cast<const char*>(v.begin()), v.size()),
                            s.getReplace());
      engineLog().info("{}: secret {} stored ({} bytes)", opts_.name, name, v.size());
      return okReply();
    }
    case proto::Message::Secret::Op::REMOVE: {
      engine_.removeSecret(name);
      engineLog().info("{}: secret {} removed", opts_.name, name);
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

void Agent::serve(std::unique_ptr<proto::Decoded> frame) {
  auto m = frame->root<proto::Message>();
  uint64_t id = proto::guard([&] { return m.getId(); });
  try {
    proto::guard([&] {
      switch (m.which()) {
        case proto::Message::OK:
          // The coordinator's answer to a hello or heartbeat.
          if (id == hello_id_) engineLog().info("{}: registered with the coordinator", opts_.name);
          return;
        case proto::Message::PROGRESS:
          if (drain_requests_.count(id)) {
            engineLog().info("{}: drain: {}", opts_.name, text(m.getProgress().getMessage()));
          }
          return;
        case proto::Message::PLACEMENT: {
          if (!drain_requests_.count(id)) return;
          drain_requests_.erase(id);
          size_t moved = 0, total = 0;
          for (auto mv : m.getPlacement().getMoves()) {
            ++total;
            moved += text(mv.getOutcome()) == "moved";
          }
          engineLog().info("{}: drained: {} of {} container(s) moved, {} unplaced", opts_.name,
                           moved, total, m.getPlacement().getUnplaced().size());
          if (id == drain_request_) drain_answered_ = true;
          return;
        }
        case proto::Message::ERROR:
          engineLog().warn("{}: the coordinator refused a message: {}", opts_.name,
                           proto::errorFrom(m.getError()).what());
          if (id == drain_request_ && drain_request_ != 0) drain_answered_ = true;
          return;
        case proto::Message::START_CONTAINER: {
          ContainerSpec spec = specFromRunArgs(proto::runArgsFrom(m.getStartContainer()));
          return spawn(id, [this, id, spec] {
            ContainerInfo c = engine_.run(spec);
            if (spec.sdnotify == "container") c = awaitReady(id, spec.name);
            return containerReply(c);
          });
        }
        case proto::Message::STOP_CONTAINER: {
          std::string name = text(m.getStopContainer());
          return spawn(id, [this, name] { return containerReply(engine_.stop(name)); });
        }
        case proto::Message::REMOVE_CONTAINER: {
          std::string name = text(m.getRemoveContainer());
          return spawn(id, [this, name]() -> proto::Fill {
            awaitIdle(name);
            engine_.remove(name, /*force=*/false);
            return okReply();
          });
        }
        case proto::Message::COMMIT_SOURCE: {
          // The target runs it: delete the copy frozen here -- only a frozen
          // one, never a copy that runs (someone resumed it: keep it).
          std::string name = text(m.getCommitSource());
          return spawn(id, [this, name]() -> proto::Fill {
            awaitIdle(name);
            auto c = findContainer(engine_, name);
            if (!c) return okReply();  // already gone: commit is idempotent
            if (c->status != ContainerStatus::kPaused) {
              throw Error(ErrorCategory::kPermanent,
                          name + " is " + std::string(statusName(c->status)) + " on " + opts_.name +
                              ", not frozen by the migration; it is kept");
            }
            removeWithVolumes(engine_, *c);
            return okReply();
          });
        }
        case proto::Message::ROLLBACK_SOURCE: {
          std::string name = text(m.getRollbackSource());
          return spawn(id, [this, name]() -> proto::Fill {
            awaitIdle(name);
            auto c = findContainer(engine_, name);
            if (!c)
              throw Error(ErrorCategory::kPermanent,
                          name + " is not on " + opts_.name + ": nothing to resume");
            if (c->status == ContainerStatus::kPaused) engine_.resume(name);
            return okReply();
          });
        }
        case proto::Message::DISCARD_TARGET: {
          // Removes only what this migration restored here: a container of
          // the same name that came from anywhere else is none of its business.
          auto d = m.getDiscardTarget();
          std::string name = text(d.getContainer());
          std::string origin = ":migration " + std::to_string(d.getMigration());
          return spawn(id, [this, name, origin]() -> proto::Fill {
            awaitIdle(name);
            auto c = findContainer(engine_, name);
            const std::string& from = c ? c->record.restored_from : std::string();
            if (c && from.size() >= origin.size() &&
                from.compare(from.size() - origin.size(), origin.size(), origin) == 0) {
              removeWithVolumes(engine_, *c);
              engineLog().info("[{}] discarded the copy{} restored here", name, origin);
            }
            return okReply();
          });
        }
        case proto::Message::SEND_IMAGE: {
          auto si = m.getSendImage();
          std::string image = text(si.getImage()), endpoint = text(si.getEndpoint());
          std::string token = bytes(si.getToken()), key = text(si.getServerKey());
          return spawn(id, [this, image, endpoint, token, key]() -> proto::Fill {
            ImageRecord rec = engine_.resolveImage(image);
            auto file = engine_.imageSourceFile(rec.id);
            if (!file) {
              throw Error(ErrorCategory::kInvalidInput,
                          "image " + image + " was imported on " + opts_.name +
                              " from a directory, so it cannot be sent; import it on the target "
                              "first (ferry image import " +
                              image + " FILE --host TARGET)");
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
          });
        }
        case proto::Message::SECRET:
          return reply(id, secretCommand(m.getSecret()));
        case proto::Message::INSPECT_CONTAINER:
          return reply(id, containerReply(engine_.inspect(text(m.getInspectContainer()))));
        case proto::Message::READ_LOGS: {
          std::vector<LogLine> lines = engine_.logs(text(m.getReadLogs()));
          return reply(id, [&](proto::Message::Builder r) {
            auto l = r.initLogs(static_cast<unsigned>(lines.size()));
            for (size_t i = 0; i < lines.size(); ++i)
              l.set(static_cast<unsigned>(i), lines[i].text);
          });
        }
        case proto::Message::PREPARE_RECEIVE:
          return prepareReceive(id, m.getPrepareReceive());
        case proto::Message::SEND_CHECKPOINT:
          return sendCheckpointCommand(id, m.getSendCheckpoint());
        case proto::Message::PREPARE_IMPORT:
          return prepareImport(id, m.getPrepareImport());
        case proto::Message::EXPORT_CHECKPOINT:
          return exportCheckpointCommand(id, m.getExportCheckpoint());
        default:
          throw Error(ErrorCategory::kInvalidInput, "not a command an agent carries out");
      }
    });
  } catch (const Error& e) {
    replyError(id, e);
  } catch (const std::exception& e) {
    replyError(id, Error(ErrorCategory::kPermanent, e.what()));
  }
}

// The target side of a migration: bind a stream for this one token, answer
// with where to send it, then restore what arrives (on a worker).
void Agent::prepareReceive(uint64_t id, proto::Message::PrepareReceive::Reader r) {
  std::string token = bytes(r.getToken());
  std::string container = text(r.getContainer());
  uint64_t migration = r.getMigration();
  validateName(container, "container name");
  std::set<std::string> ignore;
  for (auto i : r.getIgnore()) ignore.insert(text(i));
  auto rx = std::make_shared<proto::ChunkReceiver>(ctx_, "tcp://" + opts_.data_address + ":0",
                                                   token, opts_.name, streamOptions());
  std::string endpoint = rx->endpoint();
  reply(id, [&](proto::Message::Builder m) {
    auto t = m.initStreamTicket();
    t.setEndpoint(endpoint);
    if (opts_.keys) t.setServerKey(opts_.keys->public_key);
  });
  // The restore's outcome travels back to the sender on the stream itself;
  // this worker only logs it.
  markBusy(container);
  spawnQuiet([this, rx, container, migration, ignore] {
    try {
      RestoreOptions ro;
      ro.origin = "migration " + std::to_string(migration);
      ro.ignore = ignore;
      receiveCheckpoint(engine_, *rx, ro);
      engineLog().info("[{}] received and restored on {}", container, opts_.name);
    } catch (const std::exception& e) {
      engineLog().warn("[{}] receiving on {} failed: {}", container, opts_.name, e.what());
    }
    markIdle(container);
  });
}

// The source side: freeze, stream, await the target's verdict (on a worker).
// Progress goes to the coordinator as interim replies to this command.
void Agent::sendCheckpointCommand(uint64_t id, proto::Message::SendCheckpoint::Reader r) {
  std::string container = text(r.getContainer()), endpoint = text(r.getEndpoint());
  std::string token = bytes(r.getToken()), server_key = text(r.getServerKey());
  int precopy = r.getPrecopy();
  claimForTransfer(container);
  spawn(id, [this, id, container, endpoint, token, server_key, precopy]() -> proto::Fill {
    BusyRelease idle{this, container};
    TransferOptions t = transferOptions(id, container, server_key, "restore");
    t.precopy = precopy;
    SendResult s = sendCheckpoint(engine_, container, ctx_, endpoint, token, t);
    return [s](proto::Message::Builder m) {
      auto f = m.initMigration();
      f.setBytesRaw(s.checkpoint.memory_bytes + s.checkpoint.rootfs_bytes +
                    s.checkpoint.volume_bytes);
      f.setBytesWire(s.wire_bytes);
      f.setFinalBytesWire(s.final_wire_bytes);
      f.setBytesReferenced(s.ref_bytes);
      f.setDowntimeMs(static_cast<uint64_t>(s.downtime_ms));
      f.setTotalMs(static_cast<uint64_t>(s.total_ms));
      f.setCompression("none (loopback: compressing would cost more time than it saves)");
      f.setPrecopy(s.precopy);
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
      auto ph = f.initPhaseMs(static_cast<unsigned>(phases.size()));
      for (size_t i = 0; i < phases.size(); ++i) {
        ph[i].setPhase(phases[i].first);
        ph[i].setMs(static_cast<uint64_t>(phases[i].second));
      }
    };
  });
}

// A file from the CLI: an image to import, or a checkpoint bundle to
// restore. Binds a stream for the coordinator's token and answers with a
// ticket; the outcome goes back to the CLI on the stream.
void Agent::prepareImport(uint64_t id, proto::Message::ImportFile::Reader r) {
  std::string token = bytes(r.getToken());
  bool image = r.getKind() == proto::Message::ImportFile::Kind::IMAGE;
  std::string name = text(r.getName());
  if (image || !name.empty()) validateName(name, image ? "image name" : "container name");
  RestoreOptions ro;
  ro.name = name;
  ro.replace_volumes = r.getReplaceVolumes();
  for (auto i : r.getIgnore()) ro.ignore.insert(text(i));
  auto rx = std::make_shared<proto::ChunkReceiver>(ctx_, "tcp://" + opts_.data_address + ":0",
                                                   token, opts_.name, streamOptions());
  std::string endpoint = rx->endpoint();
  reply(id, [&](proto::Message::Builder m) {
    auto t = m.initStreamTicket();
    t.setEndpoint(endpoint);
    if (opts_.keys) t.setServerKey(opts_.keys->public_key);
  });
  spawnQuiet([this, rx, image, name, ro] {
    try {
      if (image) {
        TempDir stage(engine_.config().root / "staging",
                      "import-" + std::to_string(::getpid()) + "-");
        fs::path file = stage.path() / "image";
        {
          UniqueFd fd(::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
          if (!fd) throwErrno("creating " + file.string());
          FdSink out(fd.get(), "writing " + file.string());
          copyAll(*rx, out);
          if (::fsync(fd.get()) != 0) throwErrno("writing " + file.string());
        }
        ImageRecord rec = engine_.importImage(name, file);
        engineLog().info("image {} imported on {} ({})", name, opts_.name, rec.id.substr(0, 12));
      } else {
        RestoreResult res = engine_.importCheckpoint(*rx, ro);
        engineLog().info("[{}] restored from an imported bundle on {}", res.container.name(),
                         opts_.name);
      }
      rx->accept();
    } catch (const Error& e) {
      rx->reject(e);
      engineLog().warn("import on {} failed: {}", opts_.name, e.what());
    } catch (const std::exception& e) {
      rx->reject(Error(ErrorCategory::kPermanent, e.what()));
    }
  });
}

// A checkpoint to the CLI's file: frozen while it is written, then resumed
// (--leave-running) or removed once the CLI has the whole file safely; any
// failure resumes it.
void Agent::exportCheckpointCommand(uint64_t id, proto::Message::ExportTo::Reader r) {
  std::string container = text(r.getContainer()), endpoint = text(r.getEndpoint());
  std::string token = bytes(r.getToken()), server_key = text(r.getServerKey());
  bool leave_running = r.getLeaveRunning();
  int level = r.getLevel();
  claimForTransfer(container);
  spawn(id,
        [this, id, container, endpoint, token, server_key, leave_running, level]() -> proto::Fill {
          BusyRelease idle{this, container};
          TransferOptions t = transferOptions(id, container, server_key, "write");
          t.bundle.level = level;
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
        });
}

bool Agent::drainingBeforeStop() {
  if (opts_.drain_on_stop.count() == 0 || drain_answered_) return false;
  if (drain_request_ == 0) {
    drain_request_ = next_id_++;
    drain_deadline_ = std::chrono::steady_clock::now() + opts_.drain_on_stop;
    engineLog().info("{}: stopping: asking the coordinator to drain this host (waiting up to {} s)",
                     opts_.name, opts_.drain_on_stop.count());
    requestDrain(drain_request_, "stopping");
  }
  if (std::chrono::steady_clock::now() >= drain_deadline_) {
    engineLog().warn("{}: the drain did not end within {} s; stopping anyway (what is left keeps "
                     "running here)",
                     opts_.name, opts_.drain_on_stop.count());
    return false;
  }
  return true;
}

void Agent::requestDrain(uint64_t id, const std::string& why) {
  drain_requests_.insert(id);
  engineLog().warn("{}: asking the coordinator to drain this host: {}", opts_.name, why);
  sock_.send(proto::buildMessage(id, [&](proto::Message::Builder m) { m.setDrainHost(opts_.name); }),
             zmq::send_flags::dontwait);
}

void Agent::checkDrainConditions() {
  if (opts_.drain_on_memory_pressure <= 0 && opts_.drain_on_disk_free <= 0) return;
  std::string why;
  if (opts_.drain_on_memory_pressure > 0) {
    std::ifstream psi("/proc/pressure/memory");
    std::string kind, avg10;
    if (psi >> kind >> avg10 && kind == "some" && avg10.rfind("avg10=", 0) == 0) {
      double v = std::atof(avg10.c_str() + 6);
      if (v > opts_.drain_on_memory_pressure) {
        why = "memory pressure " + std::to_string(v) + " % (PSI some avg10) is above " +
              std::to_string(opts_.drain_on_memory_pressure) + " %";
      }
    }
  }
  if (why.empty() && opts_.drain_on_disk_free > 0) {
    struct statvfs vfs;
    if (::statvfs(engine_.config().root.c_str(), &vfs) == 0 && vfs.f_blocks > 0) {
      double free_pct = 100.0 * static_cast<double>(vfs.f_bavail) / static_cast<double>(vfs.f_blocks);
      if (free_pct < opts_.drain_on_disk_free) {
        why = "the state root's file system has " + std::to_string(free_pct) +
              " % free, below " + std::to_string(opts_.drain_on_disk_free) + " %";
      }
    }
  }
  if (why.empty()) {
    condition_streak_ = 0;
    condition_drain_asked_ = false;  // cleared: a later episode may drain again
    return;
  }
  if (++condition_streak_ >= 3 && !condition_drain_asked_) {
    condition_drain_asked_ = true;
    requestDrain(next_id_++, why);
  }
}

void Agent::run(const std::atomic<bool>& stop) {
  hello();
  auto next_beat = std::chrono::steady_clock::now();
  while (!stop || drainingBeforeStop()) {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      continue;  // a signal (SIGTERM sets stop): look at the flag again
    }
    zmq::message_t frame;
    while (sock_.recv(frame, zmq::recv_flags::dontwait)) {
      try {
        serve(std::make_unique<proto::Decoded>(frame));
      } catch (const Error& e) {
        engineLog().warn("{}: dropped a malformed message from the coordinator: {}", opts_.name,
                         e.what());
      }
    }
    drainWorkerReplies();
    reapWorkers();
    if (std::chrono::steady_clock::now() >= next_beat) {
      try {
        heartbeat();
        checkDrainConditions();
      } catch (const std::exception& e) {
        engineLog().warn("{}: heartbeat failed: {}", opts_.name, e.what());
      }
      next_beat = std::chrono::steady_clock::now() + opts_.heartbeat;
    }
  }
  for (auto& w : workers_) {
    if (w.thread.joinable()) w.thread.join();
  }
  workers_.clear();
  drainWorkerReplies();
}

}  // namespace ferry::agent
