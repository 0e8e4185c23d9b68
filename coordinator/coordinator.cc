#include "coordinator/coordinator.h"

#include <random>

#include "coordinator/coordinator_util.h"
#include "compat/compat.h"
#include "compat/host_info.h"
#include "common/names.h"
#include "protocol/figures_json.h"
#include "protocol/convert/host_info_proto.h"

namespace ferry::coord {

using nlohmann::json;
using detail::hostInfoOf;
using detail::log;
using detail::text;

namespace {

std::string randomToken() {
  std::random_device rd;
  std::string t(32, '\0');
  for (auto& c : t) c = static_cast<char>(rd() & 0xff);
  return t;
}

capnp::Data::Reader dataOf(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

std::string joinNames(const std::vector<HostRow>& hosts) {
  std::string out;
  for (const auto& h : hosts) out += (out.empty() ? "" : ", ") + h.name;
  return out.empty() ? "none registered" : out;
}

void fillFigures(proto::MigrationFigures::Builder f, const MigrationRow& m) {
  json j = json::parse(m.figures_json.empty() ? "{}" : m.figures_json, nullptr, false);
  if (!j.is_object()) j = json::object();
  f.setId(static_cast<uint64_t>(m.id));
  f.setContainer(m.container);
  f.setSource(m.source);
  f.setTarget(m.target);
  f.setOutcome(isFinal(m.phase) ? std::string(phaseName(m.phase))
                                : "in progress (" + std::string(phaseName(m.phase)) + ")");
  f.setDowntimeMs(j.value("downtime_ms", uint64_t{0}));
  f.setTotalMs(j.value("total_ms", uint64_t{0}));
  f.setBytesRaw(j.value("bytes_raw", uint64_t{0}));
  f.setBytesWire(j.value("bytes_wire", uint64_t{0}));
  f.setCompression(j.value("compression", ""));
  f.setFinalBytesWire(j.value("final_bytes_wire", uint64_t{0}));
  f.setBytesReferenced(j.value("bytes_referenced", uint64_t{0}));
  f.setPrecopy(j.value("precopy", ""));
  json rounds = j.value("precopy_rounds", json::array());
  auto rl = f.initRounds(static_cast<unsigned>(rounds.size()));
  for (size_t i = 0; i < rounds.size(); ++i) {
    auto r = rl[static_cast<unsigned>(i)];
    r.setRound(rounds[i].value("round", uint32_t{0}));
    r.setReadBytes(rounds[i].value("read_bytes", uint64_t{0}));
    r.setSentBytes(rounds[i].value("sent_bytes", uint64_t{0}));
    r.setWireBytes(rounds[i].value("wire_bytes", uint64_t{0}));
    r.setMs(rounds[i].value("ms", uint64_t{0}));
  }
  f.setStartedMs(m.created_ms);
  f.setError(m.error);
  json phases = j.value("phase_ms", json::array());
  auto ph = f.initPhaseMs(static_cast<unsigned>(phases.size()));
  for (size_t i = 0; i < phases.size(); ++i) {
    ph[static_cast<unsigned>(i)].setPhase(phases[i].value("phase", ""));
    ph[static_cast<unsigned>(i)].setMs(phases[i].value("ms", uint64_t{0}));
  }
  json warnings = j.value("warnings", json::array());
  auto w = f.initWarnings(static_cast<unsigned>(warnings.size()));
  for (size_t i = 0; i < warnings.size(); ++i)
    w.set(static_cast<unsigned>(i), warnings[i].get<std::string>());
}

int64_t msBetween(std::chrono::steady_clock::time_point a,
                  std::chrono::steady_clock::time_point b) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(b - a).count();
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions opts, zmq::context_t& ctx, Clock clock)
    : opts_(std::move(opts)),
      server_(ctx, opts_.listen, opts_.keys),
      store_((std::filesystem::create_directories(opts_.state_dir), opts_.state_dir / "state.db")),
      clock_(std::move(clock)) {
  // Command ids never repeat those of an earlier coordinator on this state:
  // a late answer to its command must not match one of ours.
  next_command_id_ = static_cast<uint64_t>(clock_()) << 16;
  for (const auto& m : store_.unfinishedMigrations()) {
    Run run;
    run.row = m;
    run.started = run.phase_started = Steady::now();
    run.figures = json::parse(m.figures_json.empty() ? "{}" : m.figures_json, nullptr, false);
    if (!run.figures.is_object()) run.figures = json::object();
    run.awaiting_hosts = true;
    log().warn(
        "migration #{} of {} ({} -> {}) was unfinished at phase {}; resolving it once the "
        "hosts are heard from",
        m.id, m.container, m.source, m.target, phaseName(m.phase));
    runs_.emplace(m.id, std::move(run));
  }
}

// --- agents ------------------------------------------------------------------

void Coordinator::heardFrom(const std::string& host) {
  connected_.insert(host);
  runCleanups(host);
}

void Coordinator::onHello(proto::Message::Hello::Reader h) {
  std::string name = text(h.getName());
  validateName(name, "host name");
  auto old = store_.host(name);
  bool known = old.has_value();
  store_.upsertHost({name, text(h.getDataEndpoint()), json(proto::hostInfoFrom(h.getInfo())).dump(),
                     true, old ? old->cordoned : false, clock_()});
  store_.addEvent(clock_(), "host", name, known ? "registered again" : "registered");
  log().info("host {} {} (data plane {})", name, known ? "registered again" : "registered",
             text(h.getDataEndpoint()));
  // A hello comes from a freshly started agent: whatever it was doing for
  // us died with its predecessor.
  failPending(name, Error(ErrorCategory::kRetryable,
                          "the agent on " + name + " restarted while carrying this out"));
  heardFrom(name);
}

void Coordinator::onHeartbeat(proto::Message::Heartbeat::Reader h) {
  std::string name = text(h.getName());
  auto host = store_.host(name);
  if (!host) return;  // not registered yet: its hello is on its way
  if (!host->up) {
    store_.addEvent(clock_(), "host", name, "up again");
    log().info("host {} is up again", name);
  }
  host->up = true;
  host->last_seen_ms = clock_();
  store_.upsertHost(*host);
  std::vector<ContainerRow> rows;
  for (auto c : h.getContainers()) {
    rows.push_back(
        {text(c.getName()), name, text(c.getImage()), text(c.getStatus()), c.getMemoryBytes()});
    noteExtras(c);
  }
  auto& held = host_secrets_[name];
  held.clear();
  for (auto s : h.getSecrets()) held.insert(text(s));
  store_.replaceContainers(name, rows);
  std::vector<ImageRow> images;
  for (auto i : h.getImages()) images.push_back({text(i.getName()), text(i.getId())});
  store_.replaceImages(name, images);
  auto l = h.getLoad();
  store_.setLoad(name, {l.getCpuPercent(), l.getMemoryUsedBytes(), l.getMemoryTotalBytes(),
                        l.getMemoryCapacityBytes()});
  heardFrom(name);
}

void Coordinator::markSilentHostsDown() {
  int64_t cutoff = clock_() - opts_.heartbeat.count() * opts_.missed_heartbeats;
  for (const auto& name : store_.markDownSilentSince(cutoff)) {
    store_.addEvent(clock_(), "host", name, "down: missed heartbeats");
    log().warn("host {} is down: no heartbeat for {} ms", name,
               opts_.heartbeat.count() * opts_.missed_heartbeats);
    connected_.erase(name);
    failPending(name, Error(ErrorCategory::kRetryable, name + " went down (missed " +
                                                           std::to_string(opts_.missed_heartbeats) +
                                                           " heartbeats)"));
  }
}

bool Coordinator::isReply(const proto::Message::Reader& m) const {
  switch (m.which()) {
    case proto::Message::OK:
    case proto::Message::ERROR:
    case proto::Message::PROGRESS:
    case proto::Message::HOSTS:
    case proto::Message::CONTAINERS:
    case proto::Message::CONTAINER:
    case proto::Message::LOGS:
    case proto::Message::MIGRATION:
    case proto::Message::HISTORY:
    case proto::Message::STREAM_TICKET:
    case proto::Message::PLACEMENT:
    case proto::Message::SECRETS:
    case proto::Message::PENDING:
      return true;
    default:
      return false;
  }
}

// An agent's answer to one of our commands. Late answers (the command
// already failed) and answers from the wrong peer are dropped, never
// answered: replying to a reply would loop.
void Coordinator::onAgentReply(const Request& r) {
  auto it = pending_.find(r.id);
  if (it == pending_.end() || it->second.host != r.peer) return;
  if (r.msg.isProgress()) {
    it->second.deadline = Steady::now() + it->second.timeout;
    if (it->second.progress) it->second.progress(r.msg.getProgress());
    return;
  }
  Pending p = std::move(it->second);
  pending_.erase(it);
  try {
    if (r.msg.isError()) return p.fail(proto::errorFrom(r.msg.getError()));
    p.ok(r.msg);
  } catch (const std::exception& e) {
    // A bug or a failing store: say so loudly; the loop goes on.
    log().error("internal: handling {}'s answer to '{}' failed: {}", p.host, p.what, e.what());
  }
}

void Coordinator::command(const std::string& host, const std::string& what, const proto::Fill& fill,
                          std::chrono::milliseconds timeout, OnReply ok, OnError fail,
                          OnProgress progress) {
  uint64_t id = next_command_id_++;
  if (!server_.sendTo(host, id, fill)) {
    Error e(ErrorCategory::kRetryable,
            host + " is not connected (is its agent running?); could not " + what);
    deferred_.push_back([fail = std::move(fail), e] { fail(e); });
    return;
  }
  pending_.emplace(id, Pending{host, what, timeout, Steady::now() + timeout, std::move(ok),
                               std::move(fail), std::move(progress)});
}

void Coordinator::failPending(const std::string& host, const Error& e) {
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.host != host) {
      ++it;
      continue;
    }
    OnError fail = std::move(it->second.fail);
    it = pending_.erase(it);
    deferred_.push_back([fail = std::move(fail), e] { fail(e); });
  }
}

void Coordinator::expirePending() {
  auto now = Steady::now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (it->second.deadline > now) {
      ++it;
      continue;
    }
    Error e(ErrorCategory::kRetryable,
            "no answer from " + it->second.host + " to '" + it->second.what + "' within " +
                std::to_string(it->second.timeout.count() / 1000) + " s");
    OnError fail = std::move(it->second.fail);
    it = pending_.erase(it);
    deferred_.push_back([fail = std::move(fail), e] { fail(e); });
  }
}

void Coordinator::sendError(const Client& c, const Error& e) {
  server_.sendTo(c.peer, c.id,
                 [&](proto::Message::Builder b) { proto::fillErrorInfo(b.initError(), e, ""); });
}

void Coordinator::forward(const Request& r, const std::string& host, const std::string& what,
                          const proto::Fill& cmd, std::chrono::milliseconds timeout,
                          std::function<void(proto::Message::Reader)> on_ok) {
  Client c{r.peer, r.id};
  command(
      host, what, cmd, timeout,
      [this, c, on_ok](proto::Message::Reader m) {
        if (on_ok) on_ok(m);
        server_.relay(c.peer, c.id, m);
      },
      [this, c](const Error& e) { sendError(c, e); },
      [this, c](proto::Progress::Reader p) {
        server_.sendTo(c.peer, c.id, [&](proto::Message::Builder b) { b.setProgress(p); });
      });
}

// --- the CLI -------------------------------------------------------------------

// What an agent's answer says of a container, ahead of its next heartbeat
// (so that `ferry run` then `ferry logs` finds it at once).
void Coordinator::noteContainer(proto::Message::Reader m) {
  if (!m.isContainer()) return;
  auto c = m.getContainer();
  store_.putContainer({text(c.getName()), text(c.getHost()), text(c.getImage()),
                       text(c.getStatus()), c.getMemoryBytes()});
  noteExtras(c);
}

void Coordinator::noteExtras(proto::Container::Reader c) {
  ContainerExtras& x = container_extras_[text(c.getName())];
  x.secrets = proto::strings(c.getSecrets());
  x.ready = c.getReady();
  x.notify_status = text(c.getNotifyStatus());
}

HostRow Coordinator::requireHost(const std::string& name, const std::string& role) {
  if (name.empty()) throw Error(ErrorCategory::kInvalidInput, "no " + role + " host given");
  auto h = store_.host(name);
  if (!h) {
    throw Error(ErrorCategory::kInvalidInput, "unknown " + role + " host '" + name +
                                                  "' (hosts: " + joinNames(store_.hosts()) + ")");
  }
  if (!h->up) {
    throw Error(ErrorCategory::kRetryable, role + " host " + name + " is down (no heartbeat for " +
                                               std::to_string((clock_() - h->last_seen_ms) / 1000) +
                                               " s); start its agent again or pick another host");
  }
  return *h;
}

ContainerRow Coordinator::locate(const std::string& container) {
  validateName(container, "container name");
  std::vector<ContainerRow> copies = store_.containersNamed(container);
  if (copies.empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                "no container '" + container + "' in the cluster (`ferry ps` lists them)");
  }
  for (const auto& [id, run] : runs_) {
    if (run.row.container == container) {
      throw Error(ErrorCategory::kRetryable, container + " is being migrated (migration #" +
                                                 std::to_string(id) +
                                                 "); try again when it has ended");
    }
  }
  if (copies.size() > 1) {
    throw Error(ErrorCategory::kRetryable,
                container + " is reported by " + copies[0].host + " and " + copies[1].host +
                    " at once (a migration is settling); try again in a few seconds");
  }
  return copies[0];
}

void Coordinator::listHosts(const Request& r) {
  std::vector<HostRow> hosts = store_.hosts();
  std::vector<ContainerRow> all = store_.containers();
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initHosts(static_cast<unsigned>(hosts.size()));
    for (size_t i = 0; i < hosts.size(); ++i) {
      auto h = list[static_cast<unsigned>(i)];
      h.setName(hosts[i].name);
      h.setDataEndpoint(hosts[i].data_endpoint);
      h.setUp(hosts[i].up);
      h.setCordoned(hosts[i].cordoned);
      uint32_t n = 0;
      for (const auto& c : all) n += c.host == hosts[i].name;
      h.setContainers(n);
      LoadRow load = store_.load(hosts[i].name);
      auto lb = h.initLoad();
      lb.setCpuPercent(static_cast<float>(load.cpu_percent));
      lb.setMemoryUsedBytes(load.memory_used_bytes);
      lb.setMemoryTotalBytes(load.memory_total_bytes);
      lb.setMemoryCapacityBytes(load.memory_capacity_bytes);
      proto::fillHostInfo(h.initInfo(), hostInfoOf(hosts[i]));
      std::vector<ImageRow> images = store_.images(hosts[i].name);
      auto il = h.initImages(static_cast<unsigned>(images.size()));
      for (size_t k = 0; k < images.size(); ++k) {
        il[static_cast<unsigned>(k)].setName(images[k].name);
        il[static_cast<unsigned>(k)].setId(images[k].id);
      }
    }
  });
}

void Coordinator::listHistory(const Request& r, uint32_t limit) {
  std::vector<MigrationRow> rows =
      store_.history(static_cast<int>(std::clamp<uint32_t>(limit, 1, 10000)));
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initHistory(static_cast<unsigned>(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) fillFigures(list[static_cast<unsigned>(i)], rows[i]);
  });
}

// A file the CLI streams straight to an agent: the agent binds a stream for
// a token issued here, and the CLI gets the ticket and the token.
void Coordinator::importFile(const Request& r) {
  auto in = r.msg.getImportFile();
  HostRow host = requireHost(text(in.getHost()), "target");
  std::string token = randomToken();
  Client c{r.peer, r.id};
  auto fill = [&](proto::Message::Builder b) {
    b.setPrepareImport(in);
    b.getPrepareImport().setToken(dataOf(token));
  };
  command(
      host.name, "prepare an import", fill, opts_.command_timeout,
      [this, c, token](proto::Message::Reader m) {
        if (!m.isStreamTicket()) return;
        auto t = m.getStreamTicket();
        server_.sendTo(c.peer, c.id, [&](proto::Message::Builder b) {
          auto out = b.initStreamTicket();
          out.setEndpoint(t.getEndpoint());
          out.setServerKey(t.getServerKey());
          out.setToken(dataOf(token));
        });
      },
      [this, c](const Error& e) { sendError(c, e); });
}

void Coordinator::checkpointTo(const Request& r) {
  auto req = r.msg.getCheckpoint();
  ContainerRow c = locate(text(req.getContainer()));
  requireHost(c.host, "container's");
  std::function<void(proto::Message::Reader)> on_ok;
  if (!req.getLeaveRunning()) {
    on_ok = [this, c](proto::Message::Reader) { store_.removeContainer(c.host, c.name); };
  }
  forward(
      r, c.host, "checkpoint " + c.name,
      [&](proto::Message::Builder b) { b.setExportCheckpoint(req); }, opts_.transfer_timeout,
      on_ok);
}

void Coordinator::handle(Request& r) {
  auto m = r.msg;
  if (isReply(m)) return onAgentReply(r);
  switch (m.which()) {
    case proto::Message::HELLO:
      onHello(m.getHello());
      server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
      return;
    case proto::Message::HEARTBEAT:
      onHeartbeat(m.getHeartbeat());
      server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
      return;
    case proto::Message::PING:
      server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
      return;
    case proto::Message::LIST_HOSTS:
      return listHosts(r);
    case proto::Message::LIST_CONTAINERS: {
      std::string host = text(m.getListContainers());
      if (!host.empty() && !store_.host(host)) {
        throw Error(ErrorCategory::kInvalidInput,
                    "unknown host '" + host + "' (hosts: " + joinNames(store_.hosts()) + ")");
      }
      std::vector<ContainerRow> rows = store_.containers(host);
      server_.reply(r, [&](proto::Message::Builder b) {
        auto list = b.initContainers(static_cast<unsigned>(rows.size()));
        for (size_t i = 0; i < rows.size(); ++i) {
          auto c = list[static_cast<unsigned>(i)];
          c.setName(rows[i].name);
          c.setHost(rows[i].host);
          c.setImage(rows[i].image);
          c.setStatus(rows[i].status);
          c.setMemoryBytes(rows[i].memory_bytes);
          auto x = container_extras_.find(rows[i].name);
          if (x != container_extras_.end()) {
            c.setReady(x->second.ready);
            c.setNotifyStatus(x->second.notify_status);
          }
        }
      });
      return;
    }
    case proto::Message::RUN: {
      auto run = m.getRun();
      HostRow host = requireHost(text(run.getHost()), "target");
      std::string name = text(run.getSpec().getName());
      validateName(name, "container name");
      auto copies = store_.containersNamed(name);
      if (!copies.empty()) {
        throw Error(ErrorCategory::kInvalidInput, "a container named " + name +
                                                      " already exists on " + copies[0].host +
                                                      " (names are unique in the cluster)");
      }
      return forward(
          r, host.name, "run " + name,
          [&](proto::Message::Builder b) { b.setStartContainer(run.getSpec()); },
          opts_.command_timeout, [this](proto::Message::Reader m) { noteContainer(m); });
    }
    case proto::Message::SECRET: {
      auto sec = m.getSecret();
      HostRow host = requireHost(text(sec.getHost()), "secret's");
      std::string name = text(sec.getName());
      auto op = sec.getOp();
      // The value crosses here untouched and is never logged: only the name is.
      return forward(
          r, host.name, "secret " + name,
          [&](proto::Message::Builder b) { b.setSecret(sec); }, opts_.command_timeout,
          [this, op, name, h = host.name](proto::Message::Reader m) {
            if (!m.isOk()) return;
            if (op == proto::Message::Secret::Op::CREATE) host_secrets_[h].insert(name);
            if (op == proto::Message::Secret::Op::REMOVE) host_secrets_[h].erase(name);
          });
    }
    case proto::Message::STOP: {
      ContainerRow c = locate(text(m.getStop()));
      requireHost(c.host, "container's");
      return forward(
          r, c.host, "stop " + c.name,
          [&](proto::Message::Builder b) { b.setStopContainer(c.name); }, opts_.command_timeout,
          [this](proto::Message::Reader m) { noteContainer(m); });
    }
    case proto::Message::REMOVE: {
      ContainerRow c = locate(text(m.getRemove()));
      requireHost(c.host, "container's");
      return forward(
          r, c.host, "remove " + c.name,
          [&](proto::Message::Builder b) { b.setRemoveContainer(c.name); }, opts_.command_timeout,
          [this, c](proto::Message::Reader) { store_.removeContainer(c.host, c.name); });
    }
    case proto::Message::GET_LOGS: {
      std::string name = text(m.getGetLogs());
      validateName(name, "container name");
      std::vector<ContainerRow> copies = store_.containersNamed(name);
      if (copies.empty()) {
        throw Error(ErrorCategory::kInvalidInput,
                    "no container '" + name + "' in the cluster (`ferry ps` lists them)");
      }
      // Mid-migration the target's copy is the one whose output goes on.
      const ContainerRow& c =
          copies.size() > 1 && copies[1].status == "running" ? copies[1] : copies[0];
      requireHost(c.host, "container's");
      return forward(
          r, c.host, "read the logs of " + name,
          [&](proto::Message::Builder b) { b.setReadLogs(name); }, opts_.command_timeout);
    }
    case proto::Message::MIGRATE:
      return startMigration(r);
    case proto::Message::LIST_HISTORY:
      return listHistory(r, m.getListHistory());
    case proto::Message::LIST_PENDING:
      return listPending(r);
    case proto::Message::RESUME_SOURCE: {
      auto rs = m.getResumeSource();
      if (!rs.getTargetLost()) {
        throw Error(ErrorCategory::kInvalidInput,
                    "resuming a frozen source needs the operator's word that the target's copy is "
                    "not running (--target-lost)");
      }
      return resumeSourceNow(r, static_cast<int64_t>(rs.getMigration()));
    }
    case proto::Message::IMPORT_FILE:
      return importFile(r);
    case proto::Message::CHECKPOINT:
      return checkpointTo(r);
    case proto::Message::CORDON:
      return cordon(r);
    case proto::Message::DRAIN: {
      auto d = m.getDrain();
      std::string host = text(d.getHost());
      requireHost(host, "drained");
      if (d.getParallel() > 16) {
        throw Error(ErrorCategory::kInvalidInput, "--parallel is at most 16");
      }
      int64_t deadline = d.getDeadlineMs() ? clock_() + static_cast<int64_t>(d.getDeadlineMs()) : 0;
      return startDrain(host, std::max(1, static_cast<int>(d.getParallel())), deadline,
                        d.getDryRun(), Client{r.peer, r.id});
    }
    case proto::Message::DRAIN_HOST: {
      // An agent being stopped: drain its host, answer when it is done.
      std::string host = text(m.getDrainHost());
      requireHost(host, "drained");
      return startDrain(host, 2, 0, false, Client{r.peer, r.id});
    }
    case proto::Message::REBALANCE:
      return startRebalance(r);
    default:
      throw Error(ErrorCategory::kInvalidInput, "not a request the coordinator serves");
  }
}

// --- migrations ------------------------------------------------------------------

void Coordinator::phaseDone(Run& run, const std::string& phase) {
  auto now = Steady::now();
  run.figures["phase_ms"].push_back({{"phase", phase}, {"ms", msBetween(run.phase_started, now)}});
  run.phase_started = now;
}

void Coordinator::progress(Run& run, const std::string& phase, uint64_t done,
                           const std::string& message, uint64_t total) {
  run.last_progress = Steady::now();
  run.last_phase = phase;
  run.last_done = done;
  auto send = [&](const Client& c, const std::string& msg) {
    server_.sendTo(c.peer, c.id, [&](proto::Message::Builder b) {
      auto p = b.initProgress();
      p.setPhase(phase);
      p.setBytesDone(done);
      p.setBytesTotal(total);
      p.setMessage(msg);
    });
  };
  if (run.client) send(*run.client, message);
  // A drain's or rebalance's client sees each of its migrations.
  if (run.observer) {
    send(*run.observer, run.row.container + " " + run.row.source + " -> " + run.row.target +
                            (message.empty() ? "" : ": " + message));
  }
}

void Coordinator::startMigration(const Request& r) {
  auto mg = r.msg.getMigrate();
  MigrateRequest req;
  req.container = text(mg.getContainer());
  req.source = text(mg.getSource());
  req.target = text(mg.getTarget());
  for (auto i : mg.getIgnore()) req.ignore.insert(text(i));
  req.precopy = mg.getPrecopy();
  beginMigration(req, Client{r.peer, r.id}, {});
}

int64_t Coordinator::beginMigration(const MigrateRequest& req, std::optional<Client> client,
                                    OnMigrationDone on_done, std::optional<Client> observer) {
  const std::string &name = req.container, &src = req.source, &dst = req.target;
  validateName(name, "container name");
  if (src == dst) {
    throw Error(ErrorCategory::kInvalidInput,
                "source and target are the same host (" + src + "); name another target");
  }
  HostRow source = requireHost(src, "source");
  HostRow target = requireHost(dst, "target");
  if (target.cordoned) {
    throw Error(
        ErrorCategory::kInvalidInput,
        dst + " is cordoned (it takes no new containers); uncordon it or pick another target");
  }
  auto here = store_.container(src, name);
  if (!here) {
    auto copies = store_.containersNamed(name);
    if (copies.empty()) {
      throw Error(ErrorCategory::kInvalidInput,
                  "no container '" + name + "' in the cluster (`ferry ps` lists them)");
    }
    throw Error(ErrorCategory::kInvalidInput,
                name + " is not on " + src + " but on " + copies[0].host + "; nothing was changed");
  }
  if (store_.hasCleanupFor(name)) {
    throw Error(ErrorCategory::kRetryable,
                "an earlier migration of " + name +
                    " still owes cleanup on a host that has not come back "
                    "(see `ferry history`); migrate it once that host is up again");
  }
  for (const auto& [id, run] : runs_) {
    if (run.row.container == name) {
      throw Error(ErrorCategory::kRetryable, name + " is already being migrated (migration #" +
                                                 std::to_string(id) + ": " + run.row.source +
                                                 " -> " + run.row.target + ")");
    }
  }
  if (here->status != "running") {
    throw Error(ErrorCategory::kInvalidInput, name + " is " + here->status + " on " + src +
                                                  "; only a running container migrates live");
  }
  if (store_.container(dst, name)) {
    throw Error(ErrorCategory::kInvalidInput,
                dst + " already has a container named " + name + "; remove it there first");
  }
  // Compatibility from the recorded host metadata, before anything freezes.
  CompatInput in;
  in.source = hostInfoOf(source);
  in.target = hostInfoOf(target);
  in.image_name = here->image;
  for (const auto& i : store_.images(src)) {
    if (i.name == here->image) in.image_id = i.id;
  }
  for (const auto& i : store_.images(dst)) {
    if (in.image_id.empty() ? i.name == here->image : i.id == in.image_id) in.image_present = true;
  }
  const std::set<std::string>& ignore = req.ignore;
  int precopy = req.precopy;
  if (precopy < -1 || precopy > 20) {
    throw Error(ErrorCategory::kInvalidInput,
                "pre-copy rounds must be auto (-1), off (0) or 1 to 20, not " +
                    std::to_string(precopy));
  }
  // An image the target lacks is sent first, from the file the source
  // imported it from (same file, same id).
  std::string send_image;
  if (!in.image_present && !in.image_id.empty()) {
    send_image = here->image;
    in.image_present = true;
  }
  std::vector<Finding> findings = checkCompatibility(in, ignore);
  for (auto& f : findings) {
    if (f.check == "image" && !f.ignored && f.severity == Severity::kRefuse) {
      f.message += " (import it there first: ferry image import " + here->image + " FILE --host " +
                   dst + ")";
    }
  }
  std::vector<Finding> warnings = enforceCompatibility(findings, src, dst);
  // Secrets are read from the target's own store when it writes the spec:
  // refused here, before anything freezes, rather than after.
  auto extras = container_extras_.find(name);
  if (extras == container_extras_.end()) {
    // A coordinator started since: the next heartbeat says what it needs.
    throw Error(ErrorCategory::kRetryable, "no heartbeat from " + src + " has described " + name +
                                               " since this coordinator started; try again in a moment");
  }
  std::string missing;
  for (const auto& s : extras->second.secrets) {
    if (!host_secrets_[dst].count(s)) missing += (missing.empty() ? "" : ", ") + s;
  }
  if (!missing.empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                name + " is given secret(s) " + missing + ", which " + dst +
                    "'s secrets store does not hold; create them there first (ferry secret create "
                    "NAME FILE --host " + dst + ")");
  }

  int64_t id = store_.beginMigration(name, src, dst, clock_());
  store_.addEvent(clock_(), "migration", name,
                  "#" + std::to_string(id) + " planned: " + src + " -> " + dst);
  log().info("migration #{}: {} {} -> {}", id, name, src, dst);
  Run run;
  run.row = *store_.migration(id);
  run.client = client;
  run.on_done = std::move(on_done);
  run.observer = observer;
  run.started = run.phase_started = Steady::now();
  for (const auto& w : warnings) {
    run.warnings.push_back(w.message);
    log().warn("migration #{}: {}", id, w.message);
  }
  run.figures["warnings"] = run.warnings;
  run.send_image = send_image;
  run.precopy = precopy;
  run.ignore = ignore;
  Run& stored = runs_.emplace(id, std::move(run)).first->second;
  progress(stored, "plan", 0,
           warnings.empty() ? "" : std::to_string(warnings.size()) + " compatibility warning(s)");
  phaseDone(stored, "plan");
  if (stored.send_image.empty()) {
    prepare(id);
  } else {
    sendImage(id);
  }
  return id;
}

// The image goes from the source's agent straight to the target's, like a
// checkpoint: the target binds a stream for a token, the source sends the
// file it imported the image from.
void Coordinator::sendImage(int64_t id) {
  Run& run = runs_.at(id);
  std::string token = randomToken();
  progress(run, "image", 0, run.send_image + " is not on " + run.row.target + ": sending it");
  command(
      run.row.target, "prepare to receive image " + run.send_image,
      [&](proto::Message::Builder b) {
        auto p = b.initPrepareImport();
        p.setHost(run.row.target);
        p.setKind(proto::Message::ImportFile::Kind::IMAGE);
        p.setName(run.send_image);
        p.setToken(dataOf(token));
      },
      opts_.command_timeout,
      [this, id, token](proto::Message::Reader m) {
        if (!m.isStreamTicket()) {
          return rollBack(id,
                          Error(ErrorCategory::kPermanent, "the target answered without a ticket"));
        }
        Run& run = runs_.at(id);
        std::string endpoint = text(m.getStreamTicket().getEndpoint());
        std::string key = text(m.getStreamTicket().getServerKey());
        command(
            run.row.source, "send image " + run.send_image,
            [&](proto::Message::Builder b) {
              auto s = b.initSendImage();
              s.setImage(run.send_image);
              s.setEndpoint(endpoint);
              s.setToken(dataOf(token));
              s.setServerKey(key);
            },
            opts_.transfer_timeout,
            [this, id](proto::Message::Reader) {
              Run& run = runs_.at(id);
              phaseDone(run, "image");
              prepare(id);
            },
            [this, id](const Error& e) { rollBack(id, e); });
      },
      [this, id](const Error& e) { rollBack(id, e); });
}

void Coordinator::prepare(int64_t id) {
  Run& run = runs_.at(id);
  run.token = randomToken();
  progress(run, "prepare");
  command(
      run.row.target, "prepare to receive " + run.row.container,
      [&](proto::Message::Builder b) {
        auto p = b.initPrepareReceive();
        p.setMigration(static_cast<uint64_t>(id));
        p.setContainer(run.row.container);
        p.setToken(dataOf(run.token));
        auto il = p.initIgnore(static_cast<unsigned>(run.ignore.size()));
        unsigned i = 0;
        for (const std::string& check : run.ignore) il.set(i++, check);
      },
      opts_.command_timeout,
      [this, id](proto::Message::Reader m) {
        if (!m.isStreamTicket()) {
          return rollBack(
              id, Error(ErrorCategory::kPermanent, "the target answered prepare without a ticket"));
        }
        std::string endpoint = text(m.getStreamTicket().getEndpoint());
        std::string key = text(m.getStreamTicket().getServerKey());
        Run& run = runs_.at(id);
        store_.advance(id, Phase::kPrepared, clock_());
        run.row.phase = Phase::kPrepared;
        phaseDone(run, "prepare");
        transfer(id, endpoint, key);
      },
      [this, id](const Error& e) { rollBack(id, e); });
}

void Coordinator::transfer(int64_t id, const std::string& endpoint, const std::string& server_key) {
  Run& run = runs_.at(id);
  store_.advance(id, Phase::kTransferring, clock_());
  run.row.phase = Phase::kTransferring;
  progress(run, "transfer");
  command(
      run.row.source, "send " + run.row.container + " to " + run.row.target,
      [&](proto::Message::Builder b) {
        auto s = b.initSendCheckpoint();
        s.setMigration(static_cast<uint64_t>(id));
        s.setContainer(run.row.container);
        s.setEndpoint(endpoint);
        s.setToken(dataOf(run.token));
        s.setServerKey(server_key);
        s.setPrecopy(run.precopy);
      },
      opts_.transfer_timeout,
      [this, id](proto::Message::Reader m) {
        Run& run = runs_.at(id);
        if (m.isMigration()) {
          auto f = m.getMigration();
          run.figures["downtime_ms"] = f.getDowntimeMs();
          run.figures["bytes_raw"] = f.getBytesRaw();
          run.figures["bytes_wire"] = f.getBytesWire();
          run.figures["compression"] = text(f.getCompression());
          run.figures["final_bytes_wire"] = f.getFinalBytesWire();
          run.figures["bytes_referenced"] = f.getBytesReferenced();
          run.figures["precopy"] = text(f.getPrecopy());
          run.figures["precopy_rounds"] = proto::precopyRoundsJson(f.getRounds());
          for (auto w : f.getWarnings()) run.warnings.push_back(text(w));
          run.figures["warnings"] = run.warnings;
          for (auto p : f.getPhaseMs()) {
            run.figures["phase_ms"].push_back({{"phase", text(p.getPhase())}, {"ms", p.getMs()}});
          }
        }
        run.phase_started = Steady::now();
        run.token.clear();
        store_.advance(id, Phase::kRestored, clock_(), "", run.figures.dump());
        run.row.phase = Phase::kRestored;
        if (auto c = store_.container(run.row.source, run.row.container)) {
          store_.putContainer({c->name, run.row.target, c->image, "running", c->memory_bytes});
        }
        store_.addEvent(clock_(), "migration", run.row.container,
                        "#" + std::to_string(id) + " running on " + run.row.target);
        commit(id);
      },
      [this, id](const Error& e) { rollBack(id, e); },
      [this, id](proto::Progress::Reader p) {
        Run& run = runs_.at(id);
        progress(run, text(p.getPhase()), p.getBytesDone(), text(p.getMessage()),
                 p.getBytesTotal());
      });
}

void Coordinator::commit(int64_t id) {
  Run& run = runs_.at(id);
  progress(run, "commit");
  command(
      run.row.source, "remove the frozen copy of " + run.row.container,
      [&](proto::Message::Builder b) { b.setCommitSource(run.row.container); },
      opts_.command_timeout,
      [this, id](proto::Message::Reader) {
        Run& run = runs_.at(id);
        store_.removeContainer(run.row.source, run.row.container);
        finish(id);
      },
      [this, id](const Error& e) {
        Run& run = runs_.at(id);
        if (e.category() == ErrorCategory::kRetryable) {
          store_.addCleanup({0, run.row.source, "remove-frozen", run.row.container, id}, clock_());
          run.warnings.push_back("the frozen copy on " + run.row.source + " is not removed yet (" +
                                 e.what() + "); it will be once " + run.row.source + " answers");
        } else {
          run.warnings.push_back("the source copy on " + run.row.source + " was kept: " + e.what());
        }
        run.figures["warnings"] = run.warnings;
        finish(id);
      });
}

// Back to the source: first whatever the target restored goes (so two
// copies never run), then the frozen source copy runs again. A host that
// cannot be reached now owes its part as a cleanup.
void Coordinator::rollBack(int64_t id, const Error& why) {
  Run& run = runs_.at(id);
  run.failure = why;
  log().warn("migration #{} of {} fails: {}; rolling back", id, run.row.container, why.what());
  progress(run, "rollback", 0, why.what());
  auto resume = [this, id] {
    Run& run = runs_.at(id);
    command(
        run.row.source, "resume " + run.row.container,
        [&](proto::Message::Builder b) { b.setRollbackSource(run.row.container); },
        opts_.command_timeout, [this, id](proto::Message::Reader) { finish(id); },
        [this, id](const Error& e) {
          Run& run = runs_.at(id);
          if (e.category() == ErrorCategory::kRetryable) {
            store_.addCleanup({0, run.row.source, "resume", run.row.container, id}, clock_());
          }
          run.resume_pending = true;
          run.warnings.push_back("could not resume " + run.row.container + " on " + run.row.source +
                                 " yet: " + e.what());
          finish(id);
        });
  };
  command(
      run.row.target, "discard " + run.row.container,
      [&](proto::Message::Builder b) {
        auto d = b.initDiscardTarget();
        d.setMigration(static_cast<uint64_t>(id));
        d.setContainer(run.row.container);
      },
      opts_.command_timeout,
      [this, id, resume](proto::Message::Reader) {
        Run& run = runs_.at(id);
        store_.removeContainer(run.row.target, run.row.container);
        resume();
      },
      [this, id, resume](const Error& e) {
        Run& run = runs_.at(id);
        store_.addCleanup({0, run.row.target, "discard", run.row.container, id}, clock_());
        if (run.row.phase < Phase::kTransferring) {
          // Nothing was sent: the target cannot hold a copy.
          run.warnings.push_back(run.row.target + " could not drop its stream yet (" + e.what() +
                                 "); it will once it answers");
          return resume();
        }
        run.warnings.push_back(run.row.target + " could not discard what it received yet (" +
                               e.what() + "); it will once it answers");
        // The target may run a restored copy (its verdict may have been
        // lost): a frozen source copy is resumed only after the target has
        // discarded its own. A source that failed before the end of the
        // stream has resumed itself already: ask.
        command(
            run.row.source, "inspect " + run.row.container,
            [&](proto::Message::Builder b) { b.setInspectContainer(run.row.container); },
            opts_.command_timeout,
            [this, id](proto::Message::Reader m) {
              Run& run = runs_.at(id);
              std::string status = m.isContainer() ? text(m.getContainer().getStatus()) : "";
              if (status != "running") owedResume(run);
              finish(id);
            },
            [this, id](const Error&) {
              owedResume(runs_.at(id));
              finish(id);
            });
      });
}

// What hosts owe, with what each waits for.
void Coordinator::listPending(const Request& r) {
  std::vector<CleanupRow> all = store_.cleanups("");
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initPending(static_cast<unsigned>(all.size()));
    for (size_t i = 0; i < all.size(); ++i) {
      const CleanupRow& c = all[i];
      auto p = list[static_cast<unsigned>(i)];
      p.setId(static_cast<uint64_t>(c.id));
      p.setHost(c.host);
      p.setAction(c.action);
      p.setContainer(c.container);
      p.setMigration(static_cast<uint64_t>(c.migration));
      p.setSinceMs(c.created_ms);
      auto h = store_.host(c.host);
      std::string waiting = h && h->up ? "retried shortly" : c.host + " to be back";
      if (c.action == "resume-after-discard" && store_.hasCleanup(c.migration, "discard")) {
        auto m = store_.migration(c.migration);
        std::string target = m ? m->target : "the target";
        waiting = target + " to discard what it received (or: ferry resume-source " +
                  std::to_string(c.migration) + " --target-lost)";
      }
      p.setWaitingFor(waiting);
    }
  });
}

// The operator's override for a source left frozen because its target went
// away holding what it received: resume the source now, on the operator's
// word that the target's copy is not running (the target still discards it
// when it is back). Refused while the target is up: then that discard runs
// by itself, and the source resumes right after.
void Coordinator::resumeSourceNow(const Request& r, int64_t id) {
  auto m = store_.migration(id);
  if (!m) throw Error(ErrorCategory::kInvalidInput, "no migration #" + std::to_string(id) + " (see `ferry history`)");
  std::optional<CleanupRow> owed;
  for (const CleanupRow& c : store_.cleanups(m->source)) {
    if (c.migration == id && c.action == "resume-after-discard") owed = c;
  }
  if (!owed) {
    throw Error(ErrorCategory::kInvalidInput, "migration #" + std::to_string(id) + " left nothing frozen on " +
                                                  m->source + " waiting for its target (see `ferry pending`)");
  }
  auto target = store_.host(m->target);
  if (target && target->up) {
    throw Error(ErrorCategory::kInvalidInput,
                m->target + " is up: it discards what it received by itself, and " + m->container +
                    " resumes on " + m->source + " right after; nothing to override");
  }
  requireHost(m->source, "source");
  auto here = store_.container(m->source, m->container);
  if (!here || here->status != "paused") {
    throw Error(ErrorCategory::kInvalidInput,
                m->container + " is " + (here ? here->status : "not there") + " on " + m->source +
                    ", not frozen: nothing to resume");
  }
  log().warn("migration #{}: the operator resumes {} on {} with {} unreachable", id, m->container, m->source,
             m->target);
  Client c{r.peer, r.id};
  CleanupRow row = *owed;
  cleanup_retry_[row.id] = Steady::time_point::max();  // not also sent by runCleanups meanwhile
  command(
      m->source, "resume " + m->container + " (operator, migration #" + std::to_string(id) + ")",
      [&](proto::Message::Builder b) { b.setRollbackSource(row.container); }, opts_.command_timeout,
      [this, c, row, target = m->target](proto::Message::Reader) {
        store_.removeCleanup(row.id);
        cleanup_retry_.erase(row.id);
        // The target's discard stays owed, but no longer blocks the
        // container (it runs here): only that migration's copy goes.
        for (const CleanupRow& d : store_.cleanups(target)) {
          if (d.migration == row.migration && d.action == "discard") store_.setCleanupAction(d.id, "discard-late");
        }
        store_.addEvent(clock_(), "cleanup", row.container,
                        "resumed on " + row.host + " by the operator (migration #" +
                            std::to_string(row.migration) + "); " + target +
                            " still discards its copy when it is back");
        server_.sendTo(c.peer, c.id, [](proto::Message::Builder b) { b.setOk(); });
      },
      [this, c, row](const Error& e) {
        cleanup_retry_.erase(row.id);
        sendError(c, e);
      });
}

void Coordinator::owedResume(Run& run) {
  store_.addCleanup({0, run.row.source, "resume-after-discard", run.row.container, run.row.id},
                    clock_());
  run.resume_pending = true;
  run.warnings.push_back(run.row.container + " stays frozen on " + run.row.source + " until " +
                         run.row.target +
                         " is back and has discarded what it received; then it "
                         "is resumed (two copies must never run). If " + run.row.target +
                         " is gone for good: ferry resume-source " + std::to_string(run.row.id) +
                         " --target-lost");
}

void Coordinator::finish(int64_t id) {
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  Run& run = it->second;
  run.figures["total_ms"] = msBetween(run.started, Steady::now());
  if (run.failure) {
    phaseDone(run, "rollback");
  } else {
    phaseDone(run, "commit");
  }
  run.figures["warnings"] = run.warnings;
  Phase end = run.failure ? Phase::kRolledBack : Phase::kCommitted;
  store_.advance(id, end, clock_(), run.failure ? run.failure->what() : "", run.figures.dump());
  std::string outcome = run.failure ? "rolled back: " + std::string(run.failure->what())
                                    : "committed: runs on " + run.row.target;
  store_.addEvent(clock_(), "migration", run.row.container,
                  "#" + std::to_string(id) + " " + outcome);
  log().info("migration #{} of {} {}", id, run.row.container, outcome);
  if (run.client) {
    MigrationRow row = *store_.migration(id);
    if (run.failure) {
      std::string msg =
          "migrating " + run.row.container + " from " + run.row.source + " to " + run.row.target +
          " failed: " + run.failure->what() + "\n" + run.row.container +
          (run.resume_pending ? " was rolled back; see the warnings for what is still pending"
                              : " was rolled back and runs on " + run.row.source + " again");
      for (const auto& w : run.warnings) msg += "\nwarning: " + w;
      sendError(*run.client, Error(run.failure->category(), msg));
    } else {
      server_.sendTo(run.client->peer, run.client->id,
                     [&](proto::Message::Builder b) { fillFigures(b.initMigration(), row); });
    }
  }
  OnMigrationDone done = std::move(run.on_done);
  std::optional<Error> failure = run.failure;
  uint64_t downtime = run.figures.value("downtime_ms", uint64_t{0});
  runs_.erase(it);
  if (done) done(id, failure, downtime);
}

// After a restart: a migration whose target had reported the container
// running goes forward to the commit, any other goes back. The source must
// be heard from (it holds the frozen copy); the target gets a grace period.
void Coordinator::resolveAfterRestart() {
  std::vector<int64_t> ready;
  bool grace_over = Steady::now() - started_ >= opts_.resolve_grace;
  for (auto& [id, run] : runs_) {
    if (!run.awaiting_hosts || !connected_.count(run.row.source)) continue;
    if (!connected_.count(run.row.target) && !grace_over) continue;
    run.awaiting_hosts = false;
    ready.push_back(id);
  }
  for (int64_t id : ready) {
    Run& run = runs_.at(id);
    store_.addEvent(clock_(), "migration", run.row.container,
                    "#" + std::to_string(id) + " resumed after a coordinator restart at phase " +
                        std::string(phaseName(run.row.phase)));
    if (run.row.phase == Phase::kRestored) {
      commit(id);
    } else {
      rollBack(id, Error(ErrorCategory::kRetryable, "the coordinator restarted during phase " +
                                                        std::string(phaseName(run.row.phase))));
    }
  }
}

void Coordinator::runCleanups(const std::string& host) {
  auto now = Steady::now();
  for (const CleanupRow& c : store_.cleanups(host)) {
    auto it = cleanup_retry_.find(c.id);
    if (it != cleanup_retry_.end() && it->second > now) continue;
    if (c.action == "resume-after-discard" && store_.hasCleanup(c.migration, "discard")) continue;
    cleanup_retry_[c.id] = Steady::time_point::max();  // in flight: not again until it ends
    proto::Fill fill;
    if (c.action == "discard" || c.action == "discard-late") {
      fill = [c](proto::Message::Builder b) {
        auto d = b.initDiscardTarget();
        d.setMigration(static_cast<uint64_t>(c.migration));
        d.setContainer(c.container);
      };
    } else if (c.action == "resume" || c.action == "resume-after-discard") {
      fill = [c](proto::Message::Builder b) { b.setRollbackSource(c.container); };
    } else {
      fill = [c](proto::Message::Builder b) { b.setCommitSource(c.container); };
    }
    command(
        host,
        c.action + " " + c.container + " (left by migration #" + std::to_string(c.migration) + ")",
        fill, opts_.command_timeout,
        [this, c](proto::Message::Reader) {
          store_.removeCleanup(c.id);
          cleanup_retry_.erase(c.id);
          store_.addEvent(clock_(), "cleanup", c.container,
                          c.action + " on " + c.host + " done (migration #" +
                              std::to_string(c.migration) + ")");
          log().info("cleanup: {} {} on {} done", c.action, c.container, c.host);
        },
        [this, c](const Error& e) {
          cleanup_retry_[c.id] = Steady::now() + std::chrono::seconds(10);
          if (e.category() != ErrorCategory::kRetryable) {
            store_.removeCleanup(c.id);  // would fail the same way forever
            store_.addEvent(clock_(), "cleanup", c.container,
                            c.action + " on " + c.host + " gave up: " + e.what());
          }
          log().warn("cleanup: {} {} on {} failed: {}", c.action, c.container, c.host, e.what());
        });
  }
}

void Coordinator::run(const std::atomic<bool>& stop) {
  auto next_check = Steady::now();
  while (!stop) {
    try {
      if (auto r = server_.next(std::chrono::milliseconds(50))) {
        try {
          try {
            proto::guard([&] { handle(*r); });
          } catch (const Error&) {
            throw;
          } catch (const std::exception& e) {
            throw Error(ErrorCategory::kPermanent, std::string("internal: ") + e.what());
          }
        } catch (const Error& e) {
          bool reply = true;
          try {
            reply = !isReply(r->msg);
          } catch (const std::exception&) {
          }
          if (reply) server_.replyError(*r, e, "coordinator");
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    expirePending();
    while (!deferred_.empty()) {
      std::vector<std::function<void()>> now;
      now.swap(deferred_);
      for (auto& f : now) {
        try {
          f();
        } catch (const std::exception& e) {
          log().error("internal: {}", e.what());
        }
      }
    }
    resolveAfterRestart();
    resumeDrains();
    // A target restoring sends nothing for a while: the CLI hears that the
    // migration lives on (its wait is measured from the last message).
    for (auto& [id, run] : runs_) {
      if ((run.client || run.observer) && !run.awaiting_hosts &&
          Steady::now() - run.last_progress > std::chrono::seconds(2)) {
        progress(run, run.last_phase, run.last_done, "waiting for " + run.row.target);
      }
    }
    // A periodic rebalance plans from heartbeats sent after the last move.
    if (!ops_.empty() || !runs_.empty()) {
      next_rebalance_ = std::max(next_rebalance_, Steady::now() + 2 * opts_.heartbeat);
    }
    if (opts_.rebalance_every.count() > 0 && Steady::now() >= next_rebalance_) {
      next_rebalance_ = Steady::now() + opts_.rebalance_every;
      periodicRebalance();
    }
    if (Steady::now() >= next_check) {
      markSilentHostsDown();
      next_check = Steady::now() + opts_.heartbeat;
    }
  }
}

}  // namespace ferry::coord
