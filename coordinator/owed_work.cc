#include "coordinator/owed_work.h"

namespace ferry::coord {

Command cleanupCommand(std::string_view action) {
  if (action == cleanupName(Cleanup::kDiscard) || action == "discard-late") {
    return Command::kDiscardTarget;
  }
  if (action == cleanupName(Cleanup::kResume) ||
      action == cleanupName(Cleanup::kResumeAfterDiscard)) {
    return Command::kRollbackSource;
  }
  if (action == cleanupName(Cleanup::kRemoveFrozen)) return Command::kCommitSource;
  throw Error(ErrorCategory::kPermanent, "unknown cleanup action '" + std::string(action) + "'");
}

bool cleanupWaits(std::string_view action, bool discard_owed) {
  return action == cleanupName(Cleanup::kResumeAfterDiscard) && discard_owed;
}

bool cleanupGivesUp(const Error& e) { return e.category() != ErrorCategory::kRetryable; }

void checkResumeSource(const FrozenSource& f) {
  std::string id = std::to_string(f.migration);
  if (!f.known)
    throw Error(ErrorCategory::kInvalidInput, "no migration #" + id + " (see `ferry history`)");
  if (!f.resume_owed) {
    throw Error(ErrorCategory::kInvalidInput, "migration #" + id + " left nothing frozen on " +
                                                  f.source +
                                                  " waiting for its target (see `ferry pending`)");
  }
  if (f.target_up) {
    throw Error(ErrorCategory::kInvalidInput,
                f.target + " is up: it discards what it received by itself, and " + f.container +
                    " resumes on " + f.source + " right after; nothing to override");
  }
  if (f.source_status != "paused") {
    throw Error(ErrorCategory::kInvalidInput, f.container + " is " +
                                                  f.source_status.value_or("not there") + " on " +
                                                  f.source + ", not frozen: nothing to resume");
  }
}

}  // namespace ferry::coord
