#include "engine/container_log.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <algorithm>
#include <optional>
#include <string>
#include <string_view>

#include "common/error.h"
#include "common/fd.h"

namespace ferry {

namespace fs = std::filesystem;

namespace {

constexpr size_t kBlock = 1 << 16;

// The log open for reading and its size when looked at: conmon appends
// meanwhile, and a read takes what there was then, no more. Nothing for a
// missing log.
struct OpenLog {
  UniqueFd fd;
  uint64_t size = 0;
};
std::optional<OpenLog> openLog(const fs::path& log) {
  UniqueFd fd(::open(log.c_str(), O_RDONLY | O_CLOEXEC));
  if (!fd) {
    if (errno == ENOENT) return std::nullopt;
    throwErrno("open " + log.string());
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) throwErrno("stat " + log.string());
  return OpenLog{std::move(fd), static_cast<uint64_t>(st.st_size)};
}

// Up to n bytes at `at`; fewer only at the end of the file.
size_t readAt(int fd, char* buf, size_t n, uint64_t at, const fs::path& log) {
  size_t got = 0;
  while (got < n) {
    ssize_t r =
        retryEintr([&] { return ::pread(fd, buf + got, n - got, static_cast<off_t>(at + got)); });
    if (r < 0) throwErrno("read " + log.string());
    if (r == 0) break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// Calls each(records, end) with runs of whole records (each ending in its
// newline) from `from` up to `to`, in order; `end` is the offset just after
// the run. A record not yet ended at `to` is not passed. Stops when `each`
// returns false.
template <class F>
void forWholeRecords(int fd, uint64_t from, uint64_t to, const fs::path& log, F&& each) {
  std::string buf;  // the bytes from `from` not passed yet
  for (uint64_t pos = from; pos < to;) {
    size_t kept = buf.size();
    buf.resize(kept + static_cast<size_t>(std::min<uint64_t>(kBlock, to - pos)));
    size_t n = readAt(fd, buf.data() + kept, buf.size() - kept, pos, log);
    buf.resize(kept + n);
    if (n == 0) return;  // the file shrank since it was looked at
    pos += n;
    size_t last = buf.rfind('\n');
    if (last == std::string::npos) continue;
    uint64_t end = pos - (buf.size() - last - 1);
    if (!each(std::string_view(buf).substr(0, last + 1), end)) return;
    buf.erase(0, last + 1);
  }
}

// A record, without its newline, identified for LogPosition: never 0.
uint64_t markOf(std::string_view record) {
  uint64_t h = XXH3_64bits(record.data(), record.size());
  return h == 0 ? 1 : h;
}

// The record (without its newline) that ends at `end`, or nothing when no
// record ends there.
std::optional<std::string> recordEndingAt(int fd, uint64_t end, const fs::path& log) {
  if (end == 0) return std::nullopt;
  // conmon's records are at most a few KiB; look further back only for a
  // longer one.
  for (uint64_t back = std::min<uint64_t>(end, kBlock);; back = std::min(end, back * 2)) {
    std::string s(static_cast<size_t>(back), '\0');
    if (readAt(fd, s.data(), s.size(), end - back, log) != s.size() || s.back() != '\n') {
      return std::nullopt;
    }
    s.pop_back();
    size_t nl = s.rfind('\n');
    if (nl != std::string::npos) return s.substr(nl + 1);
    if (back == end) return s;  // the log's first record
  }
}

// The end of the last record marked `mark`: where a reader goes on in a
// log whose start was cut (as a migration carries only its end).
std::optional<LogPosition> findMark(int fd, uint64_t size, uint64_t mark, const fs::path& log) {
  std::optional<LogPosition> found;
  forWholeRecords(fd, 0, size, log, [&](std::string_view records, uint64_t end) {
    uint64_t at = end - records.size();
    for (size_t start = 0; start < records.size();) {
      size_t nl = records.find('\n', start);
      if (markOf(records.substr(start, nl - start)) == mark) found = LogPosition{at + nl + 1, mark};
      start = nl + 1;
    }
    return true;
  });
  return found;
}

// One k8s-file record: "<time> <stream> <F|P> <text>".
struct Record {
  std::string_view time, stream, text;
  bool partial = false;  // P: the line goes on in the next record
};
std::optional<Record> parseRecord(std::string_view r) {
  size_t s1 = r.find(' ');
  size_t s2 = s1 == std::string_view::npos ? s1 : r.find(' ', s1 + 1);
  size_t s3 = s2 == std::string_view::npos ? s2 : r.find(' ', s2 + 1);
  // Some conmon versions end a line of P records with a bare "<time>
  // <stream> F" (conmon#629): a record with no text.
  if (s3 == std::string_view::npos && s2 != std::string_view::npos && r.size() == s2 + 2 &&
      (r[s2 + 1] == 'F' || r[s2 + 1] == 'P')) {
    return Record{r.substr(0, s1), r.substr(s1 + 1, s2 - s1 - 1), {}, r[s2 + 1] == 'P'};
  }
  if (s3 == std::string_view::npos) return std::nullopt;
  return Record{r.substr(0, s1), r.substr(s1 + 1, s2 - s1 - 1), r.substr(s3 + 1), r[s2 + 1] == 'P'};
}

}  // namespace

LogChunk readLog(const fs::path& log, LogPosition from, uint64_t max_bytes, bool final) {
  LogChunk out;
  out.next = from;
  std::optional<OpenLog> f = openLog(log);
  if (!f) {
    if (from.offset > 0) {
      out.next = {};
      out.restart = LogRestart::kFromStart;
    }
    return out;
  }
  int fd = f->fd.get();
  if (from.offset > 0) {
    std::optional<std::string> r =
        from.offset <= f->size ? recordEndingAt(fd, from.offset, log) : std::nullopt;
    if (!r || markOf(*r) != from.mark) {
      std::optional<LogPosition> found = findMark(fd, f->size, from.mark, log);
      out.next = found.value_or(LogPosition{});
      out.restart = found ? LogRestart::kAfterMark : LogRestart::kFromStart;
    }
  }
  const uint64_t first = out.next.offset;
  LogLine line;
  bool in_line = false;  // `line` waits for its F record
  LogPosition after_line;  // where `line` read so far ends
  forWholeRecords(fd, first, f->size, log, [&](std::string_view records, uint64_t end) {
    uint64_t at = end - records.size();
    for (size_t start = 0; start < records.size();) {
      size_t nl = records.find('\n', start);
      std::string_view raw = records.substr(start, nl - start);
      start = nl + 1;
      std::optional<Record> r = parseRecord(raw);
      if (!r) {
        // Not conmon's: skipped, and passed over unless inside a line.
        if (!in_line) out.next = {at + start, markOf(raw)};
        continue;
      }
      if (!in_line) line = LogLine{std::string(r->time), std::string(r->stream), {}};
      line.text.append(r->text);
      in_line = r->partial && line.text.size() < max_bytes;
      if (in_line) {
        after_line = {at + start, markOf(raw)};
        continue;
      }
      out.lines.push_back(std::move(line));
      out.next = {at + start, markOf(raw)};
      if (out.next.offset - first >= max_bytes) {
        out.more = out.next.offset < f->size;
        return false;
      }
    }
    return true;
  });
  // Nothing will follow the last piece (its writer is gone): it is the
  // output's last line, though no F record or newline ended it.
  if (final && in_line && !out.more) {
    out.lines.push_back(std::move(line));
    out.next = after_line;
  }
  return out;
}

void writeLogTail(const fs::path& log, ByteSink& out, uint64_t max) {
  std::optional<OpenLog> f = openLog(log);
  if (!f) return;
  uint64_t from = f->size > max ? f->size - max : 0;
  bool at_line = from == 0;
  if (!at_line) {  // a cut right after a newline keeps that line
    char before = 0;
    at_line = readAt(f->fd.get(), &before, 1, from - 1, log) == 1 && before == '\n';
  }
  // Only whole lines: a line half written goes with the next checkpoint.
  forWholeRecords(f->fd.get(), from, f->size, log, [&](std::string_view records, uint64_t) {
    if (!at_line) {
      records.remove_prefix(records.find('\n') + 1);
      at_line = true;
    }
    if (!records.empty()) out.write(records);
    return true;
  });
}

}  // namespace ferry
