// Reading a running process's memory as CRIU would dump it, for pre-copy.
//
// For each private mapping of /proc/PID/maps, the pages /proc/PID/pagemap
// reports present and anonymous (not file-backed, not shared) -- the pages
// CRIU writes to pages-*.img, each 4 KiB-aligned there -- read from
// /proc/PID/mem.
#include "engine/checkpoint/process_memory.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/fd.h"
#include "engine/bundle/blocks.h"

namespace ferry {

namespace {

constexpr uint64_t kPresent = uint64_t{1} << 63;
constexpr uint64_t kFileOrShared = uint64_t{1} << 61;
constexpr size_t kWindowPages = 256;  // 1 MiB of memory per pagemap read

struct Mapping {
  uint64_t start = 0, end = 0;
};

// The private, readable mappings whose anonymous pages CRIU would dump:
// not the kernel's special ones ([vdso], [vvar], [vsyscall], ...), which
// it handles apart.
std::vector<Mapping> privateMappings(pid_t pid) {
  std::vector<Mapping> out;
  std::ifstream maps("/proc/" + std::to_string(pid) + "/maps");
  std::string line;
  while (std::getline(maps, line)) {
    std::istringstream in(line);
    std::string range, perms, offset, dev, inode, path;
    in >> range >> perms >> offset >> dev >> inode;
    std::getline(in >> std::ws, path);
    if (perms.size() < 4 || perms[0] != 'r' || perms[3] != 'p') continue;
    if (!path.empty() && path.front() == '[' && path != "[heap]" && path != "[stack]" &&
        !path.starts_with("[anon")) {
      continue;
    }
    Mapping m;
    if (std::sscanf(range.c_str(), "%lx-%lx", &m.start, &m.end) != 2 || m.end <= m.start) continue;
    out.push_back(m);
  }
  return out;
}

bool preadAll(int fd, char* buf, size_t n, uint64_t off) {
  size_t got = 0;
  while (got < n) {
    ssize_t r =
        retryEintr([&] { return ::pread(fd, buf + got, n - got, static_cast<off_t>(off + got)); });
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

}  // namespace

// Writes the process's anonymous present pages into `sink`. A process that
// is gone or a range that vanished is skipped.
void readProcessMemory(pid_t pid, ByteSink& sink) {
  std::string proc = "/proc/" + std::to_string(pid);
  UniqueFd pagemap(::open((proc + "/pagemap").c_str(), O_RDONLY | O_CLOEXEC));
  UniqueFd mem(::open((proc + "/mem").c_str(), O_RDONLY | O_CLOEXEC));
  if (pagemap.get() < 0 || mem.get() < 0) return;
  std::vector<uint64_t> entries(kWindowPages);
  std::string buf(kWindowPages * kPageBlock, '\0');
  for (const Mapping& m : privateMappings(pid)) {
    for (uint64_t addr = m.start; addr < m.end;) {
      size_t pages = std::min<uint64_t>(kWindowPages, (m.end - addr) / kPageBlock);
      if (pages == 0) break;
      if (!preadAll(pagemap.get(), reinterpret_cast<char*>(entries.data()), pages * 8,
                    addr / kPageBlock * 8)) {
        break;
      }
      // Runs of wanted pages, each read at once.
      for (size_t i = 0; i < pages;) {
        auto wanted = [&](size_t k) {
          return (entries[k] & kPresent) != 0 && (entries[k] & kFileOrShared) == 0;
        };
        if (!wanted(i)) {
          ++i;
          continue;
        }
        size_t j = i;
        while (j < pages && wanted(j)) ++j;
        size_t n = (j - i) * kPageBlock;
        if (preadAll(mem.get(), buf.data(), n, addr + i * kPageBlock)) {
          sink.write(std::string_view(buf.data(), n));
        }
        i = j;
      }
      addr += pages * kPageBlock;
    }
  }
}


}  // namespace ferry
