// The runtime driver: runc, with conmon as the per-container monitor, and
// CRIU (through runc) for checkpoint/restore. Knows nothing of images,
// volumes or records; the engine composes those.
//
// Blocking: every call blocks on the runc/conmon process it runs.
// Thread-safety: calls on different containers may run concurrently.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/runtime/config.h"
#include "engine/runtime/page_server_guard.h"
#include "engine/runtime/process.h"

namespace ferry {

namespace fs = std::filesystem;

struct RuncState {
  std::string id;
  pid_t pid = 0;
  std::string status;  // created | running | paused | stopped
  std::string bundle;
};

struct CheckpointOptions {
  bool leave_running = false;
  bool tcp_established = false;
  // Established TCP connections are dumped without their state and restore
  // closed (CRIU's tcp-close; through the container's CRIU config file, as
  // runc has no flag for it).
  bool tcp_close = false;
  bool file_locks = false;
  // With leave_running: the container stays paused (frozen) after the
  // checkpoint, for a migration that either removes it (commit) or resumes
  // it (rollback). Not a runc flag.
  bool keep_paused = false;
  // Post-copy: the dump leaves the memory out of the images and serves it
  // from CRIU's page server (Runtime::checkpointLazy); the restore fetches
  // it through a lazy-pages daemon. Needs keep_paused.
  bool lazy_pages = false;
  // With keep_paused, into a bundle: the memory streams into the bundle as
  // CRIU dumps it ("pages", checkpoint/page_stream.h) instead of going to
  // disk first. Not a restore option: the target's images are ordinary.
  bool stream_pages = false;
  // CRIU locks the container's network during the dump with nftables
  // (libnftables, in its own process) instead of its default, iptables: the
  // unlock alone takes less at each end, where iptables runs a handful of
  // iptables-restore processes (measured here: a lazy dump's unlock 65 ->
  // 28 ms, a restore's 61 -> 10 ms). The restore reads the method from
  // CRIU's inventory, so the caller asks for it only where the restoring
  // host's CRIU can lift it (a migration between two hosts whose
  // HostInfo::nftables_lock is true); the engine uses it only where its own
  // CRIU can, and records what it used in the checkpoint's HostInfo. Given
  // through CRIU_CONFIG_FILE: CRIU 4.1.1 crashes on network-lock in runc's
  // org.criu.config file (it reads argv, which that parse has not).
  bool nftables_lock = false;
};

// A dump with lazy pages, once CRIU has written everything but the memory:
// it keeps the tasks seized and frozen and serves their pages from a page
// server on 127.0.0.1:port() to one connection -- a lazy-pages daemon,
// through whatever tunnel -- until that connection ends; runc checkpoint
// exits then, and the container is as an ordinary --leave-running dump
// leaves it (paused here). Destroying it ends the serving first (a
// connection that closes at once), so the tasks are never left seized.
// The port is kept to root's connections from before CRIU listens until
// unguard() or its end (page_server_guard.h).
class LazyDump {
 public:
  LazyDump(Child runc, uint16_t port, fs::path work_dir, std::string id,
           std::unique_ptr<PageServerPortGuard> guard);
  ~LazyDump();
  LazyDump(const LazyDump&) = delete;
  LazyDump& operator=(const LazyDump&) = delete;

  uint16_t port() const { return port_; }
  // The agent is connected: CRIU closed its listening socket (it serves
  // one connection), so the port needs no guard any longer.
  void unguard() { guard_.reset(); }
  // Waits for runc checkpoint to end, after the page server's connection
  // did. Throws Error with CRIU's errors when it failed, kRetryable when it
  // did not end within `timeout` (it is killed then).
  void wait(std::chrono::milliseconds timeout);

 private:
  std::unique_ptr<PageServerPortGuard> guard_;  // declared first: destroyed after the serving ended
  Child runc_;
  uint16_t port_;
  fs::path work_;
  std::string id_;
  bool done_ = false;
};

// Post-copy's restore side: CRIU's lazy-pages daemon, started before the
// restore (which hands it the tasks' userfaultfds), fetching every page it
// lacks through `pages` -- one end of a connected pair whose other end the
// caller carries to the source's page server -- until all are in. A guard
// process (its own session: it outlives the agent) watches it. When the
// daemon fails, or the lifeline closes (abort(), destruction, or the
// agent's death), the guard kills the container first and only then lets
// the daemon go: the daemon holds the userfaultfds, and without them a
// missing page would read as zeros instead of blocking. The guard also
// holds the caller's end of the pair, so the agent's death reads to
// the daemon as silence, not as the end of the pages.
class LazyRestore {
 public:
  LazyRestore(Child guard, UniqueFd lifeline, fs::path log, std::string id);
  ~LazyRestore();  // abort() unless it ended
  LazyRestore(const LazyRestore&) = delete;
  LazyRestore& operator=(const LazyRestore&) = delete;

  // Whether the daemon ended with every page within `timeout` (false: it
  // still runs). Throws Error when it failed (the guard killed the
  // container).
  bool waitFor(std::chrono::milliseconds timeout);
  // Kills the container and ends the daemon; waits for both. Idempotent.
  void abort();
  // Runs once everything ended (e.g. removes the images the daemon read).
  void onEnd(std::function<void()> fn) { on_end_ = std::move(fn); }

 private:
  void finish();
  Child guard_;
  UniqueFd lifeline_;
  fs::path log_;
  std::string id_;
  bool done_ = false;
  std::function<void()> on_end_;
};

// Everything conmon needs to start (or restore) one container.
struct ConmonLaunch {
  std::string id;
  fs::path bundle;
  fs::path log_path;         // container stdout/stderr, k8s-file format
  fs::path exit_dir;         // conmon writes <exit_dir>/<id> with the exit code
  fs::path pid_file;
  fs::path conmon_pid_file;
  fs::path conmon_log;       // conmon's own stderr
  // Restore instead of create: CRIU image directory, runc's work path for
  // restore.log, and the options the checkpoint was taken with.
  std::optional<fs::path> restore_from;
  fs::path restore_work;
  CheckpointOptions restore_opts;
  // Socket activation: fds 3..3+listen_fds-1 of this process go to the
  // container (conmon --replace-listen-pid, runc's LISTEN_FDS support).
  int listen_fds = 0;
  std::string listen_fdnames;
};

// What runc's CRIU is given for a dump beside runc's flags: with
// opts.nftables_lock, CRIU_CONFIG_FILE naming work_dir/criu-dump.conf
// (written here: "network-lock nftables"); else nothing.
std::vector<std::string> criuDumpEnvironment(const fs::path& work_dir,
                                             const CheckpointOptions& opts);

class Runtime {
 public:
  Runtime(const EngineConfig& cfg, CommandRunner& runner);

  // Runs conmon, which runs `runc create` (or `runc restore --detach`) and
  // stays as the container's monitor. Returns the container's pid once runc
  // has created (restored) it. On failure throws Error with runc's message;
  // for a restore also CRIU's log path and its last Error lines.
  pid_t launch(const ConmonLaunch& l);

  void start(const std::string& id);
  // Sends a signal to the container's init.
  void kill(const std::string& id, int signal);
  void pause(const std::string& id);
  void resume(const std::string& id);
  // runc delete [--force]; a container runc does not know is not an error.
  void remove(const std::string& id, bool force);
  std::optional<RuncState> state(const std::string& id);
  // Every container runc knows under this engine's runc root, by id: one
  // `runc list` instead of a `runc state` per container.
  std::map<std::string, RuncState> list();

  // CRIU dump through runc into image_dir; CRIU's dump.log goes to work_dir.
  // With `page_server` (a port on 127.0.0.1) the memory goes there instead,
  // CRIU connecting to it (checkpoint/page_stream.h). Throws Error naming
  // the container, the log and its last Error lines.
  void checkpoint(const std::string& id, const fs::path& image_dir, const fs::path& work_dir,
                  const CheckpointOptions& opts, uint16_t page_server = 0);
  // CRIU's page server, taking a dump's records on `fd` (one end of a
  // connected pair, inherited under its number) and writing the pagemap
  // and pages images into `images`; its log is work/page-server.log.
  // Wait for its exit status: 0 only once every image is written.
  Child startPageServer(const fs::path& images, const fs::path& work, int fd);
  // The same with lazy pages: returns once CRIU reports the images written
  // and its page server listening (runc's --status-fd), the memory still
  // with the tasks. Throws as checkpoint() when the dump fails before.
  std::unique_ptr<LazyDump> checkpointLazy(const std::string& id, const fs::path& image_dir,
                                           const fs::path& work_dir, const CheckpointOptions& opts);

  // Starts the lazy-pages daemon (and its guard) for restoring `id` from
  // `images` with work directory `work` (where the restore finds the
  // daemon's socket); returns once it listens. `pages` goes to the daemon,
  // `caller_end` (the pair's other end) is held by the guard.
  std::unique_ptr<LazyRestore> startLazyPages(const std::string& id, const fs::path& images,
                                              const fs::path& work, int pages, int caller_end);

  const EngineConfig& config() const { return cfg_; }

 private:
  std::vector<std::string> runc(std::initializer_list<std::string> args) const;
  ProcessResult runRunc(const std::vector<std::string>& argv, const std::string& what);

  EngineConfig cfg_;
  CommandRunner& runner_;
  std::string runc_path_;
};

// The conmon that monitors container `id` (its pid from `pid_file`), held by
// a pidfd; empty when it has exited, or when that pid is no longer a conmon
// of `id`.
PidFd conmonPidFd(const fs::path& pid_file, const std::string& id);

// `runc list --format json`'s output (`null` when there is no container).
// Throws Error kPermanent when it is not that.
std::map<std::string, RuncState> parseRuncList(std::string_view out);

// Whether a failed `runc list` lost the race with a container's deletion
// (runc 1.1 stats each entry after reading the directory): worth a retry.
bool isRuncListVanishedRace(const ProcessResult& r, const fs::path& runc_root);

// The last `max` lines of a CRIU log that contain "Error" (CRIU's prefix for
// the lines that explain a failure), joined with "; ".
std::string lastCriuErrors(const fs::path& log, size_t max = 3);

// Resolves a program name through PATH (absolute paths are returned as they
// are). Throws Error kPermanent naming the program when it is not found.
std::string findProgram(const std::string& name);

}  // namespace ferry
