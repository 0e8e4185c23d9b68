// ferry-engine: drives one host's engine directly, without a cluster. The
// host-local tool underneath ferry-agent (as runc is underneath podman); used
// by the single-host demo and for debugging a host.
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "common/cli_options.h"
#include "common/error.h"
#include "common/log.h"
#include "common/units.h"
#include "engine/engine.h"
#include "engine/engine_options.h"
#include "engine/spec/oci_spec.h"
#include "engine/spec/run_args.h"

using namespace ferry;
using nlohmann::json;

namespace {

constexpr const char* kDescription =
    "Drives one host's container engine directly (no coordinator, no network).";

constexpr const char* kFooter = R"(
Socket activation: when a service manager started ferry-engine with sockets
(LISTEN_PID is ours, LISTEN_FDS=N), `run` gives them to the container as fds
3.. with LISTEN_PID=1, LISTEN_FDS and LISTEN_FDNAMES, as Podman does; such a
container cannot be checkpointed. --sdnotify=container needs ferry-agent
(nothing here serves the socket once ferry-engine exits).

EXIT STATUS
  0 success; 1 failure (the message says what to do); 2 bad usage.

`ferry-engine COMMAND --help` describes each command.)";

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

// The global options, and what the chosen command does with the engine
// they configure.
struct Cli {
  EngineConfig cfg;
  Activation activation;
  bool json_out = false;
  bool quiet = false;
  std::function<int(Engine&)> action;
};

// An engine refusal of a value (a signal, a run option) as a usage error.
template <class F>
auto usage(F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());
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

void printLogs(const std::vector<LogLine>& lines, bool as_json) {
  if (as_json) {
    json out = json::array();
    for (const auto& l : lines)
      out.push_back({{"time", l.time}, {"stream", l.stream}, {"text", l.text}});
    std::cout << out.dump(2) << "\n";
    return;
  }
  for (const auto& l : lines) (l.stream == "stderr" ? std::cerr : std::cout) << l.text << "\n";
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

void printCheckpoint(const CheckpointResult& r, const std::string& name, const std::string& where,
                     bool as_json) {
  if (as_json) {
    std::cout << json(r).dump(2) << "\n";
    return;
  }
  std::printf(
      "checkpointed %s to %s in %lld ms (dump %lld ms, frozen %.1f ms); memory %s, "
      "rootfs changes %s, volumes %s",
      name.c_str(), where.c_str(), (long long)r.total_ms, (long long)r.dump_ms,
      r.criu ? r.criu->frozen_time_us / 1000.0 : 0.0, formatBytes(r.memory_bytes).c_str(),
      formatBytes(r.rootfs_bytes).c_str(), formatBytes(r.volume_bytes).c_str());
  if (r.bundle_bytes) std::printf("; bundle %s", formatBytes(r.bundle_bytes).c_str());
  std::printf("\n");
}

void printRestore(const RestoreResult& r, bool as_json) {
  if (as_json) {
    std::cout << json(r).dump(2) << "\n";
    return;
  }
  for (const auto& w : r.warnings) std::fprintf(stderr, "warning: %s\n", w.message.c_str());
  std::printf("restored %s in %lld ms (pid %d)\n", r.container.name().c_str(),
              (long long)r.total_ms, r.container.pid);
}

// Makes `sub` the chosen command: `action` runs with the engine once the
// whole command line has parsed.
void setAction(CLI::App* sub, Cli& cli, std::function<int(Engine&)> action) {
  sub->callback([&cli, action = std::move(action)] { cli.action = action; });
}

void addImageCommands(CLI::App& app, Cli& cli) {
  CLI::App* image = app.add_subcommand("image", "images on this host");
  image->require_subcommand(1);
  auto name = std::make_shared<std::string>();
  auto file = std::make_shared<std::string>();
  CLI::App* imp = image->add_subcommand(
      "import",
      "import a rootfs tarball (tar, tar.gz, tar.zst) or an OCI image layout (directory "
      "or tar)");
  imp->add_option("name", *name, "the image's name")->required();
  imp->add_option("file", *file, "the tarball or layout")->required()->type_name("FILE|DIR");
  setAction(imp, cli, [&cli, name, file](Engine& e) {
    ImageRecord img = e.images().import(*name, *file);
    if (cli.json_out) {
      std::cout << json(img).dump(2) << "\n";
    } else {
      std::printf("imported %s as %s (%s)\n", name->c_str(), img.id.substr(0, 12).c_str(),
                  formatBytes(img.size_bytes).c_str());
    }
    return 0;
  });
  setAction(image->add_subcommand("ls", "list images"), cli, [&cli](Engine& e) {
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
  });
}

void addRun(CLI::App& app, Cli& cli) {
  CLI::App* run = app.add_subcommand("run", "create and start a container");
  run->footer(std::string("\nferry-engine run --name N [RUN OPTIONS] IMAGE [CMD...]\n\n"
                          "RUN OPTIONS (as Podman's)\n") +
              kRunOptionsHelp);
  // Everything after `run`, options and all, in order: the container's
  // command line may hold anything, --json included (as `ferry run`).
  run->fallthrough(false);
  run->prefix_command();
  run->allow_extras();
  run->callback([run, &cli] {
    auto spec = std::make_shared<ContainerSpec>(
        usage([&] { return specFromRunArgs(runArgsFromWords(run->remaining())); }));
    cli.action = [&cli, spec](Engine& e) {
      spec->listen_fds = cli.activation.fds;
      spec->listen_fdnames = cli.activation.names;
      ContainerInfo c = e.run(*spec);
      if (cli.json_out)
        std::cout << json(c).dump(2) << "\n";
      else
        std::printf("%s running (pid %d)\n", c.name().c_str(), c.pid);
      return 0;
    };
  });
}

// A command of one container NAME, doing `act` with it.
CLI::App* addOnContainer(CLI::App& app, Cli& cli, const std::string& command,
                         const std::string& description,
                         std::function<int(Engine&, const std::string&)> act) {
  auto name = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(command, description);
  sub->add_option("name", *name, "the container")->required();
  setAction(sub, cli, [name, act = std::move(act)](Engine& e) { return act(e, *name); });
  return sub;
}

void addContainerCommands(CLI::App& app, Cli& cli) {
  setAction(app.add_subcommand("ps", "list containers"), cli, [&cli](Engine& e) {
    printContainers(e.list(), cli.json_out);
    return 0;
  });
  addOnContainer(app, cli, "inspect", "show one container (JSON)", [](Engine& e, auto& name) {
    std::cout << json(e.inspect(name)).dump(2) << "\n";
    return 0;
  });
  addOnContainer(app, cli, "logs", "print the container's output", [&cli](Engine& e, auto& name) {
    printLogs(e.logs(name), cli.json_out);
    return 0;
  });
  auto timeout = std::make_shared<std::chrono::milliseconds>(std::chrono::seconds(10));
  CLI::App* stop = addOnContainer(
      app, cli, "stop", "its stop signal (SIGTERM by default), then SIGKILL after the timeout",
      [&cli, timeout](Engine& e, auto& name) {
        ContainerInfo c = e.stop(name, *timeout);
        if (cli.json_out) {
          std::cout << json(c).dump(2) << "\n";
        } else {
          std::printf("%s %s", c.name().c_str(), std::string(statusName(c.status)).c_str());
          std::printf(c.exit_code ? " (exit code %d)\n" : "\n", c.exit_code.value_or(0));
        }
        return 0;
      });
  cli::addDuration(stop, "-t,--time", *timeout, std::chrono::seconds(1),
                   "how long to wait before SIGKILL (default 10s; a bare number is seconds)");
  auto signal = std::make_shared<int>(SIGKILL);
  CLI::App* kill =
      addOnContainer(app, cli, "kill", "send a signal", [signal](Engine& e, auto& name) {
        e.kill(name, *signal);
        return 0;
      });
  kill->add_option_function<std::string>(
          "-s,--signal", [signal](const std::string& v) { *signal = parseSignal(v); },
          "a number or a name, as TERM or SIGTERM (default KILL)")
      ->type_name("SIGNAL")
      ->check(cli::checkedBy([](const std::string& v) { parseSignal(v); }));
  auto force = std::make_shared<bool>(false);
  CLI::App* rm =
      addOnContainer(app, cli, "rm", "remove a container", [force](Engine& e, auto& name) {
        e.remove(name, *force);
        return 0;
      });
  rm->add_flag("-f,--force", *force, "also when it runs");
}

void addCheckpointCommands(CLI::App& app, Cli& cli) {
  struct Checkpoint {
    CheckpointOptions opts;
    BundleWriteOptions bundle;
    std::string name, dir, file;
  };
  auto c = std::make_shared<Checkpoint>();
  CLI::App* cp = app.add_subcommand(
      "checkpoint",
      "checkpoint a running container into a directory, or with --export into one bundle file "
      "(zstd-compressed, checksummed)");
  cp->add_option("name", c->name, "the container")->required();
  CLI::Option* dir = cp->add_option("dir", c->dir, "the checkpoint directory");
  CLI::Option* file =
      cp->add_option("--export", c->file, "write one bundle file instead")->type_name("FILE");
  dir->excludes(file);
  cp->add_flag("--leave-running", c->opts.leave_running,
               "keep the container running (paused during the dump)");
  cp->add_flag("--tcp-established", c->opts.tcp_established,
               "checkpoint established TCP connections");
  cp->add_flag("--file-locks", c->opts.file_locks, "checkpoint file locks");
  cp->add_option("--compress-level", c->bundle.level,
                 "zstd level of the bundle, 0 for none (default 3)")
      ->check(cli::countIn(0, 22));
  cp->callback([cp, c, &cli] {
    if (c->dir.empty() && c->file.empty())
      throw CLI::ValidationError("checkpoint needs a directory or --export FILE");
    cli.action = [&cli, c](Engine& e) {
      CheckpointResult r = c->file.empty() ? e.checkpoint(c->name, c->dir, c->opts)
                                           : exportToFile(e, c->name, c->file, c->opts, c->bundle);
      printCheckpoint(r, c->name, c->file.empty() ? r.dir.string() : c->file, cli.json_out);
      return 0;
    };
  });

  struct Restore {
    RestoreOptions opts;
    std::vector<std::string> ignore;
    std::string dir, file;
  };
  auto r = std::make_shared<Restore>();
  CLI::App* rs = app.add_subcommand(
      "restore",
      "restore a checkpoint on this host; its host metadata is checked against this "
      "host first");
  CLI::Option* rdir = rs->add_option("dir", r->dir, "the checkpoint directory");
  CLI::Option* rfile =
      rs->add_option("--import", r->file, "restore a bundle file instead")->type_name("FILE");
  rdir->excludes(rfile);
  rs->add_option("--name", r->opts.name, "restore under another name");
  rs->add_flag("--replace-volumes", r->opts.replace_volumes,
               "overwrite volumes of the same name that hold data");
  rs->add_option("--ignore", r->ignore,
                 "override one compatibility refusal on purpose (arch, cgroup, runtime, "
                 "criu-version, cpu-flags, page-size, network-lock, image); repeatable")
      ->type_name("CHECK")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  rs->callback([r, &cli] {
    if (r->dir.empty() && r->file.empty())
      throw CLI::ValidationError("restore needs a directory or --import FILE");
    r->opts.ignore.insert(r->ignore.begin(), r->ignore.end());
    cli.action = [&cli, r](Engine& e) {
      RestoreResult res;
      if (!r->file.empty()) {
        UniqueFd fd = openFile(r->file, O_RDONLY);
        FdSource src(fd.get(), r->file);
        res = e.importCheckpoint(src, r->opts);
      } else {
        res = e.restore(r->dir, r->opts);
      }
      printRestore(res, cli.json_out);
      return 0;
    };
  });
}

void buildApp(CLI::App& app, Cli& cli) {
  app.name("ferry-engine");
  app.description(kDescription);
  // Global options may also follow the command (`ferry-engine ps --json`).
  app.fallthrough();
  app.require_subcommand(1);
  cli::addVersionFlag(app);
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);  // as it always did
  app.add_option("--host", cli.cfg.host_name,
                 "host name (default: local); used in cgroup paths and records")
      ->type_name("NAME");
  addEngineOptions(app, cli.cfg, "HOST");
  app.add_flag("--json", cli.json_out, "print machine-readable JSON instead of tables");
  app.add_flag("-q,--quiet", cli.quiet, "log warnings and errors only");
  addImageCommands(app, cli);
  addRun(app, cli);
  addContainerCommands(app, cli);
  addCheckpointCommands(app, cli);
  setAction(app.add_subcommand("host-info", "what this host is (kernel, CRIU, runc, ...)"), cli,
            [](Engine& e) {
              std::cout << json(e.hostInfo()).dump(2) << "\n";
              return 0;
            });
  app.footer(kFooter);  // after the commands: each would take it as its own
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  cli.activation = takeListenFds();
  CLI::App app;
  buildApp(app, cli);
  if (auto end = cli::parseArgs(app, {argv + 1, argv + argc})) return cli::printParseExit(*end);
  if (cli.quiet || cli.json_out) engineLog().set_level(spdlog::level::warn);
  try {
    LocalCommandRunner runner;
    Engine engine(cli.cfg, runner);
    return cli.action(engine);
  } catch (const Error& e) {
    if (cli.json_out) {
      std::cout << json{{"error", e.what()}, {"category", categoryName(e.category())}}.dump(2)
                << "\n";
    }
    std::cerr << "ferry-engine: error: " << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ferry-engine: error: " << e.what() << "\n";
    return 1;
  }
}
