// migrate: live-migrate one container between two hosts.
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

constexpr const char* kMigrateHelp =
    "live-migrate N from SRC to DST: compatibility is checked first; N's memory, rootfs changes "
    "and volumes are pre-copied while it runs; then N is frozen, what changed is streamed to DST "
    "and N is restored there. N's copy on SRC is deleted only once it runs on DST, and any "
    "failure leaves N running on SRC. Shows progress on a terminal; prints (--json: returns) "
    "downtime_ms, total_ms, bytes_raw, bytes_wire, final_bytes_wire (sent while frozen), each "
    "pre-copy round's bytes and time, whether post-copy ran and why (with --postcopy: "
    "postcopy_ms until the last page arrived, bytes_on_demand, bytes_pushed, bytes_held), the "
    "compression used and why (link_bytes_per_s: what the link carried, measured), and the time "
    "of each phase.";

struct MigrateOptions {
  std::string container, source, target;
  std::vector<std::string> ignore;
  int precopy = -1;
  bool tcp_close = false;
  int postcopy = -1;  // 1 --postcopy, 0 --no-postcopy, -1 auto
  int compress = -1;  // -1 auto, 0 none, else the zstd level
};

void printFigures(const MigrateOptions& o, proto::MigrationFigures::Reader f) {
  auto ull = [](uint64_t v) { return static_cast<unsigned long long>(v); };
  std::printf("migrated %s from %s to %s (migration #%llu)\n", o.container.c_str(),
              o.source.c_str(), o.target.c_str(), ull(f.getId()));
  std::printf("  downtime   %llu ms (frozen on %s until running on %s)\n", ull(f.getDowntimeMs()),
              o.source.c_str(), o.target.c_str());
  std::printf("  total      %llu ms\n", ull(f.getTotalMs()));
  std::printf("  bytes      %s raw, %s on the wire, %s of it while frozen\n",
              formatBytes(f.getBytesRaw()).c_str(), formatBytes(f.getBytesWire()).c_str(),
              formatBytes(f.getFinalBytesWire()).c_str());
  if (f.getPrecopy().size() > 0) std::printf("  pre-copy   %s\n", f.getPrecopy().cStr());
  for (auto r : f.getRounds()) {
    std::printf("    round %u  read %s, sent %s, %llu ms\n", r.getRound(),
                formatBytes(r.getReadBytes()).c_str(), formatBytes(r.getSentBytes()).c_str(),
                ull(r.getMs()));
  }
  if (f.getPostcopy().size() > 0) std::printf("  post-copy  %s\n", f.getPostcopy().cStr());
  if (f.getPostcopyMs() > 0 || f.getBytesOnDemand() + f.getBytesPushed() > 0) {
    std::printf("    every page on %s %llu ms after the restore: %s on demand, %s pushed",
                o.target.c_str(), ull(f.getPostcopyMs()), formatBytes(f.getBytesOnDemand()).c_str(),
                formatBytes(f.getBytesPushed()).c_str());
    if (f.getBytesHeld() > 0) {
      std::printf(", %s held there from pre-copy", formatBytes(f.getBytesHeld()).c_str());
    }
    std::printf("\n");
  }
  if (f.getCompression().size() > 0) std::printf("  compression %s\n", f.getCompression().cStr());
  std::printf("  phases     %s\n", phasesLine(f).c_str());
}

int migrate(Session& s, const MigrateOptions& o) {
  ProgressLine line(onTerminal() && !s.json_out);
  auto r = s.call(
      [&](proto::Message::Builder m) {
        auto mg = m.initMigrate();
        mg.setContainer(o.container);
        mg.setSource(o.source);
        mg.setTarget(o.target);
        mg.setPrecopy(o.precopy);
        mg.setTcpClose(o.tcp_close);
        mg.setPostcopy(static_cast<int8_t>(o.postcopy));
        mg.setCompress(o.compress);
        auto il = mg.initIgnore(static_cast<unsigned>(o.ignore.size()));
        for (size_t i = 0; i < o.ignore.size(); ++i)
          il.set(static_cast<unsigned>(i), o.ignore[i]);
      },
      [&](proto::Progress::Reader p) {
        line.show(text(p.getPhase()), p.getBytesDone(), p.getBytesTotal(), text(p.getMessage()));
      });
  line.clear();
  auto f = r->root<proto::Message>().getMigration();
  if (s.json_out) {
    std::cout << proto::figuresJson(f, true) << "\n";
    return 0;
  }
  printFigures(o, f);
  for (auto w : f.getWarnings()) std::fprintf(stderr, "warning: %s\n", w.cStr());
  return 0;
}

}  // namespace

void addMigrateCommand(CLI::App& app, Invocation& inv) {
  auto o = std::make_shared<MigrateOptions>();
  CLI::App* mg = app.add_subcommand("migrate", kMigrateHelp);
  // Not ->required(): one message for any that is missing, the one it always was.
  mg->add_option("container", o->container, "N, the container");
  mg->add_option("source", o->source, "SRC, the host it runs on");
  mg->add_option("target", o->target, "DST, the host it is to run on");
  mg->add_option_function<std::string>(
        "--precopy", [o](const std::string& v) { o->precopy = parsePrecopy(v); },
        "auto|off|R: at most R rounds (1-20) before the freeze, fewer when what a round sends "
        "falls under the goal or stops shrinking; off: freeze at once; auto (default): up to 4 "
        "rounds when its memory, rootfs changes and volumes come to 32 MiB or more, none for "
        "less, nor (without post-copy) for a DST on this machine's loopback unless its rootfs "
        "changes and volumes alone reach 32 MiB. With post-copy the rounds go first "
        "(the hybrid): only what changed since the last one is left for post-copy")
      ->type_name("MODE");
  mg->add_option_function<std::string>(
        "--compress", [o](const std::string& v) { o->compress = parseCompress(v); },
        "auto|none|L: how the stream is compressed. auto (default): none to a DST on SRC's own "
        "machine; over a link elsewhere, SRC measures what the link carries first (before the "
        "freeze), then sends each record at zstd level 1 only while compressing is measured, on "
        "N's own data, to move it at least 10 % faster than the link moves it raw -- the result "
        "says what was measured and chosen (link_bytes_per_s). none: raw; L: zstd level L "
        "(1-19) for every record")
      ->type_name("MODE");
  mg->add_flag_callback(
      "--postcopy", [o] { o->postcopy = 1; },
      "post-copy: freeze N, restore it on DST at once with only what is not memory, and let its "
      "memory follow -- the pages it touches on demand, the rest pushed -- so the pause does not "
      "grow with memory; N's copy on SRC stays (frozen) until every page is on DST. If DST or "
      "the link fails meanwhile, N resumes on SRC from the freeze and what it did on DST since "
      "is lost; if SRC dies, N is lost -- pre-copy rounds first (--precopy, auto by default) "
      "shorten that window to what changed since them. Refused where a host cannot (ferry "
      "hosts says why). Default auto: on where both hosts can and N has 256 MiB of memory or "
      "more (the result says what was chosen and why)");
  mg->add_flag_callback(
      "--no-postcopy", [o] { o->postcopy = 0; }, "never post-copy (auto would choose it)");
  mg->add_flag("--tcp-close", o->tcp_close,
              "drop N's open TCP connections (its peers see them reset) instead of keeping them "
              "across the move; N runs on, and its listening sockets stay");
  // One CHECK per --ignore, given again for more: a vector option would
  // otherwise also take the positional arguments after it.
  mg->add_option("--ignore", o->ignore,
                 "override one compatibility refusal on purpose (arch, cgroup, runtime, "
                 "criu-version, cpu-flags, page-size, network-lock, image); repeatable")
      ->type_name("CHECK")
      ->allow_extra_args(false)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  setAction(
      mg, inv, [&inv, o] { return migrate(inv.session, *o); },
      [o] {
        if (o->target.empty()) throw CLI::ValidationError("migrate needs N SRC DST");
      });
}

}  // namespace ferry::cli
