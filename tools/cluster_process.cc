#include "tools/cluster_process.h"

#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "common/error.h"
#include "engine/runtime/process.h"
#include "engine/runtime/wait.h"

namespace ferry::cluster {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

ProcessRef startDetached(std::string what, const std::vector<std::string>& argv,
                         const fs::path& log) {
  // setsid(1) from util-linux: a forked child is never a process-group
  // leader, so setsid execs the program in place (same pid) in a new session.
  // The program then gets no SIGINT or SIGHUP meant for the CLI's terminal.
  std::vector<std::string> full = {"setsid"};
  full.insert(full.end(), argv.begin(), argv.end());
  Child child = spawnChild(full, log.string());
  ProcessRef p{std::move(what), child.pid(), 0, std::nullopt};
  p.start_time = processStartTime(p.pid);
  child.release();  // it is meant to outlive us; isRunning() reaps it if it exits first
  return p;
}

uint64_t processStartTime(int pid) {
  if (pid <= 0) return 0;
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(in, line)) return 0;
  // The command name (field 2) may hold spaces and parentheses: count fields
  // from the last ')'. Field 3 (state) follows it; starttime is field 22.
  auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(line.substr(close + 1));
  std::string field;
  for (int i = 3; i <= 22; ++i) {
    if (!(rest >> field)) return 0;
  }
  try {
    return std::stoull(field);
  } catch (const std::exception&) {
    return 0;
  }
}

bool isRunning(ProcessRef& p) {
  if (p.pid <= 0 || p.wait_status) return false;
  uint64_t start = processStartTime(p.pid);
  if (start == 0 || (p.start_time != 0 && start != p.start_time)) return false;
  int status = 0;
  // ECHILD (not our child) is the common case and says nothing.
  if (::waitpid(p.pid, &status, WNOHANG) == p.pid) {
    p.wait_status = status;
    return false;
  }
  return processAlive(p.pid);
}

namespace {

// Waits on each one's pidfd until none of `procs` runs or the deadline
// passes; whether none runs. Usually not our children (another `ferry`
// started them), which a pidfd waits for as well.
bool waitGone(std::vector<ProcessRef*>& procs, Clock::time_point deadline) {
  for (ProcessRef* p : procs) {
    PidFd fd = PidFd::open(p->pid);
    // Still running (start time and all) after the open: the pidfd is p's.
    if (!isRunning(*p)) continue;
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now());
    fd.waitExit(std::max(left, std::chrono::milliseconds(0)));
  }
  bool any = false;
  for (ProcessRef* p : procs) any = isRunning(*p) || any;
  return !any;
}

}  // namespace

int stopProcesses(std::vector<ProcessRef>& procs, std::chrono::milliseconds grace,
                  std::vector<std::string>& problems) {
  std::vector<ProcessRef*> running;
  for (auto& p : procs) {
    if (isRunning(p)) running.push_back(&p);
  }
  for (ProcessRef* p : running) ::kill(p->pid, SIGTERM);
  if (waitGone(running, Clock::now() + grace)) return static_cast<int>(running.size());
  for (ProcessRef* p : running) {
    if (!isRunning(*p)) continue;
    problems.push_back(p->what + " (pid " + std::to_string(p->pid) + ") did not stop within " +
                       std::to_string(grace.count()) + " ms of SIGTERM; killed it (SIGKILL)");
    ::kill(p->pid, SIGKILL);
  }
  if (!waitGone(running, Clock::now() + std::chrono::seconds(5))) {
    for (ProcessRef* p : running) {
      if (isRunning(*p)) {
        problems.push_back(p->what + " (pid " + std::to_string(p->pid) +
                           ") still runs after SIGKILL (stuck in the kernel?)");
      }
    }
  }
  return static_cast<int>(running.size());
}

std::string describeExit(const ProcessRef& p) {
  if (!p.wait_status) return "exited";
  int st = *p.wait_status;
  if (WIFEXITED(st)) return "exit code " + std::to_string(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) return "killed by signal " + std::to_string(WTERMSIG(st));
  return "exited";
}

uint64_t logSize(const fs::path& log) {
  std::error_code ec;
  auto n = fs::file_size(log, ec);
  return ec ? 0 : n;
}

std::string logTail(const fs::path& log, uint64_t from, int lines) {
  std::ifstream in(log, std::ios::binary);
  in.seekg(static_cast<std::streamoff>(from));
  std::vector<std::string> all;
  std::string line;
  while (std::getline(in, line)) all.push_back(line);
  std::string out;
  size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  for (size_t i = first; i < all.size(); ++i) out += "    " + all[i] + "\n";
  return out.empty() ? "    (nothing)\n" : out;
}

}  // namespace ferry::cluster
