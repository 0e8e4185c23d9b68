// A container's log as conmon writes it (k8s-file): one record per line,
// "<time> <stream> <F|P> <text>\n", where P marks a piece of a line that goes
// on in the next record. Read whole, read from an offset (`ferry logs -f`),
// and the tail a checkpoint carries to the container's next host.
//
// Thread-safety: plain functions over a file that conmon appends to
// meanwhile; each reads what the file held when it looked, never a record
// half written.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <vector>

#include "common/byte_stream.h"
#include "engine/engine_types.h"

namespace ferry {

// What a checkpoint carries of the log: its end, from a line's start.
inline constexpr uint64_t kCarriedLogBytes = 16u << 20;
// What one offset read returns at most (a reply must fit a control frame).
inline constexpr uint64_t kLogChunkBytes = 1u << 20;

// Where a reader is in a log: a byte offset at a record's start, and the mark
// of the record that ends there (0 at offset 0). The mark tells whether the
// offset still means the same place: a log that moved with its container is
// the same bytes, but one cut to its last kCarriedLogBytes, truncated or
// replaced is not.
struct LogPosition {
  uint64_t offset = 0;
  uint64_t mark = 0;
  bool operator==(const LogPosition&) const = default;
};

enum class LogRestart {
  kNone,       // went on at the position given
  kAfterMark,  // the offset had moved (the log was cut at its start): went on
               // after the record with the mark, so nothing is lost or repeated
  kFromStart,  // the position is not in this log at all: from its start
};

struct LogChunk {
  std::vector<LogLine> lines;  // whole lines only, in order
  LogPosition next;            // where the next read goes on
  bool more = false;           // stopped at the byte cap: more whole lines are there
  LogRestart restart = LogRestart::kNone;
  // Set by the engine, not by readLog: the container has exited and conmon
  // has written all of its output, so once `more` is false nothing follows.
  bool ended = false;
};

// The whole lines of `log` after `from`, up to about `max_bytes` of the file:
// it stops at the first line's end at or past the cap. A line not yet ended
// (its newline, or its F record, not written yet) is left for the next read,
// unless `final` (nothing more will be written: the container exited, and
// output that did not end in a newline stays a P record for good); one
// longer than `max_bytes` comes in pieces, cut where conmon cut it. A
// missing log reads as empty. Throws Error on a read error.
LogChunk readLog(const std::filesystem::path& log, LogPosition from,
                 uint64_t max_bytes = kLogChunkBytes, bool final = false);

// Every line of `log` as it is now, a last one not yet ended included.
inline std::vector<LogLine> readWholeLog(const std::filesystem::path& log) {
  return readLog(log, {}, std::numeric_limits<uint64_t>::max(), /*final=*/true).lines;
}

// Writes the end of a container's log to `out`: at most `max` bytes,
// starting at a line's start (all of it when smaller); nothing for a
// missing log.
void writeLogTail(const std::filesystem::path& log, ByteSink& out, uint64_t max = kCarriedLogBytes);

}  // namespace ferry
