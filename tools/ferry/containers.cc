// run, stop, rm, ps, logs: a container's life on one host.
#include <atomic>
#include <iostream>
#include <thread>

#include "common/error.h"
#include "common/names.h"
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

// The run options are the engine's (takeRunOption, as Podman's); CLI11 only
// hands them over in order, since everything after IMAGE is the container's
// own command line and must not be read as ferry's.
RunArgs runArgsOf(std::vector<std::string> rest) {
  RunArgs run;
  size_t i = 0;
  auto value = [&](const std::string& what) {
    if (i >= rest.size()) throw CLI::ValidationError("missing " + what);
    return rest[i++];
  };
  while (i < rest.size()) {
    if (!run.image.empty()) {
      run.args.push_back(rest[i++]);
      continue;
    }
    std::string o = rest[i++];
    // --opt=value as --opt value: takeRunOption reads separate words.
    if (size_t eq = o.find('='); o.rfind("--", 0) == 0 && eq != std::string::npos) {
      rest.insert(rest.begin() + static_cast<std::ptrdiff_t>(i), o.substr(eq + 1));
      o.resize(eq);
    }
    bool taken = false;
    try {
      taken = takeRunOption(o, value, run);
    } catch (const Error& e) {
      throw CLI::ValidationError(e.what());
    }
    if (taken) continue;
    if (o.rfind("-", 0) == 0) throw CLI::ValidationError("unknown run option '" + o + "'");
    run.image = o;
  }
  if (run.name.empty()) throw CLI::ValidationError("run needs --name N");
  if (run.image.empty()) throw CLI::ValidationError("run needs an IMAGE");
  try {
    validateName(run.name, "container name");
  } catch (const Error& e) {
    throw CLI::ValidationError(e.what());
  }
  for (const auto& e : run.env) {
    if (e.find('=') == std::string::npos)
      throw CLI::ValidationError("-e wants KEY=VALUE, got '" + e + "'");
  }
  return run;
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
    Table rows = {{"NAME", "HOST", "IMAGE", "STATUS", "READY", "MEMORY"}};
    for (auto c : list) {
      std::string ready = c.getReady() ? "yes" : "no";
      if (c.getNotifyStatus().size() > 0) ready += " (" + text(c.getNotifyStatus()) + ")";
      rows.push_back({text(c.getName()), text(c.getHost()), text(c.getImage()),
                      text(c.getStatus()), ready,
                      c.getMemoryBytes() ? formatBytes(c.getMemoryBytes()) : "-"});
    }
    printTable(rows);
    return 0;
  });
}

int logs(Session& s, const std::string& name, bool follow) {
  size_t printed = 0;
  std::string last;  // the last line printed
  for (;;) {
    std::vector<std::string> lines;
    try {
      auto r = s.call([&](proto::Message::Builder m) { m.setGetLogs(name); });
      for (auto l : r->root<proto::Message>().getLogs()) lines.push_back(text(l));
    } catch (const Error& e) {
      // While following, a container between two hosts is retried; one
      // that is gone ends the following.
      if (follow && e.category() == ErrorCategory::kInvalidInput && printed > 0) {
        std::cerr << "ferry: logs: " << name << " is gone\n";
        return 0;
      }
      if (!follow || e.category() != ErrorCategory::kRetryable) throw;
    }
    // A container that moved goes on with the log its checkpoint carried
    // (the last 16 MiB of it): when the last line printed is not where it
    // was (the log was cut, or came from a checkpoint without one), go on
    // after it, or from the start.
    if (printed > 0 && (lines.size() < printed || lines[printed - 1] != last)) {
      size_t k = lines.size();
      while (k > 0 && lines[k - 1] != last) --k;
      printed = k;
    }
    for (size_t i = printed; i < lines.size(); ++i) std::cout << lines[i] << "\n";
    std::cout.flush();
    if (lines.size() > printed) {
      printed = lines.size();
      last = lines.back();
    }
    if (!follow) return 0;
    // Polling, not synchronisation: the coordinator has no log push.
    for (int i = 0; i < 5 && !g_interrupted; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (g_interrupted) return 0;
  }
}

void addLogs(CLI::App& app, Invocation& inv) {
  auto name = std::make_shared<std::string>();
  auto follow = std::make_shared<bool>(false);
  CLI::App* l = app.add_subcommand(
      "logs", "a container's output; a migration carries the last 16 MiB of it");
  l->add_flag("-f,--follow", *follow,
              "follow it, across migrations, until interrupted or the container is gone");
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
