#include "tools/ferry/output.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <iostream>

#include "protocol/capnp_text.h"
#include "tools/cli_util.h"

namespace ferry::cli {

using nlohmann::json;
using proto::text;

void printTable(const Table& rows) {
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

void printJson(const json& j) { std::cout << j.dump(2) << "\n"; }

bool onTerminal() { return ::isatty(STDERR_FILENO) == 1; }

namespace {
std::string fmtSecs(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1fs", s);
  return buf;
}
}  // namespace

ProgressLine::ProgressLine(bool enabled)
    : enabled_(enabled), start_(std::chrono::steady_clock::now()) {}

void ProgressLine::show(const std::string& phase, uint64_t done, uint64_t total,
                        const std::string& message) {
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
    line += "  " + formatBytes(done);
    if (total > done) line += " of " + formatBytes(total);
    if (secs > 0.2) {
      double rate = static_cast<double>(done - phase_bytes_) / secs;
      line += "  " + formatBytes(static_cast<uint64_t>(rate)) + "/s";
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

void ProgressLine::clear() {
  if (drawn_) std::fprintf(stderr, "\r\033[K");
  drawn_ = false;
}

std::string utcTime(int64_t unix_s) {
  std::time_t t = unix_s;
  std::tm utc{};
  gmtime_r(&t, &utc);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%SZ", &utc);
  return buf;
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
          {"address", hostAddress(text(h.getDataEndpoint()))},
          {"network", text(h.getNetwork())},
          {"network_error", text(h.getNetworkError())},
          {"cpus", i.getCpus()},
          {"memory_bytes", i.getMemoryBytes()},
          {"kernel", text(i.getKernel())},
          {"arch", text(i.getArch())},
          {"criu_version", text(i.getCriuVersion())},
          {"runtime_version", text(i.getRuntimeVersion())},
          {"postcopy", i.getPostcopyUnavailable().size() == 0},
          {"postcopy_unavailable", text(i.getPostcopyUnavailable())},
          {"nftables_lock", i.getNftablesLock()},
          {"images", images}};
}

std::string hostAddress(const std::string& data_endpoint) {
  std::string rest = data_endpoint.rfind("tcp://", 0) == 0 ? data_endpoint.substr(6) : data_endpoint;
  return rest.substr(0, rest.rfind(':') == std::string::npos || rest.front() == '[' ? rest.size()
                                                                                    : rest.rfind(':'));
}

json containerJson(proto::Container::Reader c) {
  return {{"name", text(c.getName())},   {"host", text(c.getHost())},
          {"image", text(c.getImage())}, {"status", text(c.getStatus())},
          {"pid", c.getPid()},           {"memory_bytes", c.getMemoryBytes()},
          {"ready", c.getReady()},       {"notify_status", text(c.getNotifyStatus())},
          {"network", c.getIp().size() > 0 ? "ferry" : "none"},
          {"ip", text(c.getIp())},       {"mac", text(c.getMac())},
          {"ports", proto::strings(c.getPorts())}};
}

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

std::string phasesLine(proto::MigrationFigures::Reader f) {
  std::string out;
  for (auto p : f.getPhaseMs())
    out += (out.empty() ? "" : ", ") + text(p.getPhase()) + " " + std::to_string(p.getMs()) + " ms";
  return out;
}

void printPlan(const json& p) {
  Table rows = {{"CONTAINER", "FROM", "TO", "MEMORY", "IMAGE"}};
  for (const auto& m : p["moves"]) {
    rows.push_back({m["container"], m["source"], m["target"], formatBytes(m["memory_bytes"]),
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

}  // namespace ferry::cli
