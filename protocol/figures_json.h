// Migration figures (MigrationFigures, control.capnp) as one typed record
// from the source agent to the CLI, and their one JSON form: what the
// coordinator stores in SQLite and what `ferry migrate|history --json`
// print. Library ferry_figures.
//
// The JSON is Cap'n Proto's JsonCodec with the schema's $Json.name keys
// (snake_case: downtime_ms, precopy_rounds, ...), and two choices of ours:
// every field is written, empty texts and lists included, so a reader can
// count on each key; and 64-bit integers are JSON numbers, not the codec's
// strings (exact up to 2^53: 104 days of milliseconds is 2^33, 8 PiB is
// 2^53). Reading takes numbers or strings and ignores unknown keys, so the
// rows coordinators stored before (the same keys, written by hand) read too.
//
// Thread-safety: the functions may be called from any thread.
#pragma once

#include <capnp/message.h>

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol/control.capnp.h"

namespace ferry::proto {

// The figures as JSON; `pretty` indents for people (--json).
std::string figuresJson(MigrationFigures::Reader figures, bool pretty = false);
// A list of them as one JSON array (`ferry history --json`).
std::string figuresJson(capnp::List<MigrationFigures>::Reader list, bool pretty = false);

// Reads figuresJson's JSON (or an older row's) into `out`; keys it lacks
// leave their fields as they were. Throws Error kInvalidInput when `json` is
// not a JSON object of figures (a field may already be set by then).
void figuresFromJson(std::string_view json, MigrationFigures::Builder out);

// One migration's figures in a message of its own: what the coordinator
// keeps while a migration runs. Movable, not copyable; not thread-safe.
class FiguresRecord {
 public:
  FiguresRecord();
  FiguresRecord(FiguresRecord&&) noexcept = default;
  FiguresRecord& operator=(FiguresRecord&&) noexcept = default;

  MigrationFigures::Builder get() { return message_->getRoot<MigrationFigures>(); }
  MigrationFigures::Reader reader() const {
    return message_->getRoot<MigrationFigures>().asReader();
  }
  // Lists grow by a copy: a record holds a handful of phases.
  void addPhase(const std::string& phase, uint64_t ms);
  void setWarnings(const std::vector<std::string>& warnings);

 private:
  std::unique_ptr<capnp::MallocMessageBuilder> message_;
};

}  // namespace ferry::proto
