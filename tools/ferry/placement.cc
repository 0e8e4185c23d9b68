// cordon, uncordon, drain, rebalance: where containers may run, and moving
// them there.
#include <iostream>

#include "protocol/capnp_text.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/options.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

namespace {

constexpr const char* kPlanJson =
    "\nWith --json: the plan with each move's outcome (moved, failed, not started), migration id "
    "and downtime, the containers no host could take and why.";

// Runs a drain or rebalance request: the plan as it comes, each move's end,
// then the outcome. Exit 1 when something planned did not move (or, for a
// drain, a container could not be placed).
int runPlacement(Session& s, const proto::Fill& fill, bool drain) {
  ProgressLine line(onTerminal() && !s.json_out);
  auto r = s.call(fill, [&](proto::Progress::Reader p) {
    if (s.json_out) return;
    std::string phase = text(p.getPhase());
    if (phase == "plan" && p.hasPlan()) {
      line.clear();
      printPlan(placementJson(p.getPlan()));
    } else if (phase == "drain" || phase == "rebalance") {
      line.clear();
      std::cout << "  " << text(p.getMessage()) << "\n";
      std::cout.flush();
    } else {
      line.show(phase, p.getBytesDone(), p.getBytesTotal(), text(p.getMessage()));
    }
  });
  line.clear();
  json res = placementJson(r->root<proto::Message>().getPlacement());
  size_t moved = 0, left = 0;
  for (const auto& m : res["moves"]) {
    if (m["outcome"] == "moved")
      ++moved;
    else if (!res["dry_run"].get<bool>())
      ++left;
  }
  if (drain) left += res["unplaced"].size();
  if (s.json_out) {
    printJson(res);
  } else if (res["dry_run"].get<bool>()) {
    printPlan(res);
    std::cout << "dry run: nothing was changed\n";
  } else {
    for (const auto& m : res["moves"]) {
      if (m["outcome"] != "moved") {
        std::cout << "  " << m["container"].get<std::string>() << " "
                  << m["outcome"].get<std::string>() << ": " << m["error"].get<std::string>()
                  << "\n";
      }
    }
    std::cout << res["kind"].get<std::string>()
              << (drain ? " of " + res["host"].get<std::string>() : "") << ": " << moved << " of "
              << res["moves"].size() << " moved";
    if (drain && !res["unplaced"].empty())
      std::cout << ", " << res["unplaced"].size() << " could not be placed";
    std::cout << (left ? "; what was not moved still runs where it was" : "") << "\n";
  }
  return left ? 1 : 0;
}

void addCordon(CLI::App& app, Invocation& inv, bool cordoned) {
  auto host = std::make_shared<std::string>();
  CLI::App* c = app.add_subcommand(
      cordoned ? "cordon" : "uncordon",
      cordoned ? "the host takes no new containers and no migrations; what runs there stays"
               : "the host takes containers and migrations again");
  c->add_option("host", *host, "the host")->required();
  setAction(c, inv, [&inv, host, cordoned] {
    Session& s = inv.session;
    s.call([&](proto::Message::Builder m) {
      auto cm = m.initCordon();
      cm.setHost(*host);
      cm.setCordoned(cordoned);
    });
    if (s.json_out)
      printJson({{"host", *host}, {"cordoned", cordoned}});
    else
      std::cout << *host
                << (cordoned ? " cordoned: it takes no new containers\n"
                             : " uncordoned: it takes containers again\n");
    return 0;
  });
}

struct DrainOptions {
  std::string host;
  uint32_t parallel = 1;
  std::chrono::milliseconds deadline{0};  // 0: none
  bool dry = false;
};

void addDrain(CLI::App& app, Invocation& inv) {
  auto o = std::make_shared<DrainOptions>();
  CLI::App* d = app.add_subcommand(
      "drain",
      "cordon the host, then live-migrate every container off it, N at a time, each to the host "
      "with the most memory to spare that is up, uncordoned and compatible, spreading them out. "
      "Prints the plan, then each move as it ends. A failed move leaves that container running "
      "on the host; the others go on. Exits 1 if anything is left on it. A restarted coordinator "
      "carries an unfinished drain on.");
  d->footer(kPlanJson);
  d->add_option("host", o->host, "the host")->required();
  d->add_option("--parallel", o->parallel, "moves at a time (default 1)")->check(countIn(1, 16));
  addDuration(d, "--deadline", o->deadline, std::chrono::seconds(1),
              "no move starts after it (e.g. 90s, 10m, 1h; a bare number is seconds)");
  d->add_flag("--dry-run", o->dry, "print the plan and change nothing");
  setAction(d, inv, [&inv, o] {
    return runPlacement(
        inv.session,
        [&](proto::Message::Builder m) {
          auto dr = m.initDrain();
          dr.setHost(o->host);
          dr.setParallel(o->parallel);
          dr.setDeadlineMs(static_cast<uint64_t>(o->deadline.count()));
          dr.setDryRun(o->dry);
        },
        true);
  });
}

struct RebalanceOptions {
  bool dry = false;
  float high = 0, low = 0;  // 0: the coordinator's default
  uint32_t max_moves = 0;
};

void addRebalance(CLI::App& app, Invocation& inv) {
  auto o = std::make_shared<RebalanceOptions>();
  CLI::App* r = app.add_subcommand(
      "rebalance",
      "move containers off hosts whose memory load (what their containers use of what the host "
      "offers, ferry-agent --memory-capacity) is above the high mark onto hosts below the low "
      "mark, which take them while they stay at or below the high one: per host, one container "
      "that is enough alone (the smallest such), else the largest first; never onto a cordoned "
      "or incompatible host, never a container moved or tried in 10 min. Prints the plan, then "
      "carries it out. Exits 1 if a move failed.");
  r->footer(kPlanJson);
  r->add_flag("--dry-run", o->dry, "print the plan and change nothing");
  // CLI11's float conversion is strict (the whole word); the range excludes 0.
  auto percent = CLI::Validator(
      [](std::string& v) -> std::string {
        char* end = nullptr;
        float f = std::strtof(v.c_str(), &end);
        if (v.empty() || *end != '\0' || !(f > 0 && f <= 100))
          return "takes a percentage above 0 and at most 100, not '" + v + "'";
        return {};
      },
      "PCT", "percent");
  r->add_option("--high", o->high, "the high mark (default 80)")->check(percent);
  r->add_option("--low", o->low, "the low mark (default 50)")->check(percent);
  r->add_option("--max-moves", o->max_moves, "at most N moves (default 10)")
      ->check(countIn(1, 1u << 30));
  setAction(r, inv, [&inv, o] {
    return runPlacement(
        inv.session,
        [&](proto::Message::Builder m) {
          auto rb = m.initRebalance();
          rb.setDryRun(o->dry);
          rb.setHighPercent(o->high);
          rb.setLowPercent(o->low);
          rb.setMaxMoves(o->max_moves);
        },
        false);
  });
}

}  // namespace

void addPlacementCommands(CLI::App& app, Invocation& inv) {
  addCordon(app, inv, true);
  addCordon(app, inv, false);
  addDrain(app, inv);
  addRebalance(app, inv);
}

}  // namespace ferry::cli
