// ferry-engine: drives one host's engine directly, without a cluster. The
// host-local tool underneath ferry-agent (as runc is underneath podman); used
// by the single-host demo and for debugging a host.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "common/error.h"
#include "common/log.h"
#include "engine/spec/run_args.h"
#include "tools/cli_util.h"

using namespace ferry;
using nlohmann::json;

namespace {

constexpr const char* kUsage = R"(usage: ferry-engine [GLOBAL OPTIONS] COMMAND [ARGS]

Drives one host's container engine directly (no coordinator, no network).

GLOBAL OPTIONS
  --host NAME        host name (default: local); used in cgroup paths and records
  --root DIR         state root (default: /var/lib/ferry/HOST)
  --run-dir DIR      runtime dir for runc state and sockets (default: /run/ferry/HOST)
  --cgroup-parent P  parent cgroup of the containers (default: /ferry/HOST)
  --criu PATH        CRIU to use (default: the one recorded by tools/install-deps.sh)
  --json             print machine-readable JSON instead of tables
  -q, --quiet        log warnings and errors only

COMMANDS
  image import NAME FILE|DIR   import a rootfs tarball (tar, tar.gz, tar.zst) or an
                               OCI image layout (directory or tar)
  image ls                     list images
  run [RUN OPTIONS] IMAGE [CMD...]
                               create and start a container (RUN OPTIONS below).
                               Socket activation: when a service manager started
                               ferry-engine with sockets (LISTEN_PID is ours,
                               LISTEN_FDS=N), the container gets them as fds 3..
                               with LISTEN_PID=1, LISTEN_FDS and LISTEN_FDNAMES, as
                               Podman does; such a container cannot be checkpointed.
                               --sdnotify=container needs ferry-agent (nothing here
                               serves the socket once ferry-engine exits)
  ps                           list containers
  inspect NAME                 show one container (JSON)
  logs NAME                    print the container's output
  stop [-t SECONDS] NAME       SIGTERM, then SIGKILL after the timeout (default 10)
  kill [-s SIGNAL] NAME        send a signal (number or name, default KILL)
  rm [-f] NAME                 remove a container (-f: also when running)
  checkpoint [OPTIONS] NAME DIR | --export FILE NAME
                               checkpoint a running container into a directory, or
                               into one bundle file (zstd-compressed, checksummed)
      --leave-running          keep the container running (paused during the dump)
      --tcp-established        checkpoint established TCP connections
      --file-locks             checkpoint file locks
      --compress-level N       zstd level of the bundle, 0 for none (default 3)
  restore [OPTIONS] DIR | --import FILE
                               restore a checkpoint on this host; its host metadata is
                               checked against this host first
      --name NAME              restore under another name
      --replace-volumes        overwrite volumes of the same name that hold data
      --ignore CHECK           override one compatibility refusal on purpose (arch,
                               cgroup, runtime, criu-version, cpu-flags, page-size, image)
  host-info                    what this host is (kernel, CRIU, runc, ...)

Exit status: 0 on success, 1 on failure (the message says what to do), 2 on
bad usage.

RUN OPTIONS
)";

// Socket activation (sd_listen_fds(3)): fds 3.. are this process's when
// LISTEN_PID names it. The variables are cleared so that no other child
// takes them; the fds become close-on-exec until a container is given them.
struct Activation {
  int fds = 0;
  std::string names;
};
Activation takeListenFds() {
  Activation a;
  const char* pid = std::getenv("LISTEN_PID");
  const char* n = std::getenv("LISTEN_FDS");
  if (pid && n && std::atol(pid) == static_cast<long>(::getpid())) {
    a.fds = std::max(0, std::atoi(n));
    if (const char* names = std::getenv("LISTEN_FDNAMES")) a.names = names;
  }
  for (const char* k : {"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"}) ::unsetenv(k);
  for (int fd = 3; fd < 3 + a.fds; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  return a;
}

struct Cli {
  EngineConfig cfg;
  Activation activation;
  bool json_out = false;
};

int parseSignal(const std::string& s) {
  static const std::map<std::string, int> names = {
      {"TERM", SIGTERM}, {"KILL", SIGKILL}, {"INT", SIGINT}, {"HUP", SIGHUP},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"QUIT", SIGQUIT}, {"STOP", SIGSTOP}, {"CONT", SIGCONT}};
  std::string n = s.rfind("SIG", 0) == 0 ? s.substr(3) : s;
  if (auto it = names.find(n); it != names.end()) return it->second;
  try {
    return std::stoi(s);
  } catch (const std::exception&) {
    throw UsageError("unknown signal '" + s + "'");
  }
}

void printContainers(const std::vector<ContainerInfo>& cs, bool as_json) {
  if (as_json) {
    std::cout << json(cs).dump(2) << "\n";
    return;
  }
  std::printf("%-20s %-13s %-8s %-20s %s\n", "NAME", "STATUS", "PID", "IMAGE", "COMMAND");
  for (const auto& c : cs) {
    std::string status(statusName(c.status));
    if (c.exit_code) status += " (" + std::to_string(*c.exit_code) + ")";
    std::string cmd;
    for (const auto& a : c.record.spec.args) cmd += (cmd.empty() ? "" : " ") + a;
    std::printf("%-20s %-13s %-8d %-20s %s\n", c.name().c_str(), status.c_str(), c.pid,
                c.record.spec.image.c_str(), cmd.c_str());
  }
}

int cmdImage(Engine& e, Args& a, const Cli& cli) {
  std::string sub = a.next("image subcommand (import, ls)");
  if (sub == "import") {
    std::string name = a.next("image name");
    std::string file = a.next("file or directory to import");
    ImageRecord img = e.images().import(name, file);
    if (cli.json_out) {
      std::cout << json(img).dump(2) << "\n";
    } else {
      std::printf("imported %s as %s (%s)\n", name.c_str(), img.id.substr(0, 12).c_str(),
                  formatBytes(img.size_bytes).c_str());
    }
    return 0;
  }
  if (sub == "ls") {
    auto imgs = e.images().list();
    if (cli.json_out) {
      std::cout << json(imgs).dump(2) << "\n";
      return 0;
    }
    std::printf("%-14s %-12s %10s  %s\n", "ID", "FORMAT", "SIZE", "NAMES");
    for (const auto& i : imgs) {
      std::string names;
      for (const auto& n : i.names) names += (names.empty() ? "" : ",") + n;
      std::printf("%-14s %-12s %9.1fM  %s\n", i.id.substr(0, 12).c_str(), i.format.c_str(),
                  i.size_bytes / 1048576.0, names.c_str());
    }
    return 0;
  }
  throw UsageError("unknown image subcommand '" + sub + "'");
}

int cmdRun(Engine& e, Args& a, const Cli& cli) {
  RunArgs run;
  auto value = [&](const std::string& what) { return a.next(what); };
  while (a.more() && a.peek().rfind("-", 0) == 0) {
    std::string opt = a.next("option");
    if (opt == "--") break;
    bool taken = false;
    try {
      taken = takeRunOption(opt, value, run);
    } catch (const Error& e) {
      throw UsageError(e.what());
    }
    if (!taken) throw UsageError("unknown run option '" + opt + "'");
  }
  if (run.name.empty()) throw UsageError("run needs --name NAME");
  run.image = a.next("image");
  while (a.more()) run.args.push_back(a.next("arg"));
  ContainerSpec spec = specFromRunArgs(run);
  spec.listen_fds = cli.activation.fds;
  spec.listen_fdnames = cli.activation.names;
  ContainerInfo c = e.run(spec);
  if (cli.json_out) std::cout << json(c).dump(2) << "\n";
  else std::printf("%s running (pid %d)\n", c.name().c_str(), c.pid);
  return 0;
}

// Writes the bundle next to FILE and renames it into place only when
// complete: a failed export leaves no partial file behind.
CheckpointResult exportToFile(Engine& e, const std::string& name, const std::string& file,
                              const CheckpointOptions& o, const BundleWriteOptions& bundle) {
  std::string tmp = file + ".partial";
  UniqueFd fd = openFile(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
  try {
    FdSink sink(fd.get(), tmp);
    CheckpointResult r = e.exportCheckpoint(name, sink, o, bundle);
    if (::fsync(fd.get()) != 0) throwErrno("fsync " + tmp);
    if (::rename(tmp.c_str(), file.c_str()) != 0) throwErrno("rename " + tmp + " to " + file);
    return r;
  } catch (...) {
    ::unlink(tmp.c_str());
    throw;
  }
}

int cmdCheckpoint(Engine& e, Args& a, const Cli& cli) {
  CheckpointOptions o;
  BundleWriteOptions bundle;
  std::string export_file;
  for (;;) {
    if (a.flag("--leave-running")) o.leave_running = true;
    else if (a.flag("--tcp-established")) o.tcp_established = true;
    else if (a.flag("--file-locks")) o.file_locks = true;
    else if (a.flag("--export")) export_file = a.next("--export FILE");
    else if (a.flag("--compress-level")) bundle.level = std::stoi(a.next("--compress-level N"));
    else break;
  }
  std::string name = a.next("container name");
  CheckpointResult r;
  if (!export_file.empty()) {
    if (a.more()) throw UsageError("give either --export FILE or a directory, not both");
    r = exportToFile(e, name, export_file, o, bundle);
  } else {
    r = e.checkpoint(name, a.next("checkpoint directory (or --export FILE)"), o);
  }
  if (cli.json_out) {
    std::cout << json(r).dump(2) << "\n";
  } else {
    std::printf("checkpointed %s to %s in %lld ms (dump %lld ms, frozen %.1f ms); memory %s, "
                "rootfs changes %s, volumes %s",
                name.c_str(), export_file.empty() ? r.dir.c_str() : export_file.c_str(),
                (long long)r.total_ms, (long long)r.dump_ms,
                r.criu ? r.criu->frozen_time_us / 1000.0 : 0.0, formatBytes(r.memory_bytes).c_str(),
                formatBytes(r.rootfs_bytes).c_str(), formatBytes(r.volume_bytes).c_str());
    if (r.bundle_bytes) std::printf("; bundle %s", formatBytes(r.bundle_bytes).c_str());
    std::printf("\n");
  }
  return 0;
}

int cmdRestore(Engine& e, Args& a, const Cli& cli) {
  RestoreOptions o;
  std::string import_file;
  for (;;) {
    if (a.flag("--name")) o.name = a.next("--name value");
    else if (a.flag("--replace-volumes")) o.replace_volumes = true;
    else if (a.flag("--ignore")) o.ignore.insert(a.next("--ignore CHECK"));
    else if (a.flag("--import")) import_file = a.next("--import FILE");
    else break;
  }
  RestoreResult r;
  if (!import_file.empty()) {
    UniqueFd fd = openFile(import_file, O_RDONLY);
    FdSource src(fd.get(), import_file);
    r = e.importCheckpoint(src, o);
  } else {
    r = e.restore(a.next("checkpoint directory (or --import FILE)"), o);
  }
  if (cli.json_out) {
    std::cout << json(r).dump(2) << "\n";
  } else {
    for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.message.c_str());
    std::printf("restored %s in %lld ms (pid %d)\n", r.container.name().c_str(),
                (long long)r.total_ms, r.container.pid);
  }
  return 0;
}

int dispatch(Engine& e, Args& a, const Cli& cli) {
  std::string cmd = a.next("command (see --help)");
  if (cmd == "image") return cmdImage(e, a, cli);
  if (cmd == "run") return cmdRun(e, a, cli);
  if (cmd == "checkpoint") return cmdCheckpoint(e, a, cli);
  if (cmd == "restore") return cmdRestore(e, a, cli);
  if (cmd == "ps") return printContainers(e.list(), cli.json_out), 0;
  if (cmd == "inspect") return std::cout << json(e.inspect(a.next("container name"))).dump(2) << "\n", 0;
  if (cmd == "host-info") return std::cout << json(e.hostInfo()).dump(2) << "\n", 0;
  if (cmd == "logs") {
    auto lines = e.logs(a.next("container name"));
    if (cli.json_out) {
      json out = json::array();
      for (const auto& l : lines) out.push_back({{"time", l.time}, {"stream", l.stream}, {"text", l.text}});
      std::cout << out.dump(2) << "\n";
    } else {
      for (const auto& l : lines) (l.stream == "stderr" ? std::cerr : std::cout) << l.text << "\n";
    }
    return 0;
  }
  if (cmd == "stop") {
    int secs = a.flag("-t") ? std::stoi(a.next("-t seconds")) : 10;
    ContainerInfo c = e.stop(a.next("container name"), std::chrono::seconds(secs));
    if (cli.json_out) {
      std::cout << json(c).dump(2) << "\n";
    } else {
      std::printf("%s %s", c.name().c_str(), std::string(statusName(c.status)).c_str());
      std::printf(c.exit_code ? " (exit code %d)\n" : "\n", c.exit_code.value_or(0));
    }
    return 0;
  }
  if (cmd == "kill") {
    int sig = a.flag("-s") ? parseSignal(a.next("-s signal")) : SIGKILL;
    e.kill(a.next("container name"), sig);
    return 0;
  }
  if (cmd == "rm") {
    bool force = a.flag("-f") || a.flag("--force");
    e.remove(a.next("container name"), force);
    return 0;
  }
  throw UsageError("unknown command '" + cmd + "'");
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  cli.activation = takeListenFds();
  Args a{{argv + 1, argv + argc}};
  try {
    while (a.more() && a.peek().rfind("-", 0) == 0) {
      std::string opt = a.next("option");
      if (opt == "-h" || opt == "--help") return std::cout << kUsage << kRunOptionsHelp, 0;
      if (opt == "--host") cli.cfg.host_name = a.next("--host value");
      else if (opt == "--root") cli.cfg.root = a.next("--root value");
      else if (opt == "--run-dir") cli.cfg.run_dir = a.next("--run-dir value");
      else if (opt == "--criu") cli.cfg.tools.criu = a.next("--criu value");
      else if (opt == "--cgroup-parent") cli.cfg.cgroup_parent = a.next("--cgroup-parent value");
      else if (opt == "--json") cli.json_out = true;
      else if (opt == "-q" || opt == "--quiet") engineLog().set_level(spdlog::level::warn);
      else throw UsageError("unknown option '" + opt + "'");
    }
    if (cli.json_out) engineLog().set_level(spdlog::level::warn);
    LocalCommandRunner runner;
    Engine engine(cli.cfg, runner);
    return dispatch(engine, a, cli);
  } catch (const UsageError& e) {
    std::cerr << "ferry-engine: " << e.what() << "\n(see ferry-engine --help)\n";
    return 2;
  } catch (const Error& e) {
    if (cli.json_out) {
      std::cout << json{{"error", e.what()}, {"category", categoryName(e.category())}}.dump(2) << "\n";
    }
    std::cerr << "ferry-engine: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ferry-engine: error: " << e.what() << "\n";
    return 1;
  }
}
