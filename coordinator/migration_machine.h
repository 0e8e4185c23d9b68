// One migration's protocol as a pure state machine: events in (the agents'
// answers, their failures, a coordinator restart), actions out (commands to
// send, phases to persist, cleanups owed, progress, the end). No sockets, no
// store, no clock, no randomness: the coordinator executes the actions and
// feeds back what happens, and the unit tests do the same by hand.
//
// The protocol (DESIGN.md, "A migration, step by step"):
//   [image: prepareImport on the target -> sendImage on the source]
//   -> prepareReceive on the target (a ticket for the stream)
//   -> sendCheckpoint on the source (freeze, stream, the target restores)
//   -> commitSource (the frozen source copy goes), or on any failure
//   -> discardTarget, then rollbackSource (the source copy runs again).
// Two copies must never run: when the target cannot be told to discard
// what it received after the stream ended, its verdict may have been lost,
// so the source copy stays frozen until the target is back and has
// discarded it (a cleanup), unless the source says its copy runs already.
// After a restart a migration goes forward to the commit when it had
// reached kRestored, back otherwise, once its hosts have been heard from.
// A post-copy migration rolled back asks the source, after its resume,
// whether the copy runs: one that does not (its machine died, and its
// memory with it) is lost -- the target's copy never had all of it.
//
// Thread-safety: a value; one owner at a time.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "coordinator/phase.h"

namespace ferry::coord {

// What the coordinator asks an agent to do for a migration.
enum class Command {
  kPrepareImport,   // target: bind a stream for the image
  kSendImage,       // source: send the image file
  kPrepareReceive,  // target: staging and a stream for the checkpoint
  kSendCheckpoint,  // source: (pre-copy,) freeze, stream; answered once the target runs it
  kCommitSource,    // source: delete the frozen copy
  kDiscardTarget,   // target: drop whatever it received or restored
  kRollbackSource,  // source: run the frozen copy again
  kInspect,         // source: is the container running there?
};
std::string_view commandName(Command c);

// Work a host owes once it is back (the store's cleanup actions).
enum class Cleanup { kDiscard, kResume, kResumeAfterDiscard, kRemoveFrozen };
std::string_view cleanupName(Cleanup c);

struct MigrationSpec {
  int64_t id = 0;
  std::string container, source, target;
  std::string send_image;  // the target lacks this image: it is sent first
  int precopy = -1;        // rounds at most; 0 off; -1 auto
  bool tcp_close = false;  // the container's TCP connections are dropped, not kept
  bool postcopy = false;   // the memory follows the restore (decided at plan time)
  bool nftables_lock = false;  // both hosts' CRIU lock networks with nftables. Not persisted
  int compress = -1;       // the stream's zstd level; 0 none; -1 auto. Not persisted (as ignore)
  // The operator's --ignore: the target checks compatibility again before
  // its restore and must override the same refusals. Not persisted: after a
  // restart a migration only commits or rolls back, never prepares.
  std::vector<std::string> ignore;
  // One-time stream tokens, drawn by the caller (this has no randomness).
  std::string image_token, stream_token;
};

// Why a command failed. The protocol answers each alike, by the error's
// category; the fault says which of the coordinator's watchers saw it.
enum class Fault {
  kAgentError,      // the agent answered with an error
  kNotConnected,    // the host had no connection when the command went out
  kHostDown,        // the host missed its heartbeats
  kAgentRestarted,  // a fresh agent said hello: its predecessor's work died
  kTimeout,         // no answer (nor progress) within the command's time
};

namespace mev {
struct Start {
  size_t warnings = 0;  // compatibility warnings found by the plan
};
// After a restart: who has been heard from since, and whether the target's
// grace is over.
struct HostsSeen {
  bool source = false, target = false, grace_over = false;
};
struct Ticket {  // the target's answer to a prepare
  std::string endpoint, server_key;
};
struct NoTicket {};  // the target answered a prepare, but not with a ticket
struct ImageSent {};
struct Progress {
  std::string phase;
  uint64_t done = 0, total = 0;
  std::string message;
};
struct Restored {};  // sendCheckpoint's answer: the target runs the container
struct CommitAcked {};
struct DiscardAcked {};
struct ResumeAcked {};  // rollbackSource's answer: the source copy runs
struct Inspected {
  std::string status;  // of the source's copy ("" when the answer said nothing)
};
struct Failed {
  Command command;  // the one outstanding
  std::string host;
  Fault fault;
  Error error;
  // rollbackSource's refusal: the source has no frozen copy to run again
  // (none, or one neither paused nor running; the agent says so).
  bool no_frozen_copy = false;
};
}  // namespace mev
using MigrationEvent =
    std::variant<mev::Start, mev::HostsSeen, mev::Ticket, mev::NoTicket, mev::ImageSent,
                 mev::Progress, mev::Restored, mev::CommitAcked, mev::DiscardAcked,
                 mev::ResumeAcked, mev::Inspected, mev::Failed>;

namespace mact {
// Send a command; its answer or failure comes back as an event. `transfer`:
// it moves data (the longer, progress-extended timeout applies).
struct Send {
  std::string host;
  Command command;
  std::string container, image, endpoint, server_key, token;
  std::vector<std::string> ignore;  // prepareReceive: checks the target overrides
  int precopy = -1;
  bool tcp_close = false;
  bool postcopy = false;
  bool nftables_lock = false;
  int compress = -1;
  bool transfer = false;
};
// Commit the phase (and for a final one, the error) before anything else.
struct Persist {
  Phase phase;
  std::string error;
};
// The placement record: `host` now runs the container, or holds no copy.
struct RecordCopy {
  std::string host;
  bool running = false;
};
struct AddCleanup {
  std::string host;
  Cleanup action;
};
struct Report {  // progress for whoever watches the migration
  std::string phase;
  uint64_t done = 0, total = 0;
  std::string message;
};
// A step of the migration's timeline ended now; `measured`: record its time
// (the transfer's own phases come measured from the agents).
struct PhaseEnded {
  std::string phase;
  bool measured = true;
};
struct Warn {  // for the operator, kept in the migration's record
  std::string message;
};
struct Note {  // for the event log
  std::string message;
};
struct RollingBack {
  Error why;
};
// The end; nothing follows. `resume_pending`: the source copy is not
// confirmed running again (see the warnings).
struct Finish {
  std::optional<Error> failure;  // none: committed
  bool resume_pending = false;
  // Rolled back, but the source's copy did not survive: the container is
  // gone (post-copy only: no other copy held all of its memory).
  bool lost = false;
};
}  // namespace mact
using MigrationAction =
    std::variant<mact::Send, mact::Persist, mact::RecordCopy, mact::AddCleanup, mact::Report,
                 mact::PhaseEnded, mact::Warn, mact::Note, mact::RollingBack, mact::Finish>;
using MigrationActions = std::vector<MigrationAction>;

// One line per action, for logs and for tests that compare exact actions.
std::string describe(const MigrationAction& a);

class MigrationMachine {
 public:
  // Where a migration is: which answer it waits for.
  enum class Step {
    kPlanned,        // waits for Start
    kAwaitingHosts,  // found unfinished after a restart: waits for HostsSeen
    kImageTicket,    // prepareImport sent to the target
    kImageSend,      // sendImage sent to the source
    kPrepare,        // prepareReceive sent to the target
    kTransfer,       // sendCheckpoint sent to the source
    kCommit,         // commitSource sent
    kDiscard,        // discardTarget sent
    kInspect,        // inspect sent to the source
    kResume,         // rollbackSource sent
    kDone,
  };

  // A migration just planned (persisted as kPlanned).
  explicit MigrationMachine(MigrationSpec spec);
  // One a previous coordinator left unfinished at `persisted`.
  static MigrationMachine afterRestart(MigrationSpec spec, Phase persisted);

  // Feeds one event; returns what to do, in order. Throws Error kPermanent
  // for an event the current step does not expect (a bug in the caller).
  MigrationActions on(const MigrationEvent& e);

  const MigrationSpec& spec() const { return spec_; }
  Step step() const { return step_; }
  Phase phase() const { return phase_; }  // the last persisted
  bool awaitingHosts() const { return step_ == Step::kAwaitingHosts; }
  bool done() const { return step_ == Step::kDone; }

 private:
  void start(const mev::Start& e, MigrationActions& out);
  void resolve(const mev::HostsSeen& e, MigrationActions& out);
  void ticket(const mev::Ticket& e, MigrationActions& out);
  void failed(const mev::Failed& e, MigrationActions& out);
  void discardFailed(const Error& e, MigrationActions& out);

  void send(mact::Send s, Step next, MigrationActions& out);
  void persist(Phase p, MigrationActions& out, std::string error = "");
  void prepare(MigrationActions& out);
  void commit(MigrationActions& out);
  void rollBack(const Error& why, MigrationActions& out);
  void resume(MigrationActions& out);
  void owedResume(MigrationActions& out);
  void lose(const std::string& how, MigrationActions& out);
  void finish(MigrationActions& out);
  [[noreturn]] void unexpected(std::string_view what) const;

  MigrationSpec spec_;
  Step step_ = Step::kPlanned;
  Phase phase_ = Phase::kPlanned;
  std::optional<Error> failure_;  // why it rolls back
  bool resume_pending_ = false;
  // Post-copy rolled back: the source said its copy runs again, and is
  // asked (kInspect) whether it really does -- its memory was all there was.
  bool checking_resume_ = false;
  bool lost_ = false;
};

std::string_view stepName(MigrationMachine::Step s);

}  // namespace ferry::coord
