// Logging setup: one spdlog logger per component ("engine", "agent",
// "coordinator", "stream"), each created on first use. Thread-safe.
//
// On a terminal (or any stderr that is not the journal) lines go to stderr,
// coloured, as they always did. Under systemd, when stderr is the journal's
// stream ($JOURNAL_STREAM names it, systemd.exec(5)), each line goes to the
// journal instead, as one entry with fields to filter on:
//   FERRY_COMPONENT    the logger (engine, agent, coordinator, stream)
//   CONTAINER_NAME     the container a line is about (lines start "[name]";
//                      the field podman and docker use, so `journalctl
//                      CONTAINER_NAME=web` finds them all)
//   FERRY_MIGRATION_ID the coordinator's migration ("migration #42: ...")
//   FERRY_PHASE        the step of a migration (a LogFields scope sets it)
// plus whatever LogFields scopes on the logging thread add.
#pragma once

#include <spdlog/sinks/sink.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace ferry {
// The logger named `name`, created on first use.
spdlog::logger& componentLog(const char* name);
// The engine's logger: componentLog("engine").
spdlog::logger& engineLog();

// Whether this process's stderr is the journal's stream: $JOURNAL_STREAM
// ("DEV:INODE") names the file descriptor 2 refers to.
bool stderrIsJournal();

// A sink sending each message to the journal (sd_journal_sendv, the
// journal's native protocol) with the fields above; `component` becomes
// FERRY_COMPONENT and the program's name SYSLOG_IDENTIFIER.
std::shared_ptr<spdlog::sinks::sink> journalSink(const std::string& component);

// Fields added to every journal entry this thread logs while the scope
// lives (nested scopes add to the outer ones; an inner field of the same
// name wins). Names are the journal's: A-Z, 0-9 and _, not starting with _.
class LogFields {
 public:
  using Fields = std::vector<std::pair<std::string, std::string>>;
  explicit LogFields(Fields fields);
  LogFields(std::string name, std::string value)
      : LogFields(Fields{{std::move(name), std::move(value)}}) {}
  ~LogFields();
  LogFields(const LogFields&) = delete;
  LogFields& operator=(const LogFields&) = delete;

 private:
  size_t added_;
};

// For cleanup on a path that is already failing: runs f(), and logs instead
// of throwing, so one failed step does not skip the others or replace the
// error that started it.
template <class F>
void bestEffort(const char* what, F&& f) noexcept {
  try {
    f();
  } catch (const std::exception& e) {
    engineLog().warn("cleanup: {} failed: {}", what, e.what());
  } catch (...) {
    engineLog().warn("cleanup: {} failed", what);
  }
}
}  // namespace ferry
