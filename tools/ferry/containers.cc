// run, stop, rm, ps, logs: a container's life on one host.
#include <atomic>
#include <chrono>
#include <iostream>
#include <optional>
#include <thread>

#include "common/error.h"
#include "engine/spec/run_args.h"
#include "protocol/capnp_text.h"
#include "protocol/convert/run_args_proto.h"
#include "tools/cli_util.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

std::atomic<bool> g_interrupted{false};

namespace {

struct RunOptions {
  std::string host;
  std::vector<std::string> rest;  // run options, IMAGE, CMD...: takeRunOption's to read
};

// The run options are the engine's (runArgsFromWords, as Podman's); CLI11
// only hands them over in order, since everything after IMAGE is the
// container's own command line and must not be read as ferry's.
RunArgs runArgsOf(const std::vector<std::string>& rest) {
  try {
    return runArgsFromWords(rest);
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());
  }
}

int runContainer(Session& s, const std::string& host, const RunArgs& run) {
  auto r = s.call([&](proto::Message::Builder m) {
    auto req = m.initRun();
    req.setHost(host);
    proto::fillRunSpec(req.initSpec(), run);
  });
  auto c = r->root<proto::Message>().getContainer();
  if (s.json_out)
    printJson(containerJson(c));
  else
    std::printf("%s runs on %s (pid %u)%s\n", run.name.c_str(), text(c.getHost()).c_str(),
                c.getPid(), run.sdnotify == "container" ? ", ready" : "");
  return 0;
}

void addRun(CLI::App& app, Invocation& inv) {
  auto o = std::make_shared<RunOptions>();
  CLI::App* run = app.add_subcommand("run", "create and start a container on a host");
  run->footer(std::string("\nferry run --host H --name N [RUN OPTIONS] IMAGE [CMD...]\n\nRUN OPTIONS (as Podman's)\n") + kRunOptionsHelp);
  run->add_option("--host", o->host, "the host (see `ferry hosts`)")->required();
  // The rest, options and all, in order: the container's command line may
  // hold anything, --json included, so nothing falls through to ferry's.
  run->fallthrough(false);
  run->prefix_command();
  run->allow_extras();
  run->callback([run, o, &inv] {
    o->rest = run->remaining();
    auto args = std::make_shared<RunArgs>(runArgsOf(o->rest));
    inv.command = "run";
    inv.action = [&inv, o, args] { return runContainer(inv.session, o->host, *args); };
  });
}

// Each name in turn; a failure is reported and the rest still go. Exit 1
// when any failed. One name prints what it always printed (an object with
// --json); several print one line each (an array with --json).
int eachName(Session& s, const std::string& verb, const std::vector<std::string>& names,
             const std::function<json(const std::string&)>& one) {
  json out = json::array();
  int failed = 0;
  for (const auto& n : names) {
    try {
      out.push_back(one(n));
    } catch (const Error& e) {
      if (names.size() == 1) throw;
      ++failed;
      std::cerr << "ferry: " << verb << " " << n << ": " << e.what() << "\n";
      if (s.json_out)
        out.push_back({{"name", n},
                       {"error", e.what()},
                       {"category", std::string(categoryName(e.category()))}});
    }
  }
  if (s.json_out) printJson(names.size() == 1 ? out[0] : out);
  return failed ? 1 : 0;
}

void addStop(CLI::App& app, Invocation& inv) {
  auto names = std::make_shared<std::vector<std::string>>();
  CLI::App* stop = app.add_subcommand(
      "stop", "stop containers (each its stop signal, SIGTERM by default, then SIGKILL after 10 s)");
  stop->add_option("name", *names, "the containers")->required();
  setAction(stop, inv, [&inv, names] {
    Session& s = inv.session;
    return eachName(s, "stop", *names, [&](const std::string& name) {
      auto r = s.call([&](proto::Message::Builder m) { m.setStop(name); });
      auto c = r->root<proto::Message>().getContainer();
      if (!s.json_out) std::printf("%s stopped on %s\n", name.c_str(), text(c.getHost()).c_str());
      return containerJson(c);
    });
  });
}

void addRm(CLI::App& app, Invocation& inv) {
  auto names = std::make_shared<std::vector<std::string>>();
  auto force = std::make_shared<bool>(false);
  CLI::App* rm = app.add_subcommand("rm", "remove containers");
  rm->add_flag("-f,--force", *force, "stop each first if it runs");
  rm->add_option("name", *names, "the containers")->required();
  setAction(rm, inv, [&inv, names, force] {
    Session& s = inv.session;
    return eachName(s, "rm", *names, [&](const std::string& name) {
      if (*force) {
        try {
          s.call([&](proto::Message::Builder m) { m.setStop(name); });
        } catch (const Error& e) {
          if (e.category() != ErrorCategory::kInvalidInput) throw;  // not running: removed below
        }
      }
      s.call([&](proto::Message::Builder m) { m.setRemove(name); });
      if (!s.json_out) std::printf("%s removed\n", name.c_str());
      return json{{"removed", name}};
    });
  });
}

void addPs(CLI::App& app, Invocation& inv) {
  auto host = std::make_shared<std::string>();
  CLI::App* ps = app.add_subcommand("ps", "containers, on all hosts or on one");
  ps->add_option("--host", *host, "only this host's");
  setAction(ps, inv, [&inv, host] {
    Session& s = inv.session;
    auto r = s.call([&](proto::Message::Builder m) { m.setListContainers(*host); });
    auto list = r->root<proto::Message>().getContainers();
    if (s.json_out) {
      json out = json::array();
      for (auto c : list) out.push_back(containerJson(c));
      printJson(out);
      return 0;
    }
    Table rows = {{"NAME", "HOST", "IMAGE", "STATUS", "READY", "MEMORY", "IP", "PORTS"}};
    for (auto c : list) {
      std::string ready = c.getReady() ? "yes" : "no";
      if (c.getNotifyStatus().size() > 0) ready += " (" + text(c.getNotifyStatus()) + ")";
      std::string ports;
      for (auto p : c.getPorts()) ports += (ports.empty() ? "" : ",") + text(p);
      rows.push_back({text(c.getName()), text(c.getHost()), text(c.getImage()),
                      text(c.getStatus()), ready,
                      c.getMemoryBytes() ? formatBytes(c.getMemoryBytes()) : "-",
                      c.getIp().size() > 0 ? text(c.getIp()) : "-", ports.empty() ? "-" : ports});
    }
    printTable(rows);
    return 0;
  });
}

// Following polls: the coordinator has no log push. Each poll returns only
// what was written since the last, so it can be short.
constexpr auto kFollowPoll = std::chrono::milliseconds(200);
// A container not found this long while followed is gone (a migration's
// commit moves it between two hosts in less).
constexpr auto kGoneAfter = std::chrono::seconds(2);

// Prints the log from its start, a chunk at a time, by offset; following,
// polls for what comes next, on whichever host the container is by then
// (the log moves with it, so the offset goes on there), until it has
// exited and everything is printed, or is gone, or SIGINT.
int logs(Session& s, const std::string& name, bool follow) {
  uint64_t offset = 0, mark = 0;
  bool found = false;  // the container was there at least once
  std::optional<std::chrono::steady_clock::time_point> missing_since;
  for (;;) {
    try {
      auto r = s.call([&](proto::Message::Builder m) {
        auto q = m.initGetLogsFrom();
        q.setContainer(name);
        q.setOffset(offset);
        q.setMark(mark);
      });
      auto c = r->root<proto::Message>().getLogChunk();
      if (c.getRestarted() && offset > 0)
        std::cerr << "ferry: logs: the log of " << name
                  << " is not the one read so far (cut or replaced); from its start\n";
      for (auto l : c.getLines()) std::cout << text(l) << "\n";
      std::cout.flush();
      offset = c.getNextOffset();
      mark = c.getMark();
      found = true;
      missing_since.reset();
      if (c.getMore()) continue;
      if (!follow || c.getEnded()) return 0;
    } catch (const Error& e) {
      // Following, a coordinator or agent busy or restarting is waited for;
      // a container not found is gone only once it stays so.
      bool missing = e.category() == ErrorCategory::kInvalidInput;
      if (!follow || (missing ? !found : e.category() != ErrorCategory::kRetryable)) throw;
      if (missing) {
        auto now = std::chrono::steady_clock::now();
        if (!missing_since) missing_since = now;
        if (now - *missing_since >= kGoneAfter) {
          std::cerr << "ferry: logs: " << name << " is gone\n";
          return 0;
        }
      }
    }
    for (auto waited = std::chrono::milliseconds(0); waited < kFollowPoll && !g_interrupted;
         waited += std::chrono::milliseconds(50))
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    if (g_interrupted) return 0;
  }
}

void addLogs(CLI::App& app, Invocation& inv) {
  auto name = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  CLI::App* l = app.add_subcommand(
      "logs", "a container's output; a migration carries the last 16 MiB of it");
  l->add_flag("-f,--follow", *follow,
              "follow it, across migrations, until the container has exited (and all of its "
              "output is shown), is gone, or SIGINT");
  l->add_option("name", *name, "the container")->required();
  setAction(l, inv, [&inv, name, follow] { return logs(inv.session, *name, *follow); });
}

}  // namespace

void addContainerCommands(CLI::App& app, Invocation& inv) {
  addRun(app, inv);
  addStop(app, inv);
  addRm(app, inv);
  addPs(app, inv);
  addLogs(app, inv);
}

}  // namespace ferry::cli
