// history, pending, resume-source: what migrations did, and what failed
// ones left owing.
#include <algorithm>
#include <iostream>

#include "protocol/capnp_text.h"
#include "protocol/figures_json.h"
#include "tools/cli_util.h"
#include "tools/ferry/commands.h"
#include "tools/ferry/options.h"
#include "tools/ferry/output.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

namespace {

int history(Session& s, uint32_t n) {
  auto r = s.call([&](proto::Message::Builder m) { m.setListHistory(n); });
  auto history = r->root<proto::Message>().getHistory();
  if (s.json_out) {
    std::cout << proto::figuresJson(history, true) << "\n";
    return 0;
  }
  Table rows = {{"ID", "CONTAINER", "FROM", "TO", "OUTCOME", "DOWNTIME", "TOTAL", "WIRE", "ERROR"}};
  for (auto f : history) {
    std::string err = text(f.getError());
    if (err.size() > 60) err = err.substr(0, 57) + "...";
    std::replace(err.begin(), err.end(), '\n', ' ');
    rows.push_back({std::to_string(f.getId()), text(f.getContainer()), text(f.getSource()),
                    text(f.getTarget()), text(f.getOutcome()),
                    std::to_string(f.getDowntimeMs()) + " ms",
                    std::to_string(f.getTotalMs()) + " ms", formatBytes(f.getBytesWire()), err});
  }
  printTable(rows);
  return 0;
}

int pending(Session& s) {
  auto r = s.call([](proto::Message::Builder m) { m.setListPending(); });
  json out = json::array();
  Table rows = {{"MIGRATION", "HOST", "OWES", "CONTAINER", "SINCE", "WAITING FOR"}};
  for (auto p : r->root<proto::Message>().getPending()) {
    out.push_back({{"id", p.getId()},
                   {"migration", p.getMigration()},
                   {"host", text(p.getHost())},
                   {"action", text(p.getAction())},
                   {"container", text(p.getContainer())},
                   {"since_ms", p.getSinceMs()},
                   {"waiting_for", text(p.getWaitingFor())}});
    rows.push_back({"#" + std::to_string(p.getMigration()), text(p.getHost()),
                    text(p.getAction()), text(p.getContainer()), utcTime(p.getSinceMs() / 1000),
                    text(p.getWaitingFor())});
  }
  if (s.json_out)
    printJson(out);
  else if (out.empty())
    std::printf("nothing pending\n");
  else
    printTable(rows);
  return 0;
}

int resumeSource(Session& s, uint64_t id, bool target_lost) {
  s.call([&](proto::Message::Builder m) {
    auto rs = m.initResumeSource();
    rs.setMigration(id);
    rs.setTargetLost(target_lost);
  });
  if (s.json_out)
    printJson({{"migration", id}, {"resumed", true}});
  else
    std::printf("migration #%llu: its source copy runs again\n",
                static_cast<unsigned long long>(id));
  return 0;
}

}  // namespace

void addHistoryCommands(CLI::App& app, Invocation& inv) {
  auto n = std::make_shared<uint32_t>(20);
  CLI::App* h = app.add_subcommand(
      "history", "the last N migrations with outcome, downtime, bytes and the time of each phase");
  h->add_option("-n", *n, "how many (default 20)")->check(countIn(1, 1u << 20));
  setAction(h, inv, [&inv, n] { return history(inv.session, *n); });

  CLI::App* p = app.add_subcommand(
      "pending",
      "what hosts still owe after failed migrations (a discard, a resume, a removal), carried "
      "out when they are back, and what each waits for");
  setAction(p, inv, [&inv] { return pending(inv.session); });

  auto id = std::make_shared<uint64_t>(0);
  auto lost = std::make_shared<bool>(false);
  CLI::App* rs = app.add_subcommand(
      "resume-source",
      "a migration whose target went away holding what it received leaves its source frozen "
      "until the target is back (two copies must never run); this resumes the source now, on "
      "your word that the target is gone or its copy is not running. Refused while the target "
      "is up -- and a host cut off from the network counts as down, so make sure its copy is "
      "stopped. The target still discards its copy when it is back");
  rs->add_option("migration", *id, "the migration's id (see `ferry pending`)")
      ->required()
      ->check(countIn(1, UINT64_MAX / 10));
  rs->add_flag("--target-lost", *lost, "you know the target is gone or its copy is not running");
  setAction(
      rs, inv, [&inv, id, lost] { return resumeSource(inv.session, *id, *lost); },
      [lost] {
        if (!*lost) {
          throw CLI::ValidationError(
              "resume-source runs the frozen source copy while the target may still hold a "
              "restored one; say --target-lost once you know the target is gone or its copy is "
              "not running (the target still discards its copy when it is back)");
        }
      });
}

}  // namespace ferry::cli
