// ferry: the operator's command line. Talks to the coordinator over the
// control plane; files (images, checkpoint bundles) go straight between
// this process and the agent over a chunk stream, never through the
// coordinator. `cluster up/down` runs a local cluster (tools/cluster.h);
// `keys generate` makes CurveZMQ key pairs.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <ctime>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "common/names.h"
#include "engine/spec/run_args.h"
#include "engine/store/secret_store.h"
#include "common/strings.h"
#include "protocol/chunk_stream.h"
#include "protocol/curve.h"
#include "protocol/figures_json.h"
#include "protocol/rpc.h"
#include "protocol/convert/run_args_proto.h"
#include "tools/cli_util.h"
#include "tools/cluster.h"
#include "protocol/capnp_text.h"

using namespace ferry;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;

namespace {

constexpr const char* kUsage = R"(usage: ferry [GLOBAL OPTIONS] COMMAND [ARGS]

Runs and live-migrates containers across the hosts of a ferry cluster. ferry
talks to the coordinator; the coordinator drives one ferry-agent per host.

GLOBAL OPTIONS
  --coordinator ENDPOINT  the coordinator (default: $FERRY_COORDINATOR, else the
                          local cluster's, else tcp://127.0.0.1:7000)
  --keys DIR              CurveZMQ keys: DIR/client.key and DIR/coordinator.pub
                          (default: $FERRY_KEYS; none: plain loopback)
  --json                  machine-readable JSON on stdout instead of tables
  --timeout SECONDS       how long to wait for an answer (default 60; a migration
                          waits this long for each sign of progress)
  -h, --help              this text

CLUSTER
  hosts                               hosts, up or down, with their capacity
  ps [--host H]                       containers, on all hosts or on H
  history [-n N]                      the last N migrations (default 20) with outcome,
                                      downtime, bytes and the time of each phase

CONTAINERS
  image import NAME FILE (--host H | --all)
                                      send an image file (rootfs tar, tar.gz, tar.zst, or
                                      an OCI layout tar) to H, or to every host that is up
  image ls                            images, and the hosts that have them
  run --host H --name N [RUN OPTIONS] IMAGE [CMD...]
                                      create and start a container on H (RUN OPTIONS
                                      below)
  stop N                              stop N (its stop signal, SIGTERM by default, then
                                      SIGKILL after 10 s)
  rm [-f] N                           remove N (-f: stop it first if it runs)
  logs [-f] N                         N's output (-f: follow it, across migrations,
                                      until interrupted or N is gone); a migration
                                      carries the last 16 MiB of it

RUN OPTIONS (as Podman's)
)";

constexpr const char* kUsageTail = R"(
SECRETS
  secret create NAME FILE (--host H | --all) [--replace]
                                      store FILE's bytes (- : stdin; at most 512000) as
                                      secret NAME in H's secrets store (root-only files on
                                      H), or on every host that is up; --replace gives an
                                      existing one a new value (containers get it when
                                      next started or restored). Values are never printed
                                      or logged
  secret ls [--host H]                secrets by name, size, time and the containers given
                                      them, on H or every host that is up
  secret rm NAME (--host H | --all)   remove it (refused while a container there has it)

MIGRATION
  migrate N SRC DST [--precopy auto|off|R] [--ignore CHECK]...
                                      live-migrate N from SRC to DST: compatibility is
                                      checked first; N's memory, rootfs changes and
                                      volumes are pre-copied while it runs; then N is
                                      frozen, what changed is streamed to DST and N is
                                      restored there. N's copy on SRC is deleted only once
                                      it runs on DST, and any failure leaves N running on
                                      SRC. Shows progress on a terminal; prints (--json:
                                      returns) downtime_ms, total_ms, bytes_raw,
                                      bytes_wire, final_bytes_wire (sent while frozen),
                                      each pre-copy round's bytes and time, and the time
                                      of each phase.
                                      --precopy: at most R rounds (1-20) before the
                                      freeze, fewer when what a round sends falls under
                                      the goal or stops shrinking; off: freeze at once;
                                      auto (default): up to 4 rounds for a container of
                                      32 MiB or more, none for a smaller one or for a
                                      DST on this machine's loopback.
                                      --ignore overrides one compatibility refusal on
                                      purpose (arch, cgroup, runtime, criu-version,
                                      cpu-flags, page-size, image)
  checkpoint N --export FILE [--leave-running] [--compress-level L] [--listen ADDR]
                                      write N's checkpoint as one bundle FILE here (N is
                                      frozen meanwhile); N is then removed from its host,
                                      or resumed with --leave-running. Nothing is lost on
                                      failure: N runs again and no partial FILE is left.
                                      ADDR: where the agent reaches this machine
                                      (default 127.0.0.1)
  restore --import FILE --host H [--name M] [--ignore CHECK]... [--replace-volumes]
                                      restore a bundle on H (its recorded host metadata is
                                      checked against H first)
  pending                             what hosts still owe after failed migrations (a
                                      discard, a resume, a removal), carried out when
                                      they are back, and what each waits for
  resume-source MIGRATION --target-lost
                                      a migration whose target went away holding what it
                                      received leaves its source frozen until the target
                                      is back (two copies must never run); this resumes
                                      the source now, on your word that the target is
                                      gone or its copy is not running. Refused while the
                                      target is up -- and a host cut off from the network
                                      counts as down, so make sure its copy is stopped.
                                      The target still discards its copy when it is back

DRAIN AND REBALANCE
  cordon H / uncordon H               H takes no new containers and no migrations (or
                                      does again); what runs on H stays
  drain H [--parallel N] [--deadline D] [--dry-run]
                                      cordon H, then live-migrate every container off it,
                                      N at a time (default 1), each to the host with the
                                      most memory to spare that is up, uncordoned and
                                      compatible, spreading them out. Prints the plan,
                                      then each move as it ends. A failed move leaves
                                      that container running on H; the others go on.
                                      D (e.g. 90s, 10m, 1h): no move starts after it.
                                      --dry-run prints the plan and changes nothing.
                                      Exits 1 if anything is left on H. A restarted
                                      coordinator carries an unfinished drain on.
  rebalance [--dry-run] [--high PCT] [--low PCT] [--max-moves N]
                                      move containers off hosts whose memory load (what
                                      their containers use of what the host offers,
                                      ferry-agent --memory-capacity) is above PCT
                                      (default 80) onto hosts below the low mark
                                      (default 50), which take them while they stay at
                                      or below the high one: per host, one container that
                                      is enough alone (the smallest such), else the
                                      largest first; never onto a cordoned or incompatible
                                      host, never a container moved or tried in 10 min;
                                      at most N moves (default 10). Prints the plan, then
                                      carries it out. Exits 1 if a move failed.
  Both return (--json) the plan with each move's outcome (moved, failed, not
  started), migration id and downtime, the containers no host could take and why.

LOCAL CLUSTER AND KEYS
  cluster up [--hosts N] [--dir DIR] [--port P] [--wait S] [--bin-dir D] [--keys K]
                                      a coordinator on 127.0.0.1:P (default 7000) and N
                                      agents (default 2) hostA, hostB, ... on 127.0.0.2,
                                      127.0.0.3, ...; state and logs in DIR (default
                                      /var/lib/ferry/cluster; kept by down, so images stay);
                                      waits up to S seconds (default 30) for every agent;
                                      D: where ferry-agent and ferry-coordinator are
                                      (default: next to ferry, then PATH); K: CurveZMQ on
                                      everywhere, with keys from `ferry keys generate K
                                      --hosts hostA,...` (the CLI then finds them itself)
                                      --agent-arg ARG (repeatable) goes to every ferry-agent,
                                      e.g. --agent-arg --memory-capacity --agent-arg 1024;
                                      --coordinator-arg ARG likewise to ferry-coordinator,
                                      e.g. --coordinator-arg --rebalance-every
                                      --coordinator-arg 60
  cluster down [--dir DIR]            stop them all; no container, mount or process stays
  keys generate DIR [--hosts H1,H2,...] [--clients NAME,...]
                                      CurveZMQ key pairs: coordinator, each host (default
                                      hostA,hostB) and each client (default client)

EXIT STATUS
  0 success; 1 failure (the message says what to do); 2 bad usage.

EXAMPLES
  ferry cluster up --hosts 2
  ferry image import counter counter.tar.zst --all
  ferry run --host hostA --name demo -v data:/data counter /usr/local/bin/counter --file /data/n
  ferry migrate demo hostA hostB
  ferry logs -f demo
)";

std::atomic<bool> g_interrupted{false};
void onSigint(int) { g_interrupted = true; }

using proto::text;
std::string bytes(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}
capnp::Data::Reader dataOf(const std::string& s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

struct Cli {
  std::string coordinator;
  std::string keys_dir;
  bool json_out = false;
  milliseconds timeout{60000};
  zmq::context_t ctx;
  std::unique_ptr<proto::RpcClient> rpc;

  proto::RpcClient& client() {
    if (!rpc) {
      std::optional<proto::CurveClientKeys> curve;
      if (!keys_dir.empty()) {
        curve = proto::CurveClientKeys{
            proto::readKeyPair(std::filesystem::path(keys_dir) / "client.key"),
            proto::readPublicKey(std::filesystem::path(keys_dir) / "coordinator.pub")};
      }
      rpc = std::make_unique<proto::RpcClient>(ctx, coordinator, curve);
    }
    return *rpc;
  }
  std::unique_ptr<proto::Decoded> call(
      const proto::Fill& fill,
      const std::function<void(proto::Progress::Reader)>& on_progress = {}) {
    try {
      return client().call(fill, timeout, on_progress);
    } catch (Error& e) {
      // A CurveZMQ coordinator drops a client without keys in silence.
      if (e.category() == ErrorCategory::kRetryable && keys_dir.empty() &&
          std::string(e.what()).find("no answer from") != std::string::npos) {
        throw Error(e.category(),
                    std::string(e.what()) +
                        "; if the cluster uses CurveZMQ keys, give them with --keys DIR "
                        "or FERRY_KEYS");
      }
      throw;
    }
  }
  proto::StreamOptions streamOptions() const {
    proto::StreamOptions so;
    if (!keys_dir.empty())
      so.own_keys = proto::readKeyPair(std::filesystem::path(keys_dir) / "client.key");
    return so;
  }
};

std::string randomToken() {
  std::random_device rd;
  std::string t(32, '\0');
  for (auto& c : t) c = static_cast<char>(rd() & 0xff);
  return t;
}

bool onTerminal() { return ::isatty(STDERR_FILENO) == 1; }

// One line of live progress on stderr, redrawn in place on a terminal.
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled)
      : enabled_(enabled), start_(std::chrono::steady_clock::now()) {}
  ~ProgressLine() { clear(); }
  void show(const std::string& phase, uint64_t done, uint64_t total, const std::string& message) {
    if (!enabled_) return;
    auto now = std::chrono::steady_clock::now();
    if (phase != phase_) {
      phase_ = phase;
      phase_start_ = now;
      phase_bytes_ = done;
    }
    double secs = std::chrono::duration<double>(now - phase_start_).count();
    std::string line =
        "[" + fmtSecs(std::chrono::duration<double>(now - start_).count()) + "] " + phase;
    if (done > 0) {
      line += "  " + humanBytes(done);
      if (total > done) line += " of " + humanBytes(total);
      if (secs > 0.2) {
        double rate = static_cast<double>(done - phase_bytes_) / secs;
        line += "  " + humanBytes(static_cast<uint64_t>(rate)) + "/s";
        if (total > done && rate > 0)
          line += "  ETA " + fmtSecs(static_cast<double>(total - done) / rate);
      }
    }
    if (!message.empty()) line += "  " + message;
    if (line.size() > 110) line.resize(110);
    std::fprintf(stderr, "\r\033[K%s", line.c_str());
    std::fflush(stderr);
    drawn_ = true;
  }
  void clear() {
    if (drawn_) std::fprintf(stderr, "\r\033[K");
    drawn_ = false;
  }

 private:
  static std::string fmtSecs(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1fs", s);
    return buf;
  }
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, phase_start_;
  std::string phase_;
  uint64_t phase_bytes_ = 0;
};

// --- tables ------------------------------------------------------------------

void printTable(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width;
  for (const auto& r : rows) {
    for (size_t i = 0; i < r.size(); ++i) {
      if (width.size() <= i) width.push_back(0);
      width[i] = std::max(width[i], r[i].size());
    }
  }
  for (const auto& r : rows) {
    std::string line;
    for (size_t i = 0; i < r.size(); ++i) {
      line += r[i];
      if (i + 1 < r.size()) line += std::string(width[i] - r[i].size() + 2, ' ');
    }
    std::cout << line << "\n";
  }
}

json hostJson(proto::Host::Reader h) {
  auto i = h.getInfo();
  json images = json::array();
  for (auto im : h.getImages())
    images.push_back({{"name", text(im.getName())}, {"id", text(im.getId())}});
  return {{"name", text(h.getName())},
          {"up", h.getUp()},
          {"cordoned", h.getCordoned()},
          {"containers", h.getContainers()},
          {"cpu_percent", h.getLoad().getCpuPercent()},
          {"memory_used_bytes", h.getLoad().getMemoryUsedBytes()},
          {"memory_capacity_bytes", h.getLoad().getMemoryCapacityBytes()},
          {"data_endpoint", text(h.getDataEndpoint())},
          {"cpus", i.getCpus()},
          {"memory_bytes", i.getMemoryBytes()},
          {"kernel", text(i.getKernel())},
          {"arch", text(i.getArch())},
          {"criu_version", text(i.getCriuVersion())},
          {"runtime_version", text(i.getRuntimeVersion())},
          {"images", images}};
}

json containerJson(proto::Container::Reader c) {
  return {{"name", text(c.getName())},   {"host", text(c.getHost())},
          {"image", text(c.getImage())}, {"status", text(c.getStatus())},
          {"pid", c.getPid()},           {"memory_bytes", c.getMemoryBytes()},
          {"ready", c.getReady()},       {"notify_status", text(c.getNotifyStatus())}};
}

json figuresJson(proto::MigrationFigures::Reader f) {
  json phases = json::array();
  for (auto p : f.getPhaseMs())
    phases.push_back({{"phase", text(p.getPhase())}, {"ms", p.getMs()}});
  json warnings = json::array();
  for (auto w : f.getWarnings()) warnings.push_back(text(w));
  return {{"id", f.getId()},
          {"container", text(f.getContainer())},
          {"source", text(f.getSource())},
          {"target", text(f.getTarget())},
          {"outcome", text(f.getOutcome())},
          {"downtime_ms", f.getDowntimeMs()},
          {"total_ms", f.getTotalMs()},
          {"bytes_raw", f.getBytesRaw()},
          {"bytes_wire", f.getBytesWire()},
          {"final_bytes_wire", f.getFinalBytesWire()},
          {"bytes_referenced", f.getBytesReferenced()},
          {"precopy", text(f.getPrecopy())},
          {"precopy_rounds", proto::precopyRoundsJson(f.getRounds())},
          {"compression", text(f.getCompression())},
          {"phase_ms", phases},
          {"started_ms", f.getStartedMs()},
          {"error", text(f.getError())},
          {"warnings", warnings}};
}

std::string phasesLine(const json& f) {
  std::string out;
  for (const auto& p : f["phase_ms"]) {
    out += (out.empty() ? "" : ", ") + p["phase"].get<std::string>() + " " +
           std::to_string(p["ms"].get<uint64_t>()) + " ms";
  }
  return out;
}

// --- commands ------------------------------------------------------------------

int cmdHosts(Cli& cli, Args&) {
  auto r = cli.call([](proto::Message::Builder m) { m.setListHosts(); });
  auto hosts = r->root<proto::Message>().getHosts();
  if (cli.json_out) {
    json out = json::array();
    for (auto h : hosts) out.push_back(hostJson(h));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"NAME", "STATUS", "CONTAINERS", "CPUS", "CPU", "MEMORY", "KERNEL", "CRIU", "DATA PLANE"}};
  for (auto h : hosts) {
    std::string status = h.getUp() ? "up" : "down";
    if (h.getCordoned()) status += ",cordoned";
    auto i = h.getInfo();
    auto l = h.getLoad();
    char cpu[16];
    std::snprintf(cpu, sizeof cpu, "%.0f%%", static_cast<double>(l.getCpuPercent()));
    rows.push_back({text(h.getName()), status, std::to_string(h.getContainers()),
                    std::to_string(i.getCpus()), cpu,
                    humanBytes(l.getMemoryUsedBytes()) + " / " + humanBytes(i.getMemoryBytes()),
                    text(i.getKernel()), text(i.getCriuVersion()), text(h.getDataEndpoint())});
  }
  printTable(rows);
  return 0;
}

int cmdPs(Cli& cli, Args& a) {
  std::string host;
  while (a.more()) {
    std::string o = a.next("option");
    if (o == "--host")
      host = a.next("host after --host");
    else
      throw UsageError("unknown ps option '" + o + "'");
  }
  auto r = cli.call([&](proto::Message::Builder m) { m.setListContainers(host); });
  auto list = r->root<proto::Message>().getContainers();
  if (cli.json_out) {
    json out = json::array();
    for (auto c : list) out.push_back(containerJson(c));
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {{"NAME", "HOST", "IMAGE", "STATUS", "READY", "MEMORY"}};
  for (auto c : list) {
    std::string ready = c.getReady() ? "yes" : "no";
    if (c.getNotifyStatus().size() > 0) ready += " (" + text(c.getNotifyStatus()) + ")";
    rows.push_back({text(c.getName()), text(c.getHost()), text(c.getImage()), text(c.getStatus()),
                    ready, c.getMemoryBytes() ? humanBytes(c.getMemoryBytes()) : "-"});
  }
  printTable(rows);
  return 0;
}

// Streams `file` to an agent that the coordinator prepared (image import or
// restore). Returns once the agent accepted; throws its error otherwise.
void sendFile(Cli& cli, const std::string& file,
              const std::function<void(proto::Message::Builder)>& request,
              const std::string& label) {
  UniqueFd fd(::open(file.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) throwErrno("opening " + file);
  struct stat st {};
  ::fstat(fd.get(), &st);
  auto r = cli.call(request);
  auto t = r->root<proto::Message>().getStreamTicket();
  proto::StreamOptions so = cli.streamOptions();
  so.peer_public_key = text(t.getServerKey());
  proto::ChunkSender tx(cli.ctx, text(t.getEndpoint()), bytes(t.getToken()), label, so);
  ProgressLine line(onTerminal() && !cli.json_out);
  FdSource in(fd.get(), "reading " + file);
  uint64_t sent = copyAll(in, tx, [&](uint64_t done) {
    line.show("send", done, static_cast<uint64_t>(st.st_size), "");
  });
  line.show("verify", sent, 0, "waiting for the host");
  tx.finish();
}

// "2026-11-30 01:02:03Z" for a unix time.
std::string utcTime(int64_t unix_s) {
  std::time_t t = unix_s;
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &utc);
  return buf;
}

// The hosts that are up, or an error saying none is.
std::vector<std::string> upHosts(Cli& cli) {
  std::vector<std::string> hosts;
  auto r = cli.call([](proto::Message::Builder m) { m.setListHosts(); });
  for (auto h : r->root<proto::Message>().getHosts()) {
    if (h.getUp()) hosts.push_back(text(h.getName()));
  }
  if (hosts.empty()) throw Error(ErrorCategory::kRetryable, "no host is up (see `ferry hosts`)");
  return hosts;
}

int cmdImage(Cli& cli, Args& a) {
  std::string sub = a.next("image subcommand (import, ls)");
  if (sub == "ls") {
    auto r = cli.call([](proto::Message::Builder m) { m.setListHosts(); });
    std::map<std::pair<std::string, std::string>, std::vector<std::string>> where;
    for (auto h : r->root<proto::Message>().getHosts()) {
      for (auto im : h.getImages())
        where[{text(im.getName()), text(im.getId())}].push_back(text(h.getName()));
    }
    if (cli.json_out) {
      json out = json::array();
      for (const auto& [k, hosts] : where)
        out.push_back({{"name", k.first}, {"id", k.second}, {"hosts", hosts}});
      std::cout << out.dump(2) << "\n";
      return 0;
    }
    std::vector<std::vector<std::string>> rows = {{"NAME", "ID", "HOSTS"}};
    for (const auto& [k, hosts] : where) {
      std::string hs;
      for (const auto& h : hosts) hs += (hs.empty() ? "" : ",") + h;
      rows.push_back({k.first, k.second.substr(0, 12), hs});
    }
    printTable(rows);
    return 0;
  }
  if (sub != "import") throw UsageError("unknown image subcommand '" + sub + "' (import, ls)");
  std::string name, file, host;
  bool all = false;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--host")
      host = a.next("host after --host");
    else if (o == "--all")
      all = true;
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown image import option '" + o + "'");
    else if (name.empty())
      name = o;
    else if (file.empty())
      file = o;
    else
      throw UsageError("unexpected argument '" + o + "'");
  }
  if (name.empty() || file.empty()) throw UsageError("image import needs NAME and FILE");
  if (all == !host.empty())
    throw UsageError("image import needs exactly one of --host H and --all");
  validateName(name, "image name");
  std::vector<std::string> hosts = all ? upHosts(cli) : std::vector<std::string>{host};
  json out = json::array();
  for (const auto& h : hosts) {
    sendFile(
        cli, file,
        [&](proto::Message::Builder m) {
          auto i = m.initImportFile();
          i.setHost(h);
          i.setKind(proto::Message::ImportFile::Kind::IMAGE);
          i.setName(name);
        },
        "image " + name + " for " + h);
    if (cli.json_out)
      out.push_back({{"image", name}, {"host", h}});
    else
      std::printf("imported %s on %s\n", name.c_str(), h.c_str());
  }
  if (cli.json_out) std::cout << out.dump(2) << "\n";
  return 0;
}

// A run option; a value the option cannot take is bad usage (exit 2).
bool takeRunOptionOrUsage(const std::string& o, const std::function<std::string(const std::string&)>& value,
                          RunArgs& run) {
  try {
    return takeRunOption(o, value, run);
  } catch (const Error& e) {
    throw UsageError(e.what());
  }
}

int cmdRun(Cli& cli, Args& a) {
  std::string host;
  RunArgs run;
  auto value = [&](const std::string& what) { return a.next(what); };
  while (a.more()) {
    std::string o = a.peek();
    if (!run.image.empty()) {
      run.args.push_back(a.next("argument"));
      continue;
    }
    a.next("option");
    if (o == "--host")
      host = a.next("host after --host");
    else if (takeRunOptionOrUsage(o, value, run))
      continue;
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown run option '" + o + "'");
    else
      run.image = o;
  }
  if (host.empty()) throw UsageError("run needs --host H (see `ferry hosts`)");
  if (run.name.empty()) throw UsageError("run needs --name N");
  if (run.image.empty()) throw UsageError("run needs an IMAGE");
  validateName(run.name, "container name");
  for (const auto& e : run.env) {
    if (e.find('=') == std::string::npos) throw UsageError("-e wants KEY=VALUE, got '" + e + "'");
  }
  auto r = cli.call([&](proto::Message::Builder m) {
    auto req = m.initRun();
    req.setHost(host);
    proto::fillRunSpec(req.initSpec(), run);
  });
  auto c = r->root<proto::Message>().getContainer();
  if (cli.json_out)
    std::cout << containerJson(c).dump(2) << "\n";
  else
    std::printf("%s runs on %s (pid %u)%s\n", run.name.c_str(), text(c.getHost()).c_str(), c.getPid(),
                run.sdnotify == "container" ? ", ready" : "");
  return 0;
}

// Host secrets: the value goes from FILE (or stdin) to each host's store;
// nothing prints it back.
int cmdSecret(Cli& cli, Args& a) {
  std::string sub = a.next("secret subcommand (create, ls, rm)");
  if (sub != "create" && sub != "ls" && sub != "rm") {
    throw UsageError("unknown secret subcommand '" + sub + "' (create, ls, rm)");
  }
  std::string name, file, host;
  bool all = false, replace = false;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--host")
      host = a.next("host after --host");
    else if (o == "--all")
      all = true;
    else if (o == "--replace" && sub == "create")
      replace = true;
    else if (o.rfind("-", 0) == 0 && o != "-")
      throw UsageError("unknown secret " + sub + " option '" + o + "'");
    else if (name.empty() && sub != "ls")
      name = o;
    else if (file.empty() && sub == "create")
      file = o;
    else
      throw UsageError("unexpected argument '" + o + "'");
  }
  using Op = proto::Message::Secret::Op;
  if (sub == "ls") {
    std::vector<std::string> hosts = host.empty() ? upHosts(cli) : std::vector<std::string>{host};
    json out = json::array();
    std::vector<std::vector<std::string>> rows = {{"NAME", "HOST", "BYTES", "CREATED", "USED BY"}};
    for (const auto& h : hosts) {
      auto r = cli.call([&](proto::Message::Builder m) {
        auto sec = m.initSecret();
        sec.setHost(h);
        sec.setOp(Op::LIST);
      });
      for (auto e : r->root<proto::Message>().getSecrets()) {
        std::vector<std::string> users;
        for (auto u : e.getUsedBy()) users.push_back(text(u));
        out.push_back({{"name", text(e.getName())}, {"host", h}, {"bytes", e.getBytes()},
                       {"created_unix", e.getCreatedUnix()}, {"used_by", users}});
        std::string used;
        for (const auto& u : users) used += (used.empty() ? "" : ",") + u;
        rows.push_back({text(e.getName()), h, std::to_string(e.getBytes()),
                        utcTime(e.getCreatedUnix()), used.empty() ? "-" : used});
      }
    }
    if (cli.json_out)
      std::cout << out.dump(2) << "\n";
    else
      printTable(rows);
    return 0;
  }
  if (name.empty()) throw UsageError("secret " + sub + " needs a NAME");
  validateName(name, "secret name");
  if (sub == "create" && file.empty()) throw UsageError("secret create needs NAME and FILE (- for stdin)");
  if (all == !host.empty()) throw UsageError("secret " + sub + " needs exactly one of --host H and --all");
  std::string value;
  if (sub == "create") {
    if (file == "-") {
      value.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    } else {
      value = readFile(file);
    }
    if (value.empty()) throw UsageError("secret " + name + ": " + file + " is empty");
    if (value.size() > kMaxSecretBytes) {
      throw UsageError("secret " + name + ": " + std::to_string(value.size()) + " bytes; at most " +
                       std::to_string(kMaxSecretBytes));
    }
  }
  std::vector<std::string> hosts = all ? upHosts(cli) : std::vector<std::string>{host};
  json out = json::array();
  for (const auto& h : hosts) {
    cli.call([&](proto::Message::Builder m) {
      auto sec = m.initSecret();
      sec.setHost(h);
      sec.setName(name);
      sec.setOp(sub == "create" ? Op::CREATE : Op::REMOVE);
      sec.setReplace(replace);
      if (sub == "create") {
        sec.setValue(kj::arrayPtr(reinterpret_cast<const kj::byte*>(value.data()), value.size()));
      }
    });
    if (cli.json_out)
      out.push_back({{"secret", name}, {"host", h}, {"done", sub == "create" ? "created" : "removed"}});
    else
      std::printf("secret %s %s on %s\n", name.c_str(), sub == "create" ? "stored" : "removed", h.c_str());
  }
  if (cli.json_out) std::cout << out.dump(2) << "\n";
  return 0;
}

int cmdStop(Cli& cli, Args& a) {
  std::string name = a.next("container name");
  auto r = cli.call([&](proto::Message::Builder m) { m.setStop(name); });
  auto c = r->root<proto::Message>().getContainer();
  if (cli.json_out)
    std::cout << containerJson(c).dump(2) << "\n";
  else
    std::printf("%s stopped on %s\n", name.c_str(), text(c.getHost()).c_str());
  return 0;
}

int cmdRm(Cli& cli, Args& a) {
  bool force = false;
  std::string name;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "-f" || o == "--force")
      force = true;
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown rm option '" + o + "'");
    else
      name = o;
  }
  if (name.empty()) throw UsageError("rm needs a container name");
  if (force) {
    try {
      cli.call([&](proto::Message::Builder m) { m.setStop(name); });
    } catch (const Error& e) {
      if (e.category() != ErrorCategory::kInvalidInput) throw;  // not running: removed below
    }
  }
  cli.call([&](proto::Message::Builder m) { m.setRemove(name); });
  if (cli.json_out)
    std::cout << json{{"removed", name}}.dump(2) << "\n";
  else
    std::printf("%s removed\n", name.c_str());
  return 0;
}

int cmdLogs(Cli& cli, Args& a) {
  bool follow = false;
  std::string name;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "-f" || o == "--follow")
      follow = true;
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown logs option '" + o + "'");
    else
      name = o;
  }
  if (name.empty()) throw UsageError("logs needs a container name");
  size_t printed = 0;
  std::string last;  // the last line printed
  for (;;) {
    std::vector<std::string> lines;
    try {
      auto r = cli.call([&](proto::Message::Builder m) { m.setGetLogs(name); });
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
    for (int i = 0; i < 5 && !g_interrupted; ++i) std::this_thread::sleep_for(milliseconds(100));
    if (g_interrupted) return 0;
  }
}

// --precopy auto|off|R as the protocol's rounds: -1 auto, 0 off.
int parsePrecopy(const std::string& v) {
  if (v == "auto") return -1;
  if (v == "off" || v == "0") return 0;
  int n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > 20) {
    throw UsageError("--precopy takes auto, off or a number of rounds from 1 to 20, not '" + v +
                     "'");
  }
  return n;
}

int cmdMigrate(Cli& cli, Args& a) {
  std::vector<std::string> pos, ignore;
  int precopy = -1;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--ignore")
      ignore.push_back(a.next("check name after --ignore"));
    else if (o == "--precopy")
      precopy = parsePrecopy(a.next("auto, off or rounds after --precopy"));
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown migrate option '" + o + "'");
    else
      pos.push_back(o);
  }
  if (pos.size() != 3) throw UsageError("migrate needs N SRC DST");
  ProgressLine line(onTerminal() && !cli.json_out);
  auto r = cli.call(
      [&](proto::Message::Builder m) {
        auto mg = m.initMigrate();
        mg.setContainer(pos[0]);
        mg.setSource(pos[1]);
        mg.setTarget(pos[2]);
        mg.setPrecopy(precopy);
        auto il = mg.initIgnore(static_cast<unsigned>(ignore.size()));
        for (size_t i = 0; i < ignore.size(); ++i) il.set(static_cast<unsigned>(i), ignore[i]);
      },
      [&](proto::Progress::Reader p) {
        line.show(text(p.getPhase()), p.getBytesDone(), p.getBytesTotal(), text(p.getMessage()));
      });
  line.clear();
  json f = figuresJson(r->root<proto::Message>().getMigration());
  if (cli.json_out) {
    std::cout << f.dump(2) << "\n";
    return 0;
  }
  std::printf("migrated %s from %s to %s (migration #%llu)\n", pos[0].c_str(), pos[1].c_str(),
              pos[2].c_str(), static_cast<unsigned long long>(f["id"].get<uint64_t>()));
  std::printf("  downtime   %llu ms (frozen on %s until running on %s)\n",
              static_cast<unsigned long long>(f["downtime_ms"].get<uint64_t>()), pos[1].c_str(),
              pos[2].c_str());
  std::printf("  total      %llu ms\n",
              static_cast<unsigned long long>(f["total_ms"].get<uint64_t>()));
  std::printf("  bytes      %s raw, %s on the wire, %s of it while frozen\n",
              humanBytes(f["bytes_raw"]).c_str(), humanBytes(f["bytes_wire"]).c_str(),
              humanBytes(f["final_bytes_wire"]).c_str());
  if (!f["precopy"].get<std::string>().empty()) {
    std::printf("  pre-copy   %s\n", f["precopy"].get<std::string>().c_str());
  }
  for (const auto& r : f["precopy_rounds"]) {
    std::printf("    round %u  read %s, sent %s, %llu ms\n", r["round"].get<unsigned>(),
                humanBytes(r["read_bytes"]).c_str(), humanBytes(r["sent_bytes"]).c_str(),
                static_cast<unsigned long long>(r["ms"].get<uint64_t>()));
  }
  if (!f["compression"].get<std::string>().empty()) {
    std::printf("  compression %s\n", f["compression"].get<std::string>().c_str());
  }
  std::printf("  phases     %s\n", phasesLine(f).c_str());
  for (const auto& w : f["warnings"])
    std::fprintf(stderr, "warning: %s\n", w.get<std::string>().c_str());
  return 0;
}

// --- drain and rebalance -----------------------------------------------------

json placementJson(proto::Placement::Reader p) {
  json moves = json::array(), unplaced = json::array(), notes = json::array();
  for (auto m : p.getMoves()) {
    moves.push_back({{"container", text(m.getContainer())},
                     {"source", text(m.getSource())},
                     {"target", text(m.getTarget())},
                     {"memory_bytes", m.getMemoryBytes()},
                     {"sends_image", m.getSendsImage()},
                     {"outcome", text(m.getOutcome())},
                     {"error", text(m.getError())},
                     {"migration", m.getMigration()},
                     {"downtime_ms", m.getDowntimeMs()}});
  }
  for (auto u : p.getUnplaced())
    unplaced.push_back({{"container", text(u.getContainer())}, {"reason", text(u.getReason())}});
  for (auto n : p.getNotes()) notes.push_back(text(n));
  return {{"kind", text(p.getKind())}, {"host", text(p.getHost())}, {"dry_run", p.getDryRun()},
          {"moves", moves},           {"unplaced", unplaced},         {"notes", notes}};
}

void printPlan(const json& p) {
  std::vector<std::vector<std::string>> rows = {{"CONTAINER", "FROM", "TO", "MEMORY", "IMAGE"}};
  for (const auto& m : p["moves"]) {
    rows.push_back({m["container"], m["source"], m["target"], humanBytes(m["memory_bytes"]),
                    m["sends_image"].get<bool>() ? "sent first" : "there"});
  }
  std::cout << "plan: " << p["moves"].size() << " move(s)\n";
  if (!p["moves"].empty()) printTable(rows);
  for (const auto& u : p["unplaced"]) {
    std::cout << "  cannot move " << u["container"].get<std::string>() << ": "
              << u["reason"].get<std::string>() << "\n";
  }
  for (const auto& n : p["notes"]) std::cout << "  " << n.get<std::string>() << "\n";
  std::cout.flush();
}

// Runs a drain or rebalance request: the plan as it comes, each move's end,
// then the outcome. Exit 1 when something planned did not move (or, for a
// drain, a container could not be placed).
int runPlacement(Cli& cli, const proto::Fill& fill, bool drain) {
  ProgressLine line(onTerminal() && !cli.json_out);
  auto r = cli.call(fill, [&](proto::Progress::Reader p) {
    if (cli.json_out) return;
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
    if (m["outcome"] == "moved") ++moved;
    else if (!res["dry_run"].get<bool>()) ++left;
  }
  if (drain) left += res["unplaced"].size();
  if (cli.json_out) {
    std::cout << res.dump(2) << "\n";
  } else if (res["dry_run"].get<bool>()) {
    printPlan(res);
    std::cout << "dry run: nothing was changed\n";
  } else {
    for (const auto& m : res["moves"]) {
      if (m["outcome"] != "moved") {
        std::cout << "  " << m["container"].get<std::string>() << " " << m["outcome"].get<std::string>()
                  << ": " << m["error"].get<std::string>() << "\n";
      }
    }
    std::cout << res["kind"].get<std::string>() << (drain ? " of " + res["host"].get<std::string>() : "")
              << ": " << moved << " of " << res["moves"].size() << " moved";
    if (drain && !res["unplaced"].empty()) std::cout << ", " << res["unplaced"].size() << " could not be placed";
    std::cout << (left ? "; what was not moved still runs where it was" : "") << "\n";
  }
  return left ? 1 : 0;
}

int cmdCordon(Cli& cli, Args& a, bool cordoned) {
  std::string host = a.next("host");
  if (a.more()) throw UsageError("unexpected argument '" + a.next("argument") + "'");
  cli.call([&](proto::Message::Builder m) {
    auto c = m.initCordon();
    c.setHost(host);
    c.setCordoned(cordoned);
  });
  if (cli.json_out) {
    std::cout << json{{"host", host}, {"cordoned", cordoned}}.dump(2) << "\n";
  } else {
    std::cout << host << (cordoned ? " cordoned: it takes no new containers\n"
                                   : " uncordoned: it takes containers again\n");
  }
  return 0;
}

// "90s", "10m", "1h" or plain seconds, in milliseconds.
uint64_t parseDuration(const std::string& v) {
  uint64_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  std::string unit(end, v.data() + v.size());
  uint64_t scale = unit.empty() || unit == "s" ? 1000 : unit == "m" ? 60000 : unit == "h" ? 3600000 : 0;
  if (ec != std::errc() || end == v.data() || scale == 0 || n == 0) {
    throw UsageError("a duration is a positive number with s, m or h (e.g. 90s, 10m), not '" + v + "'");
  }
  return n * scale;
}

// A count from 1 to `max` for option `what`, else a usage error.
uint32_t parseCount(const std::string& v, const std::string& what, uint32_t max) {
  uint32_t n = 0;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  if (ec != std::errc() || end != v.data() + v.size() || n < 1 || n > max)
    throw UsageError(what + " takes a count from 1 to " + std::to_string(max) + ", not '" + v + "'");
  return n;
}

int cmdDrain(Cli& cli, Args& a) {
  std::string host;
  uint32_t parallel = 1;
  uint64_t deadline = 0;
  bool dry = false;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--parallel") {
      parallel = parseCount(a.next("count after --parallel"), "--parallel", 16);
    } else if (o == "--deadline") {
      deadline = parseDuration(a.next("duration after --deadline"));
    } else if (o == "--dry-run") {
      dry = true;
    } else if (o.rfind("-", 0) == 0) {
      throw UsageError("unknown drain option '" + o + "'");
    } else if (host.empty()) {
      host = o;
    } else {
      throw UsageError("drain takes one host");
    }
  }
  if (host.empty()) throw UsageError("drain needs a host");
  return runPlacement(
      cli,
      [&](proto::Message::Builder m) {
        auto d = m.initDrain();
        d.setHost(host);
        d.setParallel(parallel);
        d.setDeadlineMs(deadline);
        d.setDryRun(dry);
      },
      true);
}

int cmdRebalance(Cli& cli, Args& a) {
  bool dry = false;
  float high = 0, low = 0;
  uint32_t max_moves = 0;
  auto percent = [&](const std::string& what) {
    std::string v = a.next("percent after " + what);
    char* end = nullptr;
    float f = std::strtof(v.c_str(), &end);
    if (end == v.c_str() || *end != '\0' || f <= 0 || f > 100)
      throw UsageError(what + " takes a percentage above 0 and at most 100, not '" + v + "'");
    return f;
  };
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--dry-run") dry = true;
    else if (o == "--high") high = percent(o);
    else if (o == "--low") low = percent(o);
    else if (o == "--max-moves") {
      max_moves = parseCount(a.next("count after --max-moves"), "--max-moves", 1u << 30);
    } else {
      throw UsageError("unknown rebalance option '" + o + "'");
    }
  }
  return runPlacement(
      cli,
      [&](proto::Message::Builder m) {
        auto r = m.initRebalance();
        r.setDryRun(dry);
        r.setHighPercent(high);
        r.setLowPercent(low);
        r.setMaxMoves(max_moves);
      },
      false);
}

int cmdHistory(Cli& cli, Args& a) {
  uint32_t n = 20;
  while (a.more()) {
    std::string o = a.next("option");
    if (o == "-n")
      n = static_cast<uint32_t>(std::stoul(a.next("count after -n")));
    else
      throw UsageError("unknown history option '" + o + "'");
  }
  auto r = cli.call([&](proto::Message::Builder m) { m.setListHistory(n); });
  json out = json::array();
  for (auto f : r->root<proto::Message>().getHistory()) out.push_back(figuresJson(f));
  if (cli.json_out) {
    std::cout << out.dump(2) << "\n";
    return 0;
  }
  std::vector<std::vector<std::string>> rows = {
      {"ID", "CONTAINER", "FROM", "TO", "OUTCOME", "DOWNTIME", "TOTAL", "WIRE", "ERROR"}};
  for (const auto& f : out) {
    std::string err = f["error"];
    if (err.size() > 60) err = err.substr(0, 57) + "...";
    std::replace(err.begin(), err.end(), '\n', ' ');
    rows.push_back(
        {std::to_string(f["id"].get<uint64_t>()), f["container"], f["source"], f["target"],
         f["outcome"], std::to_string(f["downtime_ms"].get<uint64_t>()) + " ms",
         std::to_string(f["total_ms"].get<uint64_t>()) + " ms", humanBytes(f["bytes_wire"]), err});
  }
  printTable(rows);
  return 0;
}

// What hosts still owe (cleanups carried out when they are back).
int cmdPending(Cli& cli, Args& a) {
  if (a.more()) throw UsageError("pending takes no arguments");
  auto r = cli.call([](proto::Message::Builder m) { m.setListPending(); });
  json out = json::array();
  std::vector<std::vector<std::string>> rows = {
      {"MIGRATION", "HOST", "OWES", "CONTAINER", "SINCE", "WAITING FOR"}};
  for (auto p : r->root<proto::Message>().getPending()) {
    out.push_back({{"id", p.getId()},
                   {"migration", p.getMigration()},
                   {"host", text(p.getHost())},
                   {"action", text(p.getAction())},
                   {"container", text(p.getContainer())},
                   {"since_ms", p.getSinceMs()},
                   {"waiting_for", text(p.getWaitingFor())}});
    rows.push_back({"#" + std::to_string(p.getMigration()), text(p.getHost()), text(p.getAction()),
                    text(p.getContainer()), utcTime(p.getSinceMs() / 1000), text(p.getWaitingFor())});
  }
  if (cli.json_out)
    std::cout << out.dump(2) << "\n";
  else if (out.empty())
    std::printf("nothing pending\n");
  else
    printTable(rows);
  return 0;
}

// The override for a source frozen because its target went away.
int cmdResumeSource(Cli& cli, Args& a) {
  std::string id_text;
  bool target_lost = false;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--target-lost")
      target_lost = true;
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown resume-source option '" + o + "'");
    else
      id_text = o;
  }
  if (id_text.empty()) throw UsageError("resume-source needs a MIGRATION id (see `ferry pending`)");
  uint64_t id = 0;
  auto [end, ec] = std::from_chars(id_text.data(), id_text.data() + id_text.size(), id);
  if (ec != std::errc() || end != id_text.data() + id_text.size() || id == 0) {
    throw UsageError("'" + id_text + "' is not a migration id");
  }
  if (!target_lost) {
    throw UsageError(
        "resume-source runs the frozen source copy while the target may still hold a restored one; "
        "say --target-lost once you know the target is gone or its copy is not running (the "
        "target still discards its copy when it is back)");
  }
  cli.call([&](proto::Message::Builder m) {
    auto rs = m.initResumeSource();
    rs.setMigration(id);
    rs.setTargetLost(target_lost);
  });
  if (cli.json_out)
    std::cout << json{{"migration", id}, {"resumed", true}}.dump(2) << "\n";
  else
    std::printf("migration #%llu: its source copy runs again\n", static_cast<unsigned long long>(id));
  return 0;
}

int cmdCheckpoint(Cli& cli, Args& a) {
  std::string name, file, listen = "127.0.0.1";
  bool leave_running = false;
  int level = 3;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--export")
      file = a.next("FILE after --export");
    else if (o == "--leave-running")
      leave_running = true;
    else if (o == "--compress-level")
      level = std::stoi(a.next("level after --compress-level"));
    else if (o == "--listen")
      listen = a.next("address after --listen");
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown checkpoint option '" + o + "'");
    else
      name = o;
  }
  if (name.empty() || file.empty()) throw UsageError("checkpoint needs N and --export FILE");
  if (cli.keys_dir.empty() && listen.rfind("127.", 0) != 0) {
    throw UsageError("without --keys the bundle is received on a loopback address only");
  }
  std::filesystem::path target = std::filesystem::absolute(file);
  std::filesystem::path partial = target.string() + ".partial";
  std::string token = randomToken();
  std::atomic<bool> cancel{false};
  proto::StreamOptions so = cli.streamOptions();
  so.cancel = &cancel;
  proto::ChunkReceiver rx(cli.ctx, "tcp://" + listen + ":0", token, "ferry CLI", so);
  std::string endpoint = rx.endpoint();
  std::optional<Error> receive_error;
  // The file is created before anything is asked of the cluster: a path
  // that cannot be written fails here, with the container untouched.
  if (std::filesystem::exists(target)) {
    throw Error(ErrorCategory::kInvalidInput,
                target.string() + " exists; remove it or name another file");
  }
  UniqueFd fd(::open(partial.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (!fd) throwErrno("creating " + partial.string());
  std::thread receiver([&] {
    try {
      FdSink out(fd.get(), "writing " + partial.string());
      copyAll(rx, out);
      if (::fsync(fd.get()) != 0) throwErrno("writing " + partial.string());
      std::filesystem::rename(partial, target);
      rx.accept();
    } catch (const Error& e) {
      receive_error = e;
      ::unlink(partial.c_str());
      rx.reject(e);
    } catch (const std::exception& e) {
      receive_error = Error(ErrorCategory::kPermanent, e.what());
      ::unlink(partial.c_str());
      rx.reject(*receive_error);
    }
  });
  ProgressLine line(onTerminal() && !cli.json_out);
  std::unique_ptr<proto::Decoded> r;
  try {
    r = cli.call(
        [&](proto::Message::Builder m) {
          auto c = m.initCheckpoint();
          c.setContainer(name);
          c.setEndpoint(endpoint);
          c.setToken(dataOf(token));
          if (so.own_keys) c.setServerKey(so.own_keys->public_key);
          c.setLeaveRunning(leave_running);
          c.setLevel(level);
        },
        [&](proto::Progress::Reader p) {
          line.show(text(p.getPhase()), p.getBytesDone(), p.getBytesTotal(), "");
        });
  } catch (...) {
    cancel = true;
    receiver.join();
    ::unlink(partial.c_str());
    throw;
  }
  receiver.join();
  line.clear();
  if (receive_error) throw *receive_error;
  json f = figuresJson(r->root<proto::Message>().getMigration());
  if (cli.json_out) {
    std::cout << json{{"container", name},
                      {"file", target.string()},
                      {"bytes_raw", f["bytes_raw"]},
                      {"bytes_wire", f["bytes_wire"]},
                      {"frozen_ms", f["downtime_ms"]},
                      {"left_running", leave_running}}
                     .dump(2)
              << "\n";
  } else {
    std::printf("checkpoint of %s written to %s (%s; frozen %llu ms); %s\n", name.c_str(),
                target.c_str(), humanBytes(f["bytes_wire"]).c_str(),
                static_cast<unsigned long long>(f["downtime_ms"].get<uint64_t>()),
                leave_running ? "it runs on" : "it was removed from its host");
  }
  return 0;
}

int cmdRestore(Cli& cli, Args& a) {
  std::string file, host, name;
  std::vector<std::string> ignore;
  bool replace = false;
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--import")
      file = a.next("FILE after --import");
    else if (o == "--host")
      host = a.next("host after --host");
    else if (o == "--name")
      name = a.next("name after --name");
    else if (o == "--ignore")
      ignore.push_back(a.next("check after --ignore"));
    else if (o == "--replace-volumes")
      replace = true;
    else
      throw UsageError("unknown restore argument '" + o + "'");
  }
  if (file.empty() || host.empty()) throw UsageError("restore needs --import FILE and --host H");
  if (!name.empty()) validateName(name, "container name");
  sendFile(
      cli, file,
      [&](proto::Message::Builder m) {
        auto i = m.initImportFile();
        i.setHost(host);
        i.setKind(proto::Message::ImportFile::Kind::CHECKPOINT);
        i.setName(name);
        i.setReplaceVolumes(replace);
        auto il = i.initIgnore(static_cast<unsigned>(ignore.size()));
        for (size_t k = 0; k < ignore.size(); ++k) il.set(static_cast<unsigned>(k), ignore[k]);
      },
      "restore on " + host);
  if (cli.json_out)
    std::cout << json{{"restored", file}, {"host", host}, {"name", name}}.dump(2) << "\n";
  else
    std::printf("restored %s on %s\n", file.c_str(), host.c_str());
  return 0;
}

// "a,b,,c" -> a, b, c.
std::vector<std::string> splitList(const std::string& s) {
  std::vector<std::string> out = splitFields(s, ',');
  std::erase(out, std::string());
  return out;
}

int cmdKeys(Cli& cli, Args& a) {
  std::string sub = a.next("keys subcommand (generate)");
  if (sub != "generate") throw UsageError("unknown keys subcommand '" + sub + "' (generate)");
  std::string dir;
  std::vector<std::string> hosts = {"hostA", "hostB"}, clients = {"client"};
  while (a.more()) {
    std::string o = a.next("argument");
    if (o == "--hosts")
      hosts = splitList(a.next("host names after --hosts"));
    else if (o == "--clients")
      clients = splitList(a.next("client names after --clients"));
    else if (o.rfind("-", 0) == 0)
      throw UsageError("unknown keys option '" + o + "'");
    else
      dir = o;
  }
  if (dir.empty()) throw UsageError("keys generate needs DIR");
  std::vector<std::string> names = {"coordinator"};
  for (const auto& h : hosts) names.push_back(h);
  for (const auto& c : clients) names.push_back(c);
  for (const auto& n : names) {
    validateName(n, "key name");
    if (std::filesystem::exists(std::filesystem::path(dir) / (n + ".key"))) {
      throw Error(ErrorCategory::kInvalidInput,
                  std::filesystem::path(dir).string() + "/" + n +
                      ".key exists; keys are never overwritten (remove it first)");
    }
  }
  std::filesystem::create_directories(dir);
  ::chmod(dir.c_str(), 0700);
  json out = json::array();
  for (const auto& n : names) {
    proto::KeyPair k = proto::generateKeyPair();
    proto::writeKeyPair(dir, n, k);
    out.push_back({{"name", n}, {"public_key", k.public_key}});
  }
  if (cli.json_out) {
    std::cout << out.dump(2) << "\n";
  } else {
    std::printf("generated %zu key pairs in %s: ", names.size(), dir.c_str());
    for (size_t i = 0; i < names.size(); ++i) std::printf("%s%s", i ? ", " : "", names[i].c_str());
    std::printf("\n  ferry-coordinator --keys %s   admits every NAME.pub there\n", dir.c_str());
    std::printf("  ferry-agent --name H --keys %s   uses H.key and coordinator.pub\n", dir.c_str());
    std::printf("  ferry --keys %s ...              uses client.key and coordinator.pub\n",
                dir.c_str());
  }
  return 0;
}

int cmdCluster(Cli& cli, Args& a) {
  std::string sub = a.next("cluster subcommand (up, down)");
  cluster::ClusterOptions o;
  while (a.more()) {
    std::string opt = a.next("option");
    if (opt == "--hosts")
      o.hosts = std::stoi(a.next("count after --hosts"));
    else if (opt == "--dir")
      o.dir = a.next("directory after --dir");
    else if (opt == "--port" && sub == "up")
      o.port = std::stoi(a.next("port after --port"));
    else if (opt == "--wait" && sub == "up")
      o.wait = seconds(std::stoi(a.next("seconds after --wait")));
    else if (opt == "--bin-dir" && sub == "up")
      o.bin_dir = a.next("directory after --bin-dir");
    else if (opt == "--keys" && sub == "up")
      o.keys_dir = a.next("directory after --keys");
    else if (opt == "--agent-arg" && sub == "up")
      o.agent_args.push_back(a.next("argument after --agent-arg"));
    else if (opt == "--coordinator-arg" && sub == "up")
      o.coordinator_args.push_back(a.next("argument after --coordinator-arg"));
    else
      throw UsageError("unknown cluster " + sub + " option '" + opt + "'");
  }
  bool chatty = !cli.json_out;
  auto progress = [&](const std::string& line) {
    if (chatty) std::fprintf(stderr, "%s\n", line.c_str());
  };
  if (sub == "up") {
    if (o.hosts < 1 || o.hosts > 20) throw UsageError("--hosts wants 1..20");
    cluster::ClusterState s = cluster::up(o, progress);
    if (cli.json_out) {
      std::cout << json(s).dump(2) << "\n";
    } else {
      std::printf("cluster up: coordinator %s, hosts", s.coordinator_endpoint.c_str());
      for (const auto& h : s.hosts) std::printf(" %s (%s)", h.name.c_str(), h.address.c_str());
      std::printf(
          "\nstate and logs in %s; stop it with `ferry cluster down%s`\n", s.dir.c_str(),
          o.dir == cluster::ClusterOptions{}.dir ? "" : (" --dir " + s.dir.string()).c_str());
    }
    return 0;
  }
  if (sub == "down") {
    cluster::DownReport r = cluster::down(o.dir, progress);
    if (cli.json_out) {
      std::cout << json{{"processes_stopped", r.processes_stopped},
                        {"containers_removed", r.containers_removed},
                        {"problems", r.problems}}
                       .dump(2)
                << "\n";
    } else {
      std::printf("cluster down: %d processes stopped, %d containers removed\n",
                  r.processes_stopped, r.containers_removed);
      for (const auto& p : r.problems) std::fprintf(stderr, "warning: %s\n", p.c_str());
    }
    return 0;
  }
  throw UsageError("unknown cluster subcommand '" + sub + "' (up, down)");
}

// The local cluster's record, when there is one in the default place.
std::optional<cluster::ClusterState> localCluster() {
  try {
    return cluster::readState(cluster::ClusterOptions{}.dir);
  } catch (const std::exception&) {
    return std::nullopt;
  }
}

}  // namespace

int main(int argc, char** argv) {
  Cli cli;
  Args a;
  for (int i = 1; i < argc; ++i) a.v.push_back(argv[i]);
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  ::sigaction(SIGINT, &sa, nullptr);
  std::string cmd;
  try {
    while (a.more() && a.peek().rfind("-", 0) == 0) {
      std::string o = a.next("option");
      if (o == "-h" || o == "--help") return std::cout << kUsage << kRunOptionsHelp << kUsageTail, 0;
      if (o == "--coordinator")
        cli.coordinator = a.next("endpoint after --coordinator");
      else if (o == "--keys")
        cli.keys_dir = a.next("directory after --keys");
      else if (o == "--json")
        cli.json_out = true;
      else if (o == "--timeout")
        cli.timeout = seconds(std::stoi(a.next("seconds after --timeout")));
      else
        throw UsageError("unknown option '" + o + "'");
    }
    std::optional<cluster::ClusterState> local = localCluster();
    if (cli.coordinator.empty()) {
      if (const char* env = std::getenv("FERRY_COORDINATOR"); env && *env) {
        cli.coordinator = env;
      } else {
        cli.coordinator = local ? local->coordinator_endpoint : "tcp://127.0.0.1:7000";
      }
    }
    if (cli.keys_dir.empty()) {
      if (const char* env = std::getenv("FERRY_KEYS"); env && *env) {
        cli.keys_dir = env;
      } else if (local && cli.coordinator == local->coordinator_endpoint) {
        cli.keys_dir = local->keys_dir.string();  // the local cluster's own keys
      }
    }
    cmd = a.next("command (see ferry --help)");
    // --json may also follow the command (not within a container's command line).
    if (cmd != "run") {
      auto tail = std::remove_if(a.v.begin() + static_cast<std::ptrdiff_t>(a.i), a.v.end(),
                                 [&](const std::string& s) {
                                   if (s != "--json") return false;
                                   cli.json_out = true;
                                   return true;
                                 });
      a.v.erase(tail, a.v.end());
    }
    if (cmd == "help") return std::cout << kUsage << kRunOptionsHelp << kUsageTail, 0;
    if (cmd == "hosts") return cmdHosts(cli, a);
    if (cmd == "ps") return cmdPs(cli, a);
    if (cmd == "image") return cmdImage(cli, a);
    if (cmd == "run") return cmdRun(cli, a);
    if (cmd == "stop") return cmdStop(cli, a);
    if (cmd == "secret") return cmdSecret(cli, a);
    if (cmd == "rm") return cmdRm(cli, a);
    if (cmd == "logs") return cmdLogs(cli, a);
    if (cmd == "migrate") return cmdMigrate(cli, a);
    if (cmd == "history") return cmdHistory(cli, a);
    if (cmd == "pending") return cmdPending(cli, a);
    if (cmd == "resume-source") return cmdResumeSource(cli, a);
    if (cmd == "cordon") return cmdCordon(cli, a, true);
    if (cmd == "uncordon") return cmdCordon(cli, a, false);
    if (cmd == "drain") return cmdDrain(cli, a);
    if (cmd == "rebalance") return cmdRebalance(cli, a);
    if (cmd == "checkpoint") return cmdCheckpoint(cli, a);
    if (cmd == "restore") return cmdRestore(cli, a);
    if (cmd == "keys") return cmdKeys(cli, a);
    if (cmd == "cluster") return cmdCluster(cli, a);
    throw UsageError("unknown command '" + cmd + "'");
  } catch (const UsageError& e) {
    std::cerr << "ferry: " << e.what() << "\n(see ferry --help)\n";
    return 2;
  } catch (const std::invalid_argument& e) {
    std::cerr << "ferry: a number was expected (" << e.what() << ")\n(see ferry --help)\n";
    return 2;
  } catch (const Error& e) {
    if (cli.json_out) {
      std::cout << json{{"error", e.what()}, {"category", std::string(categoryName(e.category()))}}
                       .dump(2)
                << "\n";
    }
    std::cerr << "ferry: " << (cmd.empty() ? "" : cmd + ": ") << e.what() << "\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ferry: " << e.what() << "\n";
    return 1;
  }
}
