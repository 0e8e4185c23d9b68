// Migrations: planned and refused here, then carried out as the pure
// MigrationMachine (migration_machine.h) says -- this file only executes its
// actions (commands over the socket, the store, progress for the CLI) and
// feeds back what the agents answer.
#include "common/names.h"
#include "compat/compat.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_util.h"
#include "coordinator/metrics.h"
#include "protocol/figures_json.h"

namespace ferry::coord {

using detail::hostInfoOf;
using detail::log;
using detail::msBetween;
using detail::noFrozenCopy;
using detail::text;

void detail::fillFigures(proto::MigrationFigures::Builder f, const MigrationRow& m) {
  if (!m.figures_json.empty()) {
    try {
      proto::figuresFromJson(m.figures_json, f);
    } catch (const Error& e) {
      log().warn("migration #{}: its stored figures are unreadable, shown without them: {}", m.id,
                 e.what());
    }
  }
  // What the row holds is the row's to say.
  f.setId(static_cast<uint64_t>(m.id));
  f.setContainer(m.container);
  f.setSource(m.source);
  f.setTarget(m.target);
  f.setOutcome(isFinal(m.phase) ? std::string(phaseName(m.phase))
                                : "in progress (" + std::string(phaseName(m.phase)) + ")");
  f.setStartedMs(m.created_ms);
  f.setError(m.error);
}

void Coordinator::phaseDone(Run& run, const std::string& phase) {
  auto now = Steady::now();
  run.figures.addPhase(phase, static_cast<uint64_t>(msBetween(run.phase_started, now)));
  run.phase_started = now;
}

void Coordinator::progress(Run& run, const std::string& phase, uint64_t done,
                           const std::string& message, uint64_t total) {
  const MigrationSpec& spec = run.machine.spec();
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
    send(*run.observer, spec.container + " " + spec.source + " -> " + spec.target +
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
  req.tcp_close = mg.getTcpClose();
  req.postcopy = mg.getPostcopy();
  req.compress = mg.getCompress();
  beginMigration(req, Client{r.peer, r.id}, {});
}

// What refuses a migration at once: the hosts (known, up, the target not
// cordoned), the container (there, running, not already moving nor owed
// cleanup), the name free on the target.
Coordinator::Movable Coordinator::checkMovable(const MigrateRequest& req) {
  const std::string &name = req.container, &src = req.source, &dst = req.target;
  validateName(name, "container name");
  if (src == dst) {
    throw Error(ErrorCategory::kInvalidInput,
                "source and target are the same host (" + src + "); name another target");
  }
  HostRow source = requireHost(src, "source");
  HostRow target = requireHost(dst, "target");
  if (opts_.keys && publicKeyOf(src).empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                "the coordinator has no public key for " + src + " (" + src +
                    ".pub in its --keys DIR), so it cannot vouch for its stream to " + dst +
                    "; add it and restart the coordinator");
  }
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
    std::string owed_on;
    for (const auto& c : store_.cleanups("")) {
      if (c.container == name) owed_on = c.host;
    }
    if (!owed_on.empty() && hostUp(owed_on)) {
      throw Error(ErrorCategory::kRetryable,
                  "an earlier migration of " + name + " still owes cleanup on " + owed_on +
                      ", which is back and is doing it now; try again in a few seconds "
                      "(`ferry pending` lists what is owed)");
    }
    throw Error(ErrorCategory::kRetryable,
                "an earlier migration of " + name + " still owes cleanup on " +
                    (owed_on.empty() ? std::string("a host") : owed_on) +
                    ", which has not come back (see `ferry pending`); migrate it once that "
                    "host is up again");
  }
  for (const auto& [id, run] : runs_) {
    const MigrationSpec& s = run.machine.spec();
    if (s.container == name) {
      throw Error(ErrorCategory::kRetryable, name + " is already being migrated (migration #" +
                                                 std::to_string(id) + ": " + s.source + " -> " +
                                                 s.target + ")");
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
  return {source, target, *here};
}

// What the target would refuse, refused before anything freezes:
// compatibility of the recorded host metadata, the image, the secrets.
Coordinator::Fit Coordinator::checkFit(const MigrateRequest& req, const Movable& m) {
  const std::string &name = req.container, &src = req.source, &dst = req.target;
  const std::optional<ContainerRow> here = m.container;
  const HostRow &source = m.source, &target = m.target;
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
  if (in.image_id.empty() && !in.image_present) {
    // No host said it has the image yet: an import shows only in the
    // host's next heartbeat.
    throw Error(ErrorCategory::kRetryable,
                "neither " + src + " nor " + dst + " has reported image " + here->image +
                    " yet (an image import shows in the host's next heartbeat); try again in a "
                    "moment");
  }
  const std::set<std::string>& ignore = req.ignore;
  int precopy = req.precopy;
  if (precopy < -1 || precopy > 20) {
    throw Error(
        ErrorCategory::kInvalidInput,
        "pre-copy rounds must be auto (-1), off (0) or 1 to 20, not " + std::to_string(precopy));
  }
  if (req.compress < -1 || req.compress > 19) {
    throw Error(ErrorCategory::kInvalidInput,
                "the stream's compression must be auto (-1), none (0) or a zstd level from 1 to "
                "19, not " + std::to_string(req.compress));
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
  Fit fit;
  fit.send_image = send_image;
  fit.postcopy = choosePostcopy(req.postcopy, here->memory_bytes, src,
                                in.source.postcopy_unavailable, dst,
                                in.target.postcopy_unavailable);
  // The dump's lock is lifted by the target's restore: nftables only where
  // both can (else CRIU's default, iptables, which every CRIU lifts).
  fit.nftables_lock = in.source.nftables_lock && in.target.nftables_lock;
  for (const auto& w : enforceCompatibility(findings, src, dst)) fit.warnings.push_back(w.message);
  // Secrets are read from the target's own store when it writes the spec:
  // refused here, before anything freezes, rather than after.
  auto extras = hosts_.extras(src, name);
  if (!extras) {
    // A coordinator started since: the next heartbeat says what it needs.
    throw Error(ErrorCategory::kRetryable,
                "no heartbeat from " + src + " has described " + name +
                    " since this coordinator started; try again in a moment");
  }
  std::string missing;
  for (const auto& s : extras->secrets) {
    if (!host_secrets_[dst].count(s)) missing += (missing.empty() ? "" : ", ") + s;
  }
  if (!missing.empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                name + " is given secret(s) " + missing + ", which " + dst +
                    "'s secrets store does not hold; create them there first (ferry secret create "
                    "NAME FILE --host " +
                    dst + ")");
  }

  // Its address goes with it: the target must be on the same cluster
  // network now, or the restore there would fail after the freeze.
  if (!here->ip.empty()) {
    HostNetworkState net = hosts_.network(dst);
    bool holds = false;
    try {
      holds = !net.cidr.empty() && parseCidr(net.cidr).contains(parseIpv4(here->ip));
    } catch (const Error&) {
      // a range or address that does not parse holds nothing
    }
    if (!holds && net.cidr.empty() && net.error.empty()) {
      throw Error(ErrorCategory::kRetryable,
                  dst + " has not said yet whether it has a container network (its next "
                        "heartbeat will); try again in a moment");
    }
    if (!holds) {
      throw Error(ErrorCategory::kIncompatible,
                  name + " has address " + here->ip + " on the cluster network " +
                      (opts_.network_cidr.empty() ? std::string("it was created on")
                                                  : opts_.network_cidr) +
                      ", and " + dst +
                      (net.cidr.empty() ? " has no container network ready"
                                        : " is on the cluster network " + net.cidr) +
                      (net.error.empty() ? "" : " (" + net.error + ")") +
                      "; fix " + dst + "'s network (its agent's log says more) or move " + name +
                      " to another host");
    }
  }
  return fit;
}

int64_t Coordinator::beginMigration(const MigrateRequest& req, std::optional<Client> client,
                                    OnMigrationDone on_done, std::optional<Client> observer) {
  const std::string &name = req.container, &src = req.source, &dst = req.target;
  Fit fit = checkFit(req, checkMovable(req));
  const std::string& send_image = fit.send_image;
  // With post-copy, pre-copy rounds go first (the hybrid).
  int precopy = req.precopy;
  int64_t id = store_.beginMigration(name, src, dst, clock_());
  store_.addEvent(clock_(), "migration", name,
                  "#" + std::to_string(id) + " planned: " + src + " -> " + dst);
  log().info("migration #{}: {} {} -> {}", id, name, src, dst);
  MigrationSpec spec{.id = id,
                     .container = name,
                     .source = src,
                     .target = dst,
                     .send_image = send_image,
                     .precopy = precopy,
                     .tcp_close = req.tcp_close,
                     .postcopy = fit.postcopy.on,
                     .nftables_lock = fit.nftables_lock,
                     .compress = req.compress,
                     .ignore = {req.ignore.begin(), req.ignore.end()},
                     .image_token = send_image.empty() ? "" : detail::randomToken(),
                     .stream_token = detail::randomToken()};
  Run run{MigrationMachine(std::move(spec))};
  run.client = client;
  run.on_done = std::move(on_done);
  run.observer = observer;
  run.started = run.phase_started = Steady::now();
  for (const auto& w : fit.warnings) {
    run.warnings.push_back(w);
    log().warn("migration #{}: {}", id, w);
  }
  auto f = run.figures.get();
  f.setId(static_cast<uint64_t>(id));
  f.setContainer(name);
  f.setSource(src);
  f.setTarget(dst);
  f.setPostcopy(fit.postcopy.why);
  runs_.emplace(id, std::move(run));
  feed(id, mev::Start{fit.warnings.size()});
  return id;
}

// --- the machine's actions ------------------------------------------------------

void Coordinator::feed(int64_t id, const MigrationEvent& e) {
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  for (const MigrationAction& a : it->second.machine.on(e)) {
    log().debug("migration #{}: {}", id, describe(a));
    if (!execute(id, it->second, a)) return;
  }
}

bool Coordinator::execute(int64_t id, Run& run, const MigrationAction& a) {
  const MigrationSpec& spec = run.machine.spec();
  if (auto* s = std::get_if<mact::Send>(&a)) {
    send(id, run, *s);
  } else if (auto* p = std::get_if<mact::Persist>(&a)) {
    persist(id, run, *p);
  } else if (auto* r = std::get_if<mact::RecordCopy>(&a)) {
    recordCopy(run, *r);
  } else if (auto* c = std::get_if<mact::AddCleanup>(&a)) {
    store_.addCleanup({0, c->host, std::string(cleanupName(c->action)), spec.container, id},
                      clock_());
  } else if (auto* r = std::get_if<mact::Report>(&a)) {
    progress(run, r->phase, r->done, r->message, r->total);
  } else if (auto* p = std::get_if<mact::PhaseEnded>(&a)) {
    if (p->measured) {
      phaseDone(run, p->phase);
    } else {
      run.phase_started = Steady::now();
    }
  } else if (auto* w = std::get_if<mact::Warn>(&a)) {
    run.warnings.push_back(w->message);
  } else if (auto* n = std::get_if<mact::Note>(&a)) {
    store_.addEvent(clock_(), "migration", spec.container,
                    "#" + std::to_string(id) + " " + n->message);
  } else if (auto* b = std::get_if<mact::RollingBack>(&a)) {
    log().warn("migration #{} of {} fails: {}; rolling back", id, spec.container, b->why.what());
  } else if (auto* f = std::get_if<mact::Finish>(&a)) {
    finish(id, *f);
    return false;
  }
  return true;
}

namespace {

// What the agent is told, and how the command is named in errors.
// `sender_key`: the source agent's, vouched for to the target's streams.
std::pair<std::string, proto::Fill> commandFor(int64_t id, const MigrationSpec& spec,
                                               const mact::Send& s,
                                               const std::string& sender_key) {
  using detail::dataOf;
  const std::string& c = s.container;
  auto mig = static_cast<uint64_t>(id);
  switch (s.command) {
    case Command::kPrepareImport:
      return {"prepare to receive image " + s.image, [s, sender_key](proto::Message::Builder b) {
                auto p = b.initPrepareImport();
                p.setHost(s.host);
                p.setKind(proto::Message::ImportFile::Kind::IMAGE);
                p.setName(s.image);
                p.setToken(dataOf(s.token));
                p.setSenderKey(sender_key);
              }};
    case Command::kSendImage:
      return {"send image " + s.image, [s, target = spec.target](proto::Message::Builder b) {
                auto p = b.initSendImage();
                p.setImage(s.image);
                p.setTarget(target);
                p.setEndpoint(s.endpoint);
                p.setToken(dataOf(s.token));
                p.setServerKey(s.server_key);
              }};
    case Command::kPrepareReceive:
      return {"prepare to receive " + c, [s, mig, sender_key](proto::Message::Builder b) {
                auto p = b.initPrepareReceive();
                p.setMigration(mig);
                p.setContainer(s.container);
                p.setToken(dataOf(s.token));
                p.setSenderKey(sender_key);
                auto il = p.initIgnore(static_cast<unsigned>(s.ignore.size()));
                for (unsigned i = 0; i < s.ignore.size(); ++i) il.set(i, s.ignore[i]);
              }};
    case Command::kSendCheckpoint:
      return {"send " + c + " to " + spec.target, [s, mig](proto::Message::Builder b) {
                auto p = b.initSendCheckpoint();
                p.setMigration(mig);
                p.setContainer(s.container);
                p.setEndpoint(s.endpoint);
                p.setToken(dataOf(s.token));
                p.setServerKey(s.server_key);
                p.setPrecopy(s.precopy);
                p.setTcpClose(s.tcp_close);
                p.setPostcopy(s.postcopy);
                p.setNftablesLock(s.nftables_lock);
                p.setCompress(s.compress);
              }};
    case Command::kCommitSource:
      return {"remove the frozen copy of " + c, detail::fillCleanup(Command::kCommitSource, c, id)};
    case Command::kDiscardTarget:
      return {"discard " + c, detail::fillCleanup(Command::kDiscardTarget, c, id)};
    case Command::kRollbackSource:
      return {"resume " + c, detail::fillCleanup(Command::kRollbackSource, c, id)};
    case Command::kInspect:
      return {"inspect " + c, [c](proto::Message::Builder b) { b.setInspectContainer(c); }};
  }
  throw Error(ErrorCategory::kPermanent, "internal: unknown command");
}

// The agent's answer to `c` as the machine's event.
MigrationEvent eventOf(Command c, proto::Message::Reader m) {
  switch (c) {
    case Command::kPrepareImport:
    case Command::kPrepareReceive:
      if (!m.isStreamTicket()) return mev::NoTicket{};
      return mev::Ticket{text(m.getStreamTicket().getEndpoint()),
                         text(m.getStreamTicket().getServerKey())};
    case Command::kSendImage:
      return mev::ImageSent{};
    case Command::kSendCheckpoint:
      return mev::Restored{};
    case Command::kCommitSource:
      return mev::CommitAcked{};
    case Command::kDiscardTarget:
      return mev::DiscardAcked{};
    case Command::kRollbackSource:
      return mev::ResumeAcked{};
    case Command::kInspect:
      return mev::Inspected{m.isContainer() ? text(m.getContainer().getStatus()) : ""};
  }
  throw Error(ErrorCategory::kPermanent, "internal: unknown command");
}

}  // namespace

void Coordinator::send(int64_t id, const Run& run, const mact::Send& s) {
  auto [what, fill] = commandFor(id, run.machine.spec(), s, publicKeyOf(run.machine.spec().source));
  Command c = s.command;
  OnProgress on_progress;
  if (c == Command::kSendCheckpoint) {
    on_progress = [this, id](proto::Progress::Reader p) {
      feed(id, mev::Progress{text(p.getPhase()), p.getBytesDone(), p.getBytesTotal(),
                             text(p.getMessage())});
    };
  }
  command(
      s.host, what, fill, s.transfer ? opts_.transfer_timeout : opts_.command_timeout,
      [this, id, c](proto::Message::Reader m) {
        if (c == Command::kSendCheckpoint) {
          if (auto it = runs_.find(id); it != runs_.end()) noteFigures(it->second, m);
        }
        feed(id, eventOf(c, m));
      },
      [this, id, c, host = s.host](const Error& e, Fault f) {
        feed(id, mev::Failed{c, host, f, e, noFrozenCopy(e)});
      },
      std::move(on_progress));
}

// The source's final answer carries the migration's figures; the phases
// timed here so far come first.
void Coordinator::noteFigures(Run& run, proto::Message::Reader m) {
  if (!m.isMigration()) return;
  auto from = m.getMigration();
  auto f = run.figures.get();
  f.setDowntimeMs(from.getDowntimeMs());
  f.setBytesRaw(from.getBytesRaw());
  f.setBytesWire(from.getBytesWire());
  f.setCompression(from.getCompression());
  f.setLinkBytesPerS(from.getLinkBytesPerS());
  f.setFinalBytesWire(from.getFinalBytesWire());
  f.setBytesReferenced(from.getBytesReferenced());
  f.setPrecopy(from.getPrecopy());
  f.setRounds(from.getRounds());
  f.setPostcopyMs(from.getPostcopyMs());
  f.setBytesOnDemand(from.getBytesOnDemand());
  f.setBytesPushed(from.getBytesPushed());
  f.setBytesHeld(from.getBytesHeld());
  for (auto w : from.getWarnings()) run.warnings.push_back(text(w));
  for (auto p : from.getPhaseMs()) run.figures.addPhase(text(p.getPhase()), p.getMs());
}

void Coordinator::persist(int64_t id, Run& run, const mact::Persist& p) {
  if (isFinal(p.phase)) {
    run.figures.get().setTotalMs(static_cast<uint64_t>(msBetween(run.started, Steady::now())));
  }
  bool with_figures = isFinal(p.phase) || p.phase == Phase::kRestored;
  if (with_figures) run.figures.setWarnings(run.warnings);
  store_.advance(id, p.phase, clock_(), p.error,
                 with_figures ? proto::figuresJson(run.figures.reader()) : "");
}

void Coordinator::recordCopy(const Run& run, const mact::RecordCopy& r) {
  const MigrationSpec& spec = run.machine.spec();
  if (!r.running) return store_.removeContainer(r.host, spec.container);
  // Ahead of the target's next heartbeat, from what the source reported.
  // Its address, MAC and ports go with it.
  if (auto c = store_.container(spec.source, spec.container)) {
    ContainerRow moved = *c;
    moved.host = r.host;
    moved.status = "running";
    store_.putContainer(moved);
  }
}

void Coordinator::finish(int64_t id, const mact::Finish& f) {
  auto it = runs_.find(id);
  if (it == runs_.end()) return;
  Run& run = it->second;
  const MigrationSpec& spec = run.machine.spec();
  std::string outcome = f.failure ? (f.lost ? "lost: " : "rolled back: ") +
                                        std::string(f.failure->what())
                                  : "committed: runs on " + spec.target;
  store_.addEvent(clock_(), "migration", spec.container, "#" + std::to_string(id) + " " + outcome);
  log().info("migration #{} of {} {}", id, spec.container, outcome);
  if (run.client) {
    if (f.failure) {
      std::string msg =
          "migrating " + spec.container + " from " + spec.source + " to " + spec.target +
          " failed: " + f.failure->what() + "\n" + spec.container +
          (f.lost ? " is lost: it runs nowhere, and no copy of its state is left (restart it "
                    "from its image, or restore an earlier checkpoint)"
           : f.resume_pending ? " was rolled back; see the warnings for what is still pending"
                              : " was rolled back and runs on " + spec.source + " again");
      for (const auto& w : run.warnings) msg += "\nwarning: " + w;
      sendError(*run.client, Error(f.failure->category(), msg));
    } else {
      MigrationRow row = *store_.migration(id);
      server_.sendTo(run.client->peer, run.client->id, [&](proto::Message::Builder b) {
        detail::fillFigures(b.initMigration(), row);
      });
    }
  }
  metrics_.migrationEnded(migrationEndOf(f, run.figures.reader()));
  OnMigrationDone done = std::move(run.on_done);
  uint64_t downtime = run.figures.reader().getDowntimeMs();
  runs_.erase(it);
  if (done) done(id, f.failure, downtime);
}

// After a restart: each unfinished migration is resolved by its machine
// once its hosts have been heard from (the target gets a grace period).
void Coordinator::resolveAfterRestart() {
  bool grace_over = Steady::now() - started_ >= opts_.resolve_grace;
  std::vector<int64_t> waiting;
  for (const auto& [id, run] : runs_) {
    if (run.machine.awaitingHosts()) waiting.push_back(id);
  }
  for (int64_t id : waiting) {
    const MigrationSpec& spec = runs_.at(id).machine.spec();
    feed(id, mev::HostsSeen{connected_.count(spec.source) > 0, connected_.count(spec.target) > 0,
                            grace_over});
  }
}

}  // namespace ferry::coord
