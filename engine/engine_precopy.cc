// Engine::precopy: a running container's memory (checkpoint/process_memory.h),
// rootfs diff and volumes, read without freezing it, as content-addressed
// blocks (bundle/blocks.h).
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "engine/engine.h"
#include "engine/checkpoint/process_memory.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/time_util.h"
#include "engine/image/tree_archive.h"

namespace ferry {


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

uint64_t Engine::filesBytes(const std::string& name, uint64_t enough) {
  std::vector<fs::path> trees;
  {
    FileLock held = containerLock(name);
    ContainerRecord rec = containers_.get(name, cfg_.host_name);
    trees.push_back(containers_.paths(name).upper());
    for (const auto& v : rec.spec.volumes) trees.push_back(volumes_.path(v.name));
  }
  // Every entry counts its tar header (512 bytes) besides its data: what
  // crosses, and a walk of at most enough / 512 entries. Links are not
  // followed (the container makes them). A part that vanishes meanwhile
  // ends the walk of its tree: this only weighs a decision.
  constexpr uint64_t kTarHeader = 512;
  uint64_t total = 0;
  for (const auto& tree : trees) {
    std::error_code ec;
    fs::recursive_directory_iterator it(tree, fs::directory_options::skip_permission_denied, ec);
    for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
      total += kTarHeader;
      std::error_code fec;
      fs::file_status st = it->symlink_status(fec);
      if (!fec && fs::is_regular_file(st)) {
        uint64_t size = it->file_size(fec);
        if (!fec) total += size;
      }
      if (total >= enough) return total;
    }
  }
  return total;
}

PrecopyRound Engine::precopy(const std::string& name, BundleWriter& out) {
  auto t0 = std::chrono::steady_clock::now();
  PrecopyRound round;
  ContainerRecord rec;
  fs::path lower;
  {
    FileLock held = containerLock(name);
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
