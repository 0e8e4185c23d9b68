// The processes of a local cluster (tools/cluster.h): started detached so they
// outlive the CLI, recognised later by pid *and* start time (a pid read from an
// old cluster.json may belong to another program by now), and stopped with
// SIGTERM, then SIGKILL.
//
// Internal to ferry_cluster. Thread-safety: plain functions; a ProcessRef is
// a value.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace ferry::cluster {

struct ProcessRef {
  std::string what;  // "coordinator", "agent hostA": for messages
  int pid = 0;
  uint64_t start_time = 0;         // see processStartTime(); 0: not known
  std::optional<int> wait_status;  // set once this process reaped it
};

// Starts argv in a session of its own (setsid), stdin /dev/null, stdout and
// stderr appended to `log`. Returns at once: the program may still fail.
// Throws Error when it cannot be started at all.
ProcessRef startDetached(std::string what, const std::vector<std::string>& argv,
                         const std::filesystem::path& log);

// Field 22 of /proc/PID/stat (clock ticks after boot), or 0 when there is no
// such process.
uint64_t processStartTime(int pid);

// Whether the process still runs: its pid is live (not a zombie) and has the
// recorded start time. Reaps it when it is this process's child and has
// exited (recording wait_status), so a stopped child leaves no zombie.
bool isRunning(ProcessRef& p);

// SIGTERM to each process still running, up to `grace` for all of them to
// exit, then SIGKILL (and up to 5 s more). Returns how many were running.
// Appends one line per process that had to be killed, or survived, to
// `problems`.
int stopProcesses(std::vector<ProcessRef>& procs, std::chrono::milliseconds grace,
                  std::vector<std::string>& problems);

// How a process ended, for messages: "exit code 1", "killed by signal 9",
// or "exited" when it was not this process's child.
std::string describeExit(const ProcessRef& p);

// The last `lines` lines written to `log` after byte `from`, each indented
// by four spaces; "    (nothing)" when there are none.
std::string logTail(const std::filesystem::path& log, uint64_t from, int lines = 10);

// The size of `log`, 0 when it does not exist: where this run's lines start.
uint64_t logSize(const std::filesystem::path& log);

}  // namespace ferry::cluster
