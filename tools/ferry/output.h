// What the CLI prints: aligned tables, JSON documents (--json), the live
// progress line, and the JSON form of the protocol's records that both the
// tables and --json are made from. Everything here writes to stdout except
// the progress line and warnings (stderr).
#pragma once

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "protocol/rpc.h"

namespace ferry::cli {

using Table = std::vector<std::vector<std::string>>;

// Columns padded to their widest cell, two spaces apart; row 0 is the header.
void printTable(const Table& rows);
// The document, indented, on stdout.
void printJson(const nlohmann::json& j);

bool onTerminal();  // stderr is a terminal: progress is drawn

// One line of live progress on stderr, redrawn in place; a no-op when not
// enabled (not a terminal, or --json).
class ProgressLine {
 public:
  explicit ProgressLine(bool enabled);
  ~ProgressLine() { clear(); }
  void show(const std::string& phase, uint64_t done, uint64_t total, const std::string& message);
  void clear();

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point start_, phase_start_;
  std::string phase_;
  uint64_t phase_bytes_ = 0;
};

// "2026-11-30 01:02:03Z" for a unix time.
std::string utcTime(int64_t unix_s);

// The JSON of the protocol's records; migration figures have theirs in
// protocol/figures_json.h, the one form the coordinator stores too.
nlohmann::json hostJson(proto::Host::Reader h);
// A host's address, from its data endpoint (tcp://ADDR[:PORT]).
std::string hostAddress(const std::string& data_endpoint);
nlohmann::json containerJson(proto::Container::Reader c);
nlohmann::json placementJson(proto::Placement::Reader p);
// "dump 40 ms, transfer 12 ms, ..." from the figures' phase times.
std::string phasesLine(proto::MigrationFigures::Reader figures);
// A drain's or rebalance's plan: the moves, what cannot move, the notes.
void printPlan(const nlohmann::json& placement);

}  // namespace ferry::cli
