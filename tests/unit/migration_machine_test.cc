// The migration protocol event by event, without processes: each test
// feeds a fault (or an answer) and checks the exact actions that follow --
// the promise being that every failure ends with one running copy.
#include "coordinator/migration_machine.h"

#include <gtest/gtest.h>

#include "coordinator/owed_work.h"

namespace ferry::coord {
namespace {

using Step = MigrationMachine::Step;
using Lines = std::vector<std::string>;

MigrationSpec spec(const std::string& send_image = "") {
  return {.id = 7,
          .container = "web",
          .source = "hostA",
          .target = "hostB",
          .send_image = send_image,
          .precopy = -1,
          .image_token = "itok",
          .stream_token = "stok"};
}

Lines lines(const MigrationActions& actions) {
  Lines out;
  for (const auto& a : actions) out.push_back(describe(a));
  return out;
}

Lines feed(MigrationMachine& m, const MigrationEvent& e) { return lines(m.on(e)); }

Error retryable(const std::string& what) { return Error(ErrorCategory::kRetryable, what); }
Error permanent(const std::string& what) { return Error(ErrorCategory::kPermanent, what); }

mev::Failed failed(Command c, const std::string& host, const Error& e,
                   Fault f = Fault::kAgentError) {
  return {c, host, f, e};
}

mev::Ticket ticket() { return {"tcp://127.0.0.3:7100", "KEY"}; }

// The machine at each step of a migration that goes well so far.
MigrationMachine preparing() {
  MigrationMachine m(spec());
  m.on(mev::Start{});
  return m;
}
MigrationMachine transferring() {
  MigrationMachine m = preparing();
  m.on(ticket());
  return m;
}
MigrationMachine committing() {
  MigrationMachine m = transferring();
  m.on(mev::Restored{});
  return m;
}

const std::string kDiscard = "send hostB discard-target web";
const std::string kResume = "send hostA rollback-source web";
const std::string kInspect = "send hostA inspect web";

// What a rollback for `why` sends first.
Lines rollingBack(const std::string& why) {
  return {"rolling-back: " + why, "report rollback: " + why, kDiscard};
}
// The end of a rollback whose source copy runs again.
Lines rolledBack(const std::string& why) {
  return {"phase-ended rollback", "persist rolled-back: " + why, "finish rolled-back: " + why};
}

// Drives a rollback whose discard and resume both succeed.
void expectCleanRollback(MigrationMachine& m, const std::string& why) {
  EXPECT_EQ(m.step(), Step::kDiscard);
  EXPECT_EQ(feed(m, mev::DiscardAcked{}), (Lines{"record no copy on hostB", kResume}));
  EXPECT_EQ(feed(m, mev::ResumeAcked{}), rolledBack(why));
  EXPECT_TRUE(m.done());
}

// --- the way forward ---------------------------------------------------------

TEST(MigrationMachine, StartWithTheImageOnTheTarget_PreparesTheTarget) {
  MigrationMachine m(spec());
  EXPECT_EQ(feed(m, mev::Start{2}),
            (Lines{"report plan: 2 compatibility warning(s)", "phase-ended plan", "report prepare",
                   "send hostB prepare-receive web token=stok"}));
  EXPECT_EQ(m.step(), Step::kPrepare);
  EXPECT_EQ(m.phase(), Phase::kPlanned);
}

TEST(MigrationMachine, OperatorsIgnore_TravelsToTheTargetsOwnCheck) {
  MigrationSpec s = spec();
  s.ignore = {"criu-version", "kernel"};
  MigrationMachine m(s);
  EXPECT_EQ(feed(m, mev::Start{}).back(),
            "send hostB prepare-receive web token=stok ignore=criu-version ignore=kernel");
}

TEST(MigrationMachine, StartWithTheImageMissingOnTheTarget_AsksForAnImageTicketFirst) {
  MigrationMachine m(spec("img"));
  EXPECT_EQ(feed(m, mev::Start{}), (Lines{"report plan", "phase-ended plan",
                                          "report image: img is not on hostB: sending it",
                                          "send hostB prepare-import web image=img token=itok"}));
  EXPECT_EQ(feed(m, ticket()),
            (Lines{"send hostA send-image web image=img "
                   "endpoint=tcp://127.0.0.3:7100 key=KEY token=itok (transfer)"}));
  EXPECT_EQ(feed(m, mev::ImageSent{}), (Lines{"phase-ended image", "report prepare",
                                              "send hostB prepare-receive web token=stok"}));
  EXPECT_EQ(m.step(), Step::kPrepare);
}

TEST(MigrationMachine, Ticket_PersistsPreparedAndTransferringBeforeTheSourceFreezes) {
  MigrationMachine m = preparing();
  EXPECT_EQ(
      feed(m, ticket()),
      (Lines{"persist prepared", "phase-ended prepare", "persist transferring", "report transfer",
             "send hostA send-checkpoint web endpoint=tcp://127.0.0.3:7100 key=KEY token=stok "
             "precopy=-1 (transfer)"}));
  EXPECT_EQ(m.phase(), Phase::kTransferring);
}

// The dump's network lock is lifted by the target's restore: nftables only
// when the plan found both hosts' CRIU can (MigrationSpec::nftables_lock).
TEST(MigrationMachine, TheNftablesLockTravelsToTheSourceOnlyWhenPlanned) {
  MigrationSpec s = spec();
  s.nftables_lock = true;
  MigrationMachine m(s);
  m.on(mev::Start{});
  EXPECT_EQ(feed(m, ticket()).back(),
            "send hostA send-checkpoint web endpoint=tcp://127.0.0.3:7100 key=KEY token=stok "
            "precopy=-1 nftables-lock (transfer)");
}

TEST(MigrationMachine, Progress_IsReportedAsItComes) {
  MigrationMachine m = transferring();
  EXPECT_EQ(feed(m, mev::Progress{"precopy", 10, 20, "round 1"}),
            (Lines{"report precopy 10/20: round 1"}));
  EXPECT_EQ(m.step(), Step::kTransfer);
}

TEST(MigrationMachine, Restored_PersistsRestoredAndOnlyThenRemovesTheSourceCopy) {
  MigrationMachine m = transferring();
  EXPECT_EQ(
      feed(m, mev::Restored{}),
      (Lines{"phase-ended transfer (unmeasured)", "persist restored", "record running on hostB",
             "note: running on hostB", "report commit", "send hostA commit-source web"}));
  EXPECT_EQ(feed(m, mev::CommitAcked{}), (Lines{"record no copy on hostA", "phase-ended commit",
                                                "persist committed", "finish committed"}));
  EXPECT_TRUE(m.done());
}

// --- commit faults: the target runs it, so the migration is committed -------

TEST(MigrationMachine, SourceUnreachableAtCommit_CommitsAndOwesTheFrozenCopysRemoval) {
  MigrationMachine m = committing();
  EXPECT_EQ(
      feed(m,
           failed(Command::kCommitSource, "hostA", retryable("hostA went down"), Fault::kHostDown)),
      (Lines{"cleanup hostA remove-frozen",
             "warn: the frozen copy on hostA is not removed yet (hostA went down); it will be "
             "once hostA answers",
             "phase-ended commit", "persist committed", "finish committed"}));
}

TEST(MigrationMachine, SourceRefusesCommit_CommitsAndSaysTheSourceCopyWasKept) {
  MigrationMachine m = committing();
  EXPECT_EQ(feed(m, failed(Command::kCommitSource, "hostA", permanent("runc delete failed"))),
            (Lines{"warn: the source copy on hostA was kept: runc delete failed",
                   "phase-ended commit", "persist committed", "finish committed"}));
}

// --- failures before the stream: the target holds nothing that runs ----------

TEST(MigrationMachine, ImagePrepareFails_RollsBackAndResumesSource) {
  MigrationMachine m(spec("img"));
  m.on(mev::Start{});
  EXPECT_EQ(feed(m, failed(Command::kPrepareImport, "hostB", permanent("disk full"))),
            rollingBack("disk full"));
  expectCleanRollback(m, "disk full");
}

TEST(MigrationMachine, ImageTicketMissing_RollsBackAndResumesSource) {
  MigrationMachine m(spec("img"));
  m.on(mev::Start{});
  EXPECT_EQ(feed(m, mev::NoTicket{}), rollingBack("the target answered without a ticket"));
  expectCleanRollback(m, "the target answered without a ticket");
}

TEST(MigrationMachine, ImageStreamCut_RollsBackAndResumesSource) {
  MigrationMachine m(spec("img"));
  m.on(mev::Start{});
  m.on(ticket());
  EXPECT_EQ(feed(m, failed(Command::kSendImage, "hostA", retryable("stream cut"))),
            rollingBack("stream cut"));
  expectCleanRollback(m, "stream cut");
}

TEST(MigrationMachine, TargetErrorAtPrepare_RollsBackAndResumesSource) {
  MigrationMachine m = preparing();
  EXPECT_EQ(feed(m, failed(Command::kPrepareReceive, "hostB", permanent("no space on hostB"))),
            rollingBack("no space on hostB"));
  expectCleanRollback(m, "no space on hostB");
}

TEST(MigrationMachine, PrepareAnsweredWithoutTicket_RollsBackAndResumesSource) {
  MigrationMachine m = preparing();
  EXPECT_EQ(feed(m, mev::NoTicket{}), rollingBack("the target answered prepare without a ticket"));
  expectCleanRollback(m, "the target answered prepare without a ticket");
}

TEST(MigrationMachine, TargetDownAtPrepare_DiscardOwedAndSourceResumedAtOnce) {
  MigrationMachine m = preparing();
  m.on(failed(Command::kPrepareReceive, "hostB", retryable("hostB went down"), Fault::kHostDown));
  // Nothing was streamed: the target cannot hold a copy, so no need to wait.
  EXPECT_EQ(
      feed(m, failed(Command::kDiscardTarget, "hostB", retryable("hostB is not connected"),
                     Fault::kNotConnected)),
      (Lines{"cleanup hostB discard",
             "warn: hostB could not drop its stream yet (hostB is not connected); it will once "
             "it answers",
             kResume}));
  EXPECT_EQ(feed(m, mev::ResumeAcked{}), rolledBack("hostB went down"));
}

// --- failures during the transfer --------------------------------------------

TEST(MigrationMachine, TargetErrorDuringTransfer_RollsBackAndResumesSource) {
  MigrationMachine m = transferring();
  EXPECT_EQ(feed(m, failed(Command::kSendCheckpoint, "hostA", permanent("hostB: restore failed"))),
            rollingBack("hostB: restore failed"));
  expectCleanRollback(m, "hostB: restore failed");
}

TEST(MigrationMachine, EveryFaultDuringTransfer_RollsBackAndResumesSource) {
  for (Fault f : {Fault::kAgentError, Fault::kNotConnected, Fault::kHostDown,
                  Fault::kAgentRestarted, Fault::kTimeout}) {
    MigrationMachine m = transferring();
    EXPECT_EQ(feed(m, failed(Command::kSendCheckpoint, "hostA", retryable("fault"), f)),
              rollingBack("fault"));
    expectCleanRollback(m, "fault");
  }
}

TEST(MigrationMachine, TargetKilledMidStream_SourceResumedItselfSoNothingWaits) {
  MigrationMachine m = transferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("stream cut")));
  EXPECT_EQ(feed(m, failed(Command::kDiscardTarget, "hostB", retryable("hostB went down"),
                           Fault::kHostDown)),
            (Lines{"cleanup hostB discard",
                   "warn: hostB could not discard what it received yet (hostB went down); it will "
                   "once it answers",
                   kInspect}));
  EXPECT_EQ(feed(m, mev::Inspected{"running"}), rolledBack("stream cut"));
}

TEST(MigrationMachine, VerdictLost_SourceStaysFrozenUntilTheTargetDiscarded) {
  MigrationMachine m = transferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostB went down"), Fault::kHostDown));
  m.on(failed(Command::kDiscardTarget, "hostB", retryable("hostB is not connected")));
  EXPECT_EQ(feed(m, mev::Inspected{"paused"}),
            (Lines{"cleanup hostA resume-after-discard",
                   "warn: web stays frozen on hostA until hostB is back and has discarded what it "
                   "received; then it is resumed (two copies must never run). If hostB is gone for "
                   "good: ferry resume-source 7 --target-lost",
                   "phase-ended rollback", "persist rolled-back: hostB went down",
                   "finish rolled-back: hostB went down (resume pending)"}));
}

TEST(MigrationMachine, SourceSilentWhenAskedAfterALostVerdict_StaysFrozen) {
  MigrationMachine m = transferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("timeout"), Fault::kTimeout));
  m.on(failed(Command::kDiscardTarget, "hostB", retryable("hostB is not connected")));
  Lines out = feed(m, failed(Command::kInspect, "hostA", retryable("no answer"), Fault::kTimeout));
  ASSERT_EQ(out.size(), 5u);
  EXPECT_EQ(out[0], "cleanup hostA resume-after-discard");
  EXPECT_EQ(out[4], "finish rolled-back: timeout (resume pending)");
}

// --- the source's resume fails ------------------------------------------------

TEST(MigrationMachine, SourceUnreachableForResume_OwesTheResume) {
  MigrationMachine m = transferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", permanent("restore failed")));
  m.on(mev::DiscardAcked{});
  EXPECT_EQ(
      feed(m, failed(Command::kRollbackSource, "hostA", retryable("hostA went down"),
                     Fault::kHostDown)),
      (Lines{"cleanup hostA resume", "warn: could not resume web on hostA yet: hostA went down",
             "phase-ended rollback", "persist rolled-back: restore failed",
             "finish rolled-back: restore failed (resume pending)"}));
}

TEST(MigrationMachine, SourceRefusesResume_SaysSoAndOwesNothing) {
  MigrationMachine m = transferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", permanent("restore failed")));
  m.on(mev::DiscardAcked{});
  Lines out = feed(m, failed(Command::kRollbackSource, "hostA", permanent("runc resume failed")));
  EXPECT_EQ(out, (Lines{"warn: could not resume web on hostA yet: runc resume failed",
                        "phase-ended rollback", "persist rolled-back: restore failed",
                        "finish rolled-back: restore failed (resume pending)"}));
}

// --- post-copy: the source's copy is all there is -----------------------------

MigrationMachine postcopyTransferring() {
  MigrationSpec s = spec();
  s.postcopy = true;
  MigrationMachine m(s);
  m.on(mev::Start{});
  m.on(ticket());
  return m;
}

TEST(MigrationMachine, PostcopyRolledBack_AsksWhetherTheSourceCopyRunsBeforeItSaysSo) {
  MigrationMachine m = postcopyTransferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostB went silent")));
  m.on(mev::DiscardAcked{});
  EXPECT_EQ(feed(m, mev::ResumeAcked{}), (Lines{kInspect}));
  EXPECT_EQ(feed(m, mev::Inspected{"running"}), rolledBack("hostB went silent"));
  // Still frozen there: not lost, its resume pending.
  MigrationMachine frozen = postcopyTransferring();
  frozen.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostB went silent")));
  frozen.on(mev::DiscardAcked{});
  frozen.on(mev::ResumeAcked{});
  EXPECT_EQ(feed(frozen, mev::Inspected{"paused"}).back(),
            "finish rolled-back: hostB went silent (resume pending)");
}

TEST(MigrationMachine, PostcopySourceCopyDidNotSurvive_TheContainerIsLost) {
  const std::string lost =
      "web is lost: hostA went down; post-copy had left its memory on hostA alone, and its copy "
      "there did not survive (web is exited on hostA)";
  MigrationMachine m = postcopyTransferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostA went down"), Fault::kHostDown));
  m.on(mev::DiscardAcked{});
  m.on(mev::ResumeAcked{});
  EXPECT_EQ(feed(m, mev::Inspected{"exited"}),
            (Lines{"phase-ended rollback", "persist lost: " + lost, "finish lost: " + lost}));
  EXPECT_TRUE(m.done());
}

TEST(MigrationMachine, PostcopySourceHoldsNoCopyToResume_TheContainerIsLost) {
  MigrationMachine m = postcopyTransferring();
  m.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostA went down"), Fault::kHostDown));
  m.on(mev::DiscardAcked{});
  mev::Failed none = failed(Command::kRollbackSource, "hostA",
                            permanent("web is not on hostA: no frozen copy to resume"));
  none.no_frozen_copy = true;
  Lines out = feed(m, none);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[1].rfind("persist lost: web is lost: hostA went down;", 0), 0u) << out[1];
  EXPECT_NE(out[2].find("(web is not on hostA: no frozen copy to resume)"), std::string::npos) << out[2];
  // A resume that failed otherwise (runc) leaves a copy that may run yet.
  MigrationMachine stuck = postcopyTransferring();
  stuck.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostA went down")));
  stuck.on(mev::DiscardAcked{});
  Lines refused = feed(stuck, failed(Command::kRollbackSource, "hostA", permanent("runc failed")));
  EXPECT_EQ(refused.back(), "finish rolled-back: hostA went down (resume pending)");
  // A source only unreachable may still hold it: owed, not lost.
  MigrationMachine away = postcopyTransferring();
  away.on(failed(Command::kSendCheckpoint, "hostA", retryable("hostA went down")));
  away.on(mev::DiscardAcked{});
  Lines owed = feed(away, failed(Command::kRollbackSource, "hostA", retryable("not connected"),
                                 Fault::kNotConnected));
  EXPECT_EQ(owed.front(), "cleanup hostA resume");
}

// --- a coordinator restart ----------------------------------------------------

TEST(MigrationMachine, RestartWithTheSourceSilent_WaitsEvenAfterTheGrace) {
  auto m = MigrationMachine::afterRestart(spec(), Phase::kTransferring);
  EXPECT_TRUE(m.awaitingHosts());
  EXPECT_TRUE(m.on(mev::HostsSeen{.source = false, .target = true, .grace_over = true}).empty());
  EXPECT_TRUE(m.on(mev::HostsSeen{.source = true, .target = false, .grace_over = false}).empty());
  EXPECT_TRUE(m.awaitingHosts());
}

TEST(MigrationMachine, RestartWithTheTargetSilent_ResolvesOnceTheGraceIsOver) {
  auto m = MigrationMachine::afterRestart(spec(), Phase::kPrepared);
  Lines out = feed(m, mev::HostsSeen{.source = true, .target = false, .grace_over = true});
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out[0], "note: resumed after a coordinator restart at phase prepared");
}

TEST(MigrationMachine, RestartAtPlannedOrPrepared_RollsBackWithoutWaitingForTheTarget) {
  for (Phase p : {Phase::kPlanned, Phase::kPrepared}) {
    auto m = MigrationMachine::afterRestart(spec(), p);
    std::string why = "the coordinator restarted during phase " + std::string(phaseName(p));
    Lines expected = {"note: resumed after a coordinator restart at phase " +
                      std::string(phaseName(p))};
    for (const auto& l : rollingBack(why)) expected.push_back(l);
    EXPECT_EQ(feed(m, mev::HostsSeen{true, true, false}), expected);
    // The target, still away, owes its discard; nothing was streamed.
    EXPECT_EQ(feed(m, failed(Command::kDiscardTarget, "hostB", retryable("away")))[2], kResume);
    EXPECT_EQ(feed(m, mev::ResumeAcked{}), rolledBack(why));
  }
}

TEST(MigrationMachine, RestartDuringTransfer_RollsBackAndAsksTheSourceBeforeResuming) {
  auto m = MigrationMachine::afterRestart(spec(), Phase::kTransferring);
  std::string why = "the coordinator restarted during phase transferring";
  Lines out = feed(m, mev::HostsSeen{true, true, false});
  EXPECT_EQ(Lines(out.begin() + 1, out.end()), rollingBack(why));
  EXPECT_EQ(feed(m, failed(Command::kDiscardTarget, "hostB", retryable("away")))[2], kInspect);
  EXPECT_EQ(feed(m, mev::Inspected{"paused"})[0], "cleanup hostA resume-after-discard");
  EXPECT_TRUE(m.done());
}

TEST(MigrationMachine, RestartDuringTransferWithBothHostsBack_RollsBackCleanly) {
  auto m = MigrationMachine::afterRestart(spec(), Phase::kTransferring);
  m.on(mev::HostsSeen{true, true, false});
  expectCleanRollback(m, "the coordinator restarted during phase transferring");
}

TEST(MigrationMachine, RestartAfterTheTargetRestored_GoesForwardToTheCommit) {
  auto m = MigrationMachine::afterRestart(spec(), Phase::kRestored);
  EXPECT_EQ(feed(m, mev::HostsSeen{true, true, false}),
            (Lines{"note: resumed after a coordinator restart at phase restored", "report commit",
                   "send hostA commit-source web"}));
  EXPECT_EQ(feed(m, mev::CommitAcked{}).back(), "finish committed");
}

TEST(MigrationMachine, RestartOfAFinishedMigration_IsRefused) {
  EXPECT_THROW(MigrationMachine::afterRestart(spec(), Phase::kCommitted), Error);
}

// --- events that do not fit are bugs, said loudly ----------------------------

TEST(MigrationMachine, AnEventTheStepDoesNotExpect_ThrowsAndChangesNothing) {
  MigrationMachine m = committing();
  EXPECT_THROW(m.on(ticket()), Error);
  EXPECT_THROW(m.on(mev::Progress{}), Error);
  EXPECT_THROW(m.on(failed(Command::kCommitSource, "hostB", retryable("wrong host"))), Error);
  EXPECT_THROW(m.on(failed(Command::kDiscardTarget, "hostB", retryable("wrong command"))), Error);
  EXPECT_EQ(m.step(), Step::kCommit);
  EXPECT_TRUE(m.on(mev::HostsSeen{true, true, true}).empty()) << "resolved already";
  EXPECT_EQ(feed(m, mev::CommitAcked{}).back(), "finish committed");
  EXPECT_THROW(m.on(mev::CommitAcked{}), Error);
}

// --- work hosts owe once they are back --------------------------------------

TEST(OwedWork, EachCleanupIsCarriedOutByItsCommand) {
  EXPECT_EQ(cleanupCommand("discard"), Command::kDiscardTarget);
  EXPECT_EQ(cleanupCommand("discard-late"), Command::kDiscardTarget);
  EXPECT_EQ(cleanupCommand("resume"), Command::kRollbackSource);
  EXPECT_EQ(cleanupCommand("resume-after-discard"), Command::kRollbackSource);
  EXPECT_EQ(cleanupCommand("remove-frozen"), Command::kCommitSource);
  EXPECT_THROW(cleanupCommand("reboot"), Error);
}

TEST(OwedWork, TargetStillOwesItsDiscard_SourceResumeWaits) {
  EXPECT_TRUE(cleanupWaits("resume-after-discard", true));
  EXPECT_FALSE(cleanupWaits("resume-after-discard", false));
  EXPECT_FALSE(cleanupWaits("resume", true)) << "a plain resume had no target copy to wait for";
  EXPECT_FALSE(cleanupWaits("discard", true));
}

TEST(OwedWork, CleanupRefusedForGood_IsDroppedButRetriedWhenTheHostIsAway) {
  EXPECT_TRUE(cleanupGivesUp(permanent("no such container")));
  EXPECT_FALSE(cleanupGivesUp(retryable("hostB went down")));
}

FrozenSource frozen() {
  return {.migration = 7,
          .known = true,
          .resume_owed = true,
          .target_up = false,
          .container = "web",
          .source = "hostA",
          .target = "hostB",
          .source_status = "paused"};
}

std::string refusal(const FrozenSource& f) {
  try {
    checkResumeSource(f);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    return e.what();
  }
  return "";
}

TEST(OwedWork, FrozenSourceWithItsTargetDown_ResumesOnTheOperatorsWord) {
  EXPECT_NO_THROW(checkResumeSource(frozen()));
}

TEST(OwedWork, ResumeSourceOverride_RefusedWhereTwoCopiesCouldRun) {
  FrozenSource f = frozen();
  f.known = false;
  EXPECT_EQ(refusal(f), "no migration #7 (see `ferry history`)");
  f = frozen();
  f.resume_owed = false;
  EXPECT_EQ(
      refusal(f),
      "migration #7 left nothing frozen on hostA waiting for its target (see `ferry pending`)");
  f = frozen();
  f.target_up = true;
  EXPECT_EQ(refusal(f),
            "hostB is up: it discards what it received by itself, and web resumes on hostA "
            "right after; nothing to override");
  f = frozen();
  f.source_status = "running";
  EXPECT_EQ(refusal(f), "web is running on hostA, not frozen: nothing to resume");
  f.source_status.reset();
  EXPECT_EQ(refusal(f), "web is not there on hostA, not frozen: nothing to resume");
}

}  // namespace
}  // namespace ferry::coord
