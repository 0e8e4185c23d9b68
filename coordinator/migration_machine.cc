#include "coordinator/migration_machine.h"

#include <array>
#include <type_traits>

namespace ferry::coord {

namespace {

template <class... F>
struct Overloaded : F... {
  using F::operator()...;
};
// C++20 deduces this for aggregates, but clang 14 does not implement that
// (P1816): the guide keeps it building there (the fuzz build).
template <class... F>
Overloaded(F...) -> Overloaded<F...>;

constexpr std::array<std::string_view, 8> kCommandNames = {
    "prepare-import", "send-image",     "prepare-receive", "send-checkpoint",
    "commit-source",  "discard-target", "rollback-source", "inspect"};
// The store's cleanup actions: never rename one.
constexpr std::array<std::string_view, 4> kCleanupNames = {"discard", "resume",
                                                           "resume-after-discard", "remove-frozen"};
constexpr std::array<std::string_view, 11> kStepNames = {
    "planned", "awaiting-hosts", "image-ticket", "image-send", "prepare", "transfer",
    "commit",  "discard",        "inspect",      "resume",     "done"};

// Which command a step waits on, and from which side.
struct Awaited {
  Command command;
  bool on_target;
};
std::optional<Awaited> awaited(MigrationMachine::Step s) {
  using S = MigrationMachine::Step;
  switch (s) {
    case S::kImageTicket:
      return Awaited{Command::kPrepareImport, true};
    case S::kImageSend:
      return Awaited{Command::kSendImage, false};
    case S::kPrepare:
      return Awaited{Command::kPrepareReceive, true};
    case S::kTransfer:
      return Awaited{Command::kSendCheckpoint, false};
    case S::kCommit:
      return Awaited{Command::kCommitSource, false};
    case S::kDiscard:
      return Awaited{Command::kDiscardTarget, true};
    case S::kInspect:
      return Awaited{Command::kInspect, false};
    case S::kResume:
      return Awaited{Command::kRollbackSource, false};
    default:
      return std::nullopt;
  }
}

std::string field(const char* name, const std::string& v) {
  return v.empty() ? "" : std::string(" ") + name + "=" + v;
}

}  // namespace

std::string_view commandName(Command c) { return kCommandNames[static_cast<size_t>(c)]; }
std::string_view cleanupName(Cleanup c) { return kCleanupNames[static_cast<size_t>(c)]; }
std::string_view stepName(MigrationMachine::Step s) { return kStepNames[static_cast<size_t>(s)]; }

std::string describe(const MigrationAction& a) {
  return std::visit(
      Overloaded{
          [](const mact::Send& s) {
            std::string out = "send " + s.host + " " + std::string(commandName(s.command)) + " " +
                              s.container + field("image", s.image) +
                              field("endpoint", s.endpoint) + field("key", s.server_key) +
                              field("token", s.token);
            for (const auto& i : s.ignore) out += " ignore=" + i;
            if (s.command == Command::kSendCheckpoint)
              out += " precopy=" + std::to_string(s.precopy) + (s.tcp_close ? " tcp-close" : "") +
                     (s.postcopy ? " postcopy" : "") + (s.nftables_lock ? " nftables-lock" : "") +
                     (s.compress >= 0 ? " compress=" + std::to_string(s.compress) : "");
            return out + (s.transfer ? " (transfer)" : "");
          },
          [](const mact::Persist& p) {
            return "persist " + std::string(phaseName(p.phase)) +
                   (p.error.empty() ? "" : ": " + p.error);
          },
          [](const mact::RecordCopy& r) {
            return std::string(r.running ? "record running on " : "record no copy on ") + r.host;
          },
          [](const mact::AddCleanup& c) {
            return "cleanup " + c.host + " " + std::string(cleanupName(c.action));
          },
          [](const mact::Report& r) {
            std::string out = "report " + r.phase;
            if (r.done || r.total)
              out += " " + std::to_string(r.done) + "/" + std::to_string(r.total);
            return out + (r.message.empty() ? "" : ": " + r.message);
          },
          [](const mact::PhaseEnded& p) {
            return "phase-ended " + p.phase + (p.measured ? "" : " (unmeasured)");
          },
          [](const mact::Warn& w) { return "warn: " + w.message; },
          [](const mact::Note& n) { return "note: " + n.message; },
          [](const mact::RollingBack& r) { return "rolling-back: " + std::string(r.why.what()); },
          [](const mact::Finish& f) {
            std::string out = f.failure ? std::string(f.lost ? "finish lost: " : "finish rolled-back: ") +
                                              f.failure->what()
                                        : std::string("finish committed");
            return out + (f.resume_pending ? " (resume pending)" : "");
          },
      },
      a);
}

MigrationMachine::MigrationMachine(MigrationSpec spec) : spec_(std::move(spec)) {}

MigrationMachine MigrationMachine::afterRestart(MigrationSpec spec, Phase persisted) {
  if (isFinal(persisted)) {
    throw Error(ErrorCategory::kPermanent, "migration #" + std::to_string(spec.id) +
                                               " has ended already (" +
                                               std::string(phaseName(persisted)) + ")");
  }
  MigrationMachine m(std::move(spec));
  m.step_ = Step::kAwaitingHosts;
  m.phase_ = persisted;
  return m;
}

void MigrationMachine::unexpected(std::string_view what) const {
  throw Error(ErrorCategory::kPermanent, "internal: migration #" + std::to_string(spec_.id) +
                                             " at step " + std::string(stepName(step_)) +
                                             " cannot take " + std::string(what));
}

MigrationActions MigrationMachine::on(const MigrationEvent& e) {
  MigrationActions out;
  auto expect = [&](Step s, const char* what) {
    if (step_ != s) unexpected(what);
  };
  std::visit(
      Overloaded{
          [&](const mev::Start& s) {
            expect(Step::kPlanned, "a start");
            start(s, out);
          },
          [&](const mev::HostsSeen& h) { resolve(h, out); },
          [&](const mev::Ticket& t) { ticket(t, out); },
          [&](const mev::NoTicket&) {
            if (step_ == Step::kImageTicket) {
              return rollBack(
                  Error(ErrorCategory::kPermanent, "the target answered without a ticket"), out);
            }
            expect(Step::kPrepare, "an answer without a ticket");
            rollBack(
                Error(ErrorCategory::kPermanent, "the target answered prepare without a ticket"),
                out);
          },
          [&](const mev::ImageSent&) {
            expect(Step::kImageSend, "an image sent");
            out.push_back(mact::PhaseEnded{"image"});
            prepare(out);
          },
          [&](const mev::Progress& p) {
            expect(Step::kTransfer, "progress");
            out.push_back(mact::Report{p.phase, p.done, p.total, p.message});
          },
          [&](const mev::Restored&) {
            expect(Step::kTransfer, "a restore");
            out.push_back(mact::PhaseEnded{"transfer", false});
            persist(Phase::kRestored, out);
            out.push_back(mact::RecordCopy{spec_.target, true});
            out.push_back(mact::Note{"running on " + spec_.target});
            commit(out);
          },
          [&](const mev::CommitAcked&) {
            expect(Step::kCommit, "a commit acknowledged");
            out.push_back(mact::RecordCopy{spec_.source, false});
            finish(out);
          },
          [&](const mev::DiscardAcked&) {
            expect(Step::kDiscard, "a discard acknowledged");
            out.push_back(mact::RecordCopy{spec_.target, false});
            resume(out);
          },
          [&](const mev::ResumeAcked&) {
            expect(Step::kResume, "a resume acknowledged");
            if (!spec_.postcopy || phase_ < Phase::kTransferring) return finish(out);
            checking_resume_ = true;
            send({.host = spec_.source, .command = Command::kInspect}, Step::kInspect, out);
          },
          [&](const mev::Inspected& i) {
            expect(Step::kInspect, "an inspection");
            if (checking_resume_) {
              if (i.status == "running") return finish(out);
              if (i.status == "paused") {  // frozen still: it may yet run again
                resume_pending_ = true;
                out.push_back(mact::Warn{spec_.source + " said " + spec_.container +
                                         " runs again, but it is still paused there"});
                return finish(out);
              }
              return lose(spec_.container + " is " + (i.status.empty() ? "gone" : i.status) +
                              " on " + spec_.source,
                          out);
            }
            if (i.status != "running") owedResume(out);
            finish(out);
          },
          [&](const mev::Failed& f) { failed(f, out); },
      },
      e);
  return out;
}

void MigrationMachine::start(const mev::Start& e, MigrationActions& out) {
  out.push_back(mact::Report{
      "plan", 0, 0,
      e.warnings == 0 ? "" : std::to_string(e.warnings) + " compatibility warning(s)"});
  out.push_back(mact::PhaseEnded{"plan"});
  if (spec_.send_image.empty()) return prepare(out);
  // The image goes from the source's agent straight to the target's, like
  // a checkpoint: the target binds a stream for a token first.
  out.push_back(mact::Report{"image", 0, 0,
                             spec_.send_image + " is not on " + spec_.target + ": sending it"});
  send({.host = spec_.target,
        .command = Command::kPrepareImport,
        .image = spec_.send_image,
        .token = spec_.image_token},
       Step::kImageTicket, out);
}

// The source holds the frozen copy, so it must have been heard from; the
// target gets a grace period, after which it is resolved without it.
void MigrationMachine::resolve(const mev::HostsSeen& e, MigrationActions& out) {
  if (step_ != Step::kAwaitingHosts) return;  // resolved already
  if (!e.source || (!e.target && !e.grace_over)) return;
  out.push_back(
      mact::Note{"resumed after a coordinator restart at phase " + std::string(phaseName(phase_))});
  if (phase_ == Phase::kRestored) return commit(out);
  rollBack(Error(ErrorCategory::kRetryable,
                 "the coordinator restarted during phase " + std::string(phaseName(phase_))),
           out);
}

void MigrationMachine::ticket(const mev::Ticket& t, MigrationActions& out) {
  if (step_ == Step::kImageTicket) {
    return send({.host = spec_.source,
                 .command = Command::kSendImage,
                 .image = spec_.send_image,
                 .endpoint = t.endpoint,
                 .server_key = t.server_key,
                 .token = spec_.image_token,
                 .transfer = true},
                Step::kImageSend, out);
  }
  if (step_ != Step::kPrepare) unexpected("a ticket");
  persist(Phase::kPrepared, out);
  out.push_back(mact::PhaseEnded{"prepare"});
  persist(Phase::kTransferring, out);
  out.push_back(mact::Report{"transfer"});
  send({.host = spec_.source,
        .command = Command::kSendCheckpoint,
        .container = spec_.container,
        .endpoint = t.endpoint,
        .server_key = t.server_key,
        .token = spec_.stream_token,
        .precopy = spec_.precopy,
        .tcp_close = spec_.tcp_close,
        .postcopy = spec_.postcopy,
        .nftables_lock = spec_.nftables_lock,
        .compress = spec_.compress,
        .transfer = true},
       Step::kTransfer, out);
}

void MigrationMachine::failed(const mev::Failed& f, MigrationActions& out) {
  auto a = awaited(step_);
  if (!a || a->command != f.command || f.host != (a->on_target ? spec_.target : spec_.source)) {
    unexpected("a failure of " + std::string(commandName(f.command)) + " on " + f.host);
  }
  const Error& e = f.error;
  bool retryable = e.category() == ErrorCategory::kRetryable;
  switch (step_) {
    case Step::kCommit:
      // Committed all the same: the target runs the container.
      if (retryable) {
        out.push_back(mact::AddCleanup{spec_.source, Cleanup::kRemoveFrozen});
        out.push_back(mact::Warn{"the frozen copy on " + spec_.source + " is not removed yet (" +
                                 e.what() + "); it will be once " + spec_.source + " answers"});
      } else {
        out.push_back(mact::Warn{"the source copy on " + spec_.source + " was kept: " + e.what()});
      }
      return finish(out);
    case Step::kDiscard:
      return discardFailed(e, out);
    case Step::kInspect:
      if (checking_resume_) {
        out.push_back(mact::Warn{spec_.source + " said " + spec_.container +
                                 " runs again, but could not be asked whether it does: " +
                                 e.what()});
        return finish(out);
      }
      owedResume(out);
      return finish(out);
    case Step::kResume:
      if (spec_.postcopy && phase_ >= Phase::kTransferring && f.no_frozen_copy) {
        // Its copy is not there to resume: the memory went with it.
        return lose(e.what(), out);
      }
      if (retryable) out.push_back(mact::AddCleanup{spec_.source, Cleanup::kResume});
      resume_pending_ = true;
      out.push_back(mact::Warn{"could not resume " + spec_.container + " on " + spec_.source +
                               " yet: " + e.what()});
      if (spec_.postcopy && retryable) {
        out.push_back(mact::Warn{
            "post-copy had left " + spec_.container + "'s memory on " + spec_.source +
            " alone: it runs again once " + spec_.source + " is back, but if " + spec_.source +
            "'s machine is lost, so is " + spec_.container + " (ferry history says which)"});
      }
      return finish(out);
    default:
      return rollBack(e, out);
  }
}

// The target could not be told to drop its copy: it owes that as a cleanup.
// Before the stream it cannot hold a copy; after it, it may run a restored
// one whose verdict was lost, so the source copy resumes only once the
// target has discarded it -- unless the source failed before the end of
// the stream and resumed itself already: it is asked.
void MigrationMachine::discardFailed(const Error& e, MigrationActions& out) {
  out.push_back(mact::AddCleanup{spec_.target, Cleanup::kDiscard});
  if (phase_ < Phase::kTransferring) {
    out.push_back(mact::Warn{spec_.target + " could not drop its stream yet (" + e.what() +
                             "); it will once it answers"});
    return resume(out);
  }
  out.push_back(mact::Warn{spec_.target + " could not discard what it received yet (" + e.what() +
                           "); it will once it answers"});
  send({.host = spec_.source, .command = Command::kInspect, .container = spec_.container},
       Step::kInspect, out);
}

void MigrationMachine::send(mact::Send s, Step next, MigrationActions& out) {
  if (s.container.empty()) s.container = spec_.container;
  out.push_back(std::move(s));
  step_ = next;
}

void MigrationMachine::persist(Phase p, MigrationActions& out, std::string error) {
  out.push_back(mact::Persist{p, std::move(error)});
  phase_ = p;
}

void MigrationMachine::prepare(MigrationActions& out) {
  out.push_back(mact::Report{"prepare"});
  send({.host = spec_.target,
        .command = Command::kPrepareReceive,
        .token = spec_.stream_token,
        .ignore = spec_.ignore},
       Step::kPrepare, out);
}

// Only once the target runs the container does the source copy go.
void MigrationMachine::commit(MigrationActions& out) {
  out.push_back(mact::Report{"commit"});
  send({.host = spec_.source, .command = Command::kCommitSource}, Step::kCommit, out);
}

// Back to the source: first whatever the target holds goes (so two copies
// never run), then the frozen source copy runs again.
void MigrationMachine::rollBack(const Error& why, MigrationActions& out) {
  failure_ = why;
  out.push_back(mact::RollingBack{why});
  out.push_back(mact::Report{"rollback", 0, 0, why.what()});
  send({.host = spec_.target, .command = Command::kDiscardTarget}, Step::kDiscard, out);
}

void MigrationMachine::resume(MigrationActions& out) {
  send({.host = spec_.source, .command = Command::kRollbackSource}, Step::kResume, out);
}

void MigrationMachine::owedResume(MigrationActions& out) {
  out.push_back(mact::AddCleanup{spec_.source, Cleanup::kResumeAfterDiscard});
  resume_pending_ = true;
  out.push_back(mact::Warn{
      spec_.container + " stays frozen on " + spec_.source + " until " + spec_.target +
      " is back and has discarded what it received; then it is resumed (two copies must never "
      "run). If " +
      spec_.target + " is gone for good: ferry resume-source " + std::to_string(spec_.id) +
      " --target-lost"});
}

// Post-copy rolled back to a source whose copy did not survive: no copy
// anywhere holds the container's state (the target's, short of pages, was
// discarded).
void MigrationMachine::lose(const std::string& how, MigrationActions& out) {
  lost_ = true;
  failure_ = Error(ErrorCategory::kPermanent,
                   spec_.container + " is lost: " + (failure_ ? failure_->what() : "") +
                       "; post-copy had left its memory on " + spec_.source +
                       " alone, and its copy there did not survive (" + how + ")");
  finish(out);
}

void MigrationMachine::finish(MigrationActions& out) {
  out.push_back(mact::PhaseEnded{failure_ ? "rollback" : "commit"});
  persist(lost_ ? Phase::kLost : failure_ ? Phase::kRolledBack : Phase::kCommitted, out,
          failure_ ? failure_->what() : "");
  out.push_back(mact::Finish{failure_, resume_pending_, lost_});
  step_ = Step::kDone;
}

}  // namespace ferry::coord
