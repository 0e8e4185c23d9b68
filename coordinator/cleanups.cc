// Work hosts owe after a migration ended while they were unreachable: kept
// in the store as cleanups, carried out when each host is heard from again
// (by the rules of owed_work.h), listed by `ferry pending`, and the
// operator's override for a source left frozen (`ferry resume-source`).
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_util.h"
#include "coordinator/owed_work.h"

namespace ferry::coord {

using detail::log;
using detail::noFrozenCopy;

proto::Fill detail::fillCleanup(Command c, const std::string& container, int64_t migration) {
  switch (c) {
    case Command::kDiscardTarget:
      return [container, migration](proto::Message::Builder b) {
        auto d = b.initDiscardTarget();
        d.setMigration(static_cast<uint64_t>(migration));
        d.setContainer(container);
      };
    case Command::kRollbackSource:
      return [container](proto::Message::Builder b) { b.setRollbackSource(container); };
    case Command::kCommitSource:
      return [container](proto::Message::Builder b) { b.setCommitSource(container); };
    default:
      throw Error(ErrorCategory::kPermanent,
                  "internal: " + std::string(commandName(c)) + " is not a cleanup's command");
  }
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
      std::string waiting = hostUp(c.host) ? "retried shortly" : c.host + " to be back";
      if (cleanupWaits(c.action, store_.hasCleanup(c.migration, "discard"))) {
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
// when it is back).
void Coordinator::resumeSourceNow(const Request& r, int64_t id) {
  FrozenSource f{.migration = id};
  std::optional<CleanupRow> owed;
  if (auto m = store_.migration(id)) {
    f.known = true;
    f.container = m->container;
    f.source = m->source;
    f.target = m->target;
    for (const CleanupRow& c : store_.cleanups(m->source)) {
      if (c.migration == id && c.action == cleanupName(Cleanup::kResumeAfterDiscard)) owed = c;
    }
    f.resume_owed = owed.has_value();
    f.target_up = hostUp(m->target);
    if (auto here = store_.container(m->source, m->container)) f.source_status = here->status;
  }
  checkResumeSource(f);
  requireHost(f.source, "source");
  log().warn("migration #{}: the operator resumes {} on {} with {} unreachable", id, f.container,
             f.source, f.target);
  Client c{r.peer, r.id};
  CleanupRow row = *owed;
  cleanup_retry_[row.id] = Steady::time_point::max();  // not also sent by runCleanups meanwhile
  command(
      f.source, "resume " + f.container + " (operator, migration #" + std::to_string(id) + ")",
      detail::fillCleanup(Command::kRollbackSource, row.container, id), opts_.command_timeout,
      [this, c, row, target = f.target](proto::Message::Reader) {
        store_.removeCleanup(row.id);
        cleanup_retry_.erase(row.id);
        // The target's discard stays owed, but no longer blocks the
        // container (it runs here): only that migration's copy goes.
        for (const CleanupRow& d : store_.cleanups(target)) {
          if (d.migration == row.migration && d.action == cleanupName(Cleanup::kDiscard)) {
            store_.setCleanupAction(d.id, "discard-late");
          }
        }
        store_.addEvent(clock_(), "cleanup", row.container,
                        "resumed on " + row.host + " by the operator (migration #" +
                            std::to_string(row.migration) + "); " + target +
                            " still discards its copy when it is back");
        server_.sendTo(c.peer, c.id, [](proto::Message::Builder b) { b.setOk(); });
      },
      [this, c, row](const Error& e, Fault) {
        cleanup_retry_.erase(row.id);
        sendError(c, e);
      });
}

// An owed resume refused for good: when the source says it holds no frozen
// copy (none at all, or one that is neither paused nor running), the
// rollback's target discarded its own, and no copy of the container's state
// is left. (Its answer, not the heartbeats' cache: a host's cleanups run at
// its hello, before its first heartbeat.)
void Coordinator::resumeFoundNoCopy(const CleanupRow& c, const Error& e) {
  if (!noFrozenCopy(e)) return;
  auto m = store_.migration(c.migration);
  if (!m || m->phase != Phase::kRolledBack) return;
  std::string why = c.container + " is lost: " + m->error + "; " + c.host +
                    " was owed its resume, but its copy did not survive (" + e.what() + ")";
  store_.markLost(c.migration, clock_(), why);
  store_.addEvent(clock_(), "migration", c.container,
                  "#" + std::to_string(c.migration) + " lost: " + why);
  log().error("migration #{}: {}", c.migration, why);
}

void Coordinator::runCleanups(const std::string& host) {
  auto now = Steady::now();
  for (const CleanupRow& c : store_.cleanups(host)) {
    auto it = cleanup_retry_.find(c.id);
    if (it != cleanup_retry_.end() && it->second > now) continue;
    if (cleanupWaits(c.action, store_.hasCleanup(c.migration, "discard"))) continue;
    proto::Fill fill;
    try {
      fill = detail::fillCleanup(cleanupCommand(c.action), c.container, c.migration);
    } catch (const Error& e) {
      log().error("cleanup #{}: {}", c.id, e.what());
      continue;
    }
    cleanup_retry_[c.id] = Steady::time_point::max();  // in flight: not again until it ends
    command(
        host,
        c.action + " " + c.container + " (left by migration #" + std::to_string(c.migration) + ")",
        fill, opts_.command_timeout,
        [this, c](proto::Message::Reader) {
          store_.removeCleanup(c.id);
          cleanup_retry_.erase(c.id);
          // Ahead of the host's next heartbeat: names are unique in the
          // cluster, so the row there is the copy just discarded (a
          // container the agent kept comes back with that heartbeat).
          if (cleanupCommand(c.action) == Command::kDiscardTarget) {
            store_.removeContainer(c.host, c.container);
          }
          store_.addEvent(clock_(), "cleanup", c.container,
                          c.action + " on " + c.host + " done (migration #" +
                              std::to_string(c.migration) + ")");
          log().info("cleanup: {} {} on {} done", c.action, c.container, c.host);
        },
        [this, c](const Error& e, Fault) {
          cleanup_retry_[c.id] = Steady::now() + kCleanupRetry;
          if (cleanupGivesUp(e)) {
            store_.removeCleanup(c.id);  // would fail the same way forever
            store_.addEvent(clock_(), "cleanup", c.container,
                            c.action + " on " + c.host + " gave up: " + e.what());
            if (cleanupCommand(c.action) == Command::kRollbackSource) resumeFoundNoCopy(c, e);
          }
          log().warn("cleanup: {} {} on {} failed: {}", c.action, c.container, c.host, e.what());
        });
  }
}

}  // namespace ferry::coord
