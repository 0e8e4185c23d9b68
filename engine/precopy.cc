// Engine::precopy: a running container's memory, rootfs diff and volumes,
// read without freezing it, as content-addressed blocks (blocks.h).
//
// Memory: for each process in the container's cgroup, the private mappings
// of /proc/PID/maps; of those, the pages /proc/PID/pagemap reports present
// and anonymous (not file-backed, not shared) -- the pages CRIU writes to
// pages-*.img, each 4 KiB-aligned there -- read from /proc/PID/mem.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "engine/engine.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/log.h"
#include "engine/time_util.h"
#include "engine/tree_archive.h"

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

}  // namespace

std::vector<pid_t> Engine::cgroupPids(const std::string& name) const {
  fs::path rel = fs::path(cfg_.cgroup_parent).relative_path() / name;
  std::vector<pid_t> pids;
  for (const fs::path& base : {fs::path("/sys/fs/cgroup/memory"), fs::path("/sys/fs/cgroup")}) {
    std::ifstream in(base / rel / "cgroup.procs");
    if (!in) continue;
    pid_t pid;
    while (in >> pid) pids.push_back(pid);
    break;
  }
  return pids;
}

PrecopyRound Engine::precopy(const std::string& name, BundleWriter& out) {
  auto t0 = std::chrono::steady_clock::now();
  PrecopyRound round;
  ContainerRecord rec;
  fs::path lower;
  {
    FileLock held = lock();
    rec = containers_.get(name, cfg_.host_name);
    if (inspectRecord(rec).status != ContainerStatus::kRunning) {
      throwInvalidInput(name + " is not running; only a running container is pre-copied");
    }
    lower = images_.rootfs(images_.resolve(rec.image_id).id);
  }
  // Each part in its own blocks sink; a part that fails to read is skipped.
  // A failing `out` (the receiver is gone) ends the round.
  // Returns the bytes read.
  auto part = [&](const std::string& what, Chunking how,
                  const std::function<void(ByteSink&)>& read) {
    try {
      read(out.openBlocks(how));
    } catch (const std::exception& e) {
      if (out.broken()) throw;
      round.warnings.push_back("pre-copy skipped " + what + ": " + e.what());
    }
    BundleWriter::BlocksStats st = out.closeBlocks();
    round.sent_bytes += st.sent;
    return st.scanned;
  };
  for (pid_t pid : cgroupPids(name)) {
    round.memory_bytes += part("the memory of pid " + std::to_string(pid), Chunking::kPages,
                               [&](ByteSink& s) { readProcessMemory(pid, s); });
  }
  ContainerPaths p = containers_.paths(name);
  round.files_bytes += part("the rootfs diff", Chunking::kContent, [&](ByteSink& s) {
    writeTreeArchive(p.upper(), TreeKind::kOverlayUpper, s, lower);
  });
  for (const auto& v : rec.spec.volumes) {
    round.files_bytes += part("volume " + v.name, Chunking::kContent, [&](ByteSink& s) {
      writeTreeArchive(volumes_.path(v.name), TreeKind::kPlain, s);
    });
  }
  // The log only grows: what it held now goes as references later.
  round.files_bytes += part("the log", Chunking::kContent, [&](ByteSink& s) { writeLogTail(p.log(), s); });
  round.ms = msSince(t0);
  for (const auto& w : round.warnings) engineLog().warn("[{}] {}", name, w);
  return round;
}

}  // namespace ferry
