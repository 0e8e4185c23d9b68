// Engine::restore and Engine::importCheckpoint: admit a checkpoint (names,
// compatibility, image, volumes -- from its metadata alone, before anything
// is written), then rebuild the container from the staged layout.
#include <fcntl.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>

#include "engine/engine.h"
#include "common/error.h"
#include "common/time_util.h"
#include "common/units.h"
#include "common/fs.h"
#include "engine/image/layer_apply.h"
#include "common/log.h"
#include "engine/store/overlay.h"

namespace ferry {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct Metadata {
  ContainerRecord container;
  HostInfo source;
  CheckpointOptions options;
};

Metadata parseMetadata(const json& j) {
  try {
    int format = j.at("format").get<int>();
    if (format < kOldestCheckpointFormat || format > kCheckpointFormat) {
      throw Error(ErrorCategory::kIncompatible,
                  "checkpoint format " + std::to_string(format) + " is not supported (this ferry "
                  "reads formats " + std::to_string(kOldestCheckpointFormat) + " to " +
                      std::to_string(kCheckpointFormat) + ")");
    }
    Metadata m{j.at("container").get<ContainerRecord>(), j.at("host").get<HostInfo>(), {}};
    const json& o = j.at("options");
    m.options.leave_running = o.value("leave_running", false);
    m.options.tcp_established = o.value("tcp_established", false);
    m.options.file_locks = o.value("file_locks", false);
    // Names become paths on this host: check them before anything uses them.
    validateName(m.container.name(), "container name in the checkpoint");
    validateVolumes(m.container.spec.volumes);
    // The image is matched by exact id only: a name or a prefix here could
    // put CRIU's memory over another image.
    const std::string& id = m.container.image_id;
    bool hex = id.size() == 64 && id.find_first_not_of("0123456789abcdef") == std::string::npos;
    if (!hex) throwInvalidInput("the checkpoint's image id is not a sha256 digest");
    return m;
  } catch (const json::exception& e) {
    throwInvalidInput(std::string("unreadable checkpoint.json: ") + e.what());
  }
}

json readMetadataFile(const fs::path& dir) {
  fs::path file = dir / "checkpoint.json";
  if (!pathExists(file)) throwInvalidInput(dir.string() + " is not a ferry checkpoint (no checkpoint.json)");
  try {
    return json::parse(readFile(file));
  } catch (const json::exception& e) {
    throwInvalidInput("unreadable " + file.string() + ": " + e.what());
  }
}

void applyArchive(const fs::path& archive, const fs::path& root, Whiteouts mode) {
  withContext("applying " + archive.filename().string() + " to " + root.string(), [&] {
    UniqueFd in = openFile(archive, O_RDONLY | O_NOFOLLOW);
    UniqueFd dir = openFile(root, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
    applyLayer(in.get(), dir.get(), mode);
  });
}

}  // namespace

std::vector<Finding> Engine::admit(const json& metadata, const RestoreOptions& opts,
                                   bool log_warnings) {
  Metadata m = parseMetadata(metadata);
  std::string name = opts.name.empty() ? m.container.name() : opts.name;
  validateName(name, "container name");
  if (auto existing = containers_.find(name); existing && !existing->checkpointed) {
    throwInvalidInput("a container named '" + name +
                      "' already exists here (remove it, or restore under another name)");
  }
  CompatInput in{m.source, hostInfo(), m.container.spec.image, m.container.image_id,
                 images_.find(m.container.image_id).has_value()};
  std::vector<Finding> warnings = enforceCompatibility(checkCompatibility(in, opts.ignore),
                                                       m.source.host_name, cfg_.host_name);
  for (const auto& v : m.container.spec.volumes) {
    for (const auto& other : containers_.list()) {
      if (other.name() == name || other.checkpointed) continue;
      for (const auto& ov : other.spec.volumes) {
        if (ov.name == v.name) {
          throwInvalidInput("volume '" + v.name + "' is in use by container '" + other.name() +
                            "' here; a restore cannot replace it");
        }
      }
    }
    if (!volumes_.empty(v.name) && !opts.replace_volumes) {
      throwInvalidInput("volume '" + v.name + "' already exists here and is not empty; remove it or "
                        "restore with --replace-volumes");
    }
  }
  if (log_warnings) {
    for (const auto& w : warnings) engineLog().warn("[{}] {}", name, w.message);
  }
  return warnings;
}

RestoreResult Engine::restore(const fs::path& dir_in, const RestoreOptions& opts) {
  FileLock held = lock();
  fs::path dir = fs::absolute(dir_in);
  return withContext("restoring from " + dir.string() + " on " + cfg_.host_name, [&] {
    verifyDirectory(dir);
    std::vector<Finding> warnings = admit(readMetadataFile(dir), opts);
    RestoreResult r = restoreStaged(dir, opts, opts.origin.empty() ? dir.string() : opts.origin);
    r.warnings = std::move(warnings);
    return r;
  });
}

RestoreResult Engine::importCheckpoint(ByteSource& in, const RestoreOptions& opts,
                                       const BundleLimits& limits) {
  // The host lock is held to admit and to restore, not while the bytes
  // arrive (a stream may take minutes; the host's other work goes on).
  // restoreStaged admits again under the lock: the host may have changed.
  return withContext("importing a checkpoint on " + cfg_.host_name, [&] {
    TempDir stage(cfg_.root / "staging", "import-" + std::to_string(::getpid()) + "-");
    // A bundle may not fill this host's disk: its budget is the free space
    // less a margin (a full disk is refused cleanly, not hit).
    BundleLimits bounded = limits;
    struct statvfs vfs;
    if (::statvfs(stage.path().c_str(), &vfs) == 0) {
      uint64_t free_bytes = uint64_t{vfs.f_bavail} * vfs.f_frsize;
      uint64_t margin = uint64_t{256} << 20;
      uint64_t budget = free_bytes > margin ? free_bytes - margin : 0;
      if (budget < bounded.max_total_bytes) {
        bounded.max_total_bytes = budget;
        bounded.max_total_reason = "what " + cfg_.host_name + " has free for it (" +
                                   formatBytes(free_bytes) + " free in " + stage.path().parent_path().string() +
                                   ", less a 256 MiB margin)";
      }
    }
    std::vector<Finding> warnings;
    readBundle(in, stage.path(), bounded, [&](const json& meta) {
      FileLock held = lock();
      warnings = admit(meta, opts);
    });
    FileLock held = lock();
    admit(readMetadataFile(stage.path()), opts, /*log_warnings=*/false);
    RestoreResult r = restoreStaged(stage.path(), opts, opts.origin.empty() ? "bundle" : opts.origin);
    r.warnings = std::move(warnings);
    // Staging (the whole checkpoint) goes after the verdict, not before it;
    // a crash leaves it to removeStaleStaging (its name carries our pid).
    removeTreeInBackground(stage.release());
    return r;
  });
}

RestoreResult Engine::restoreStaged(const fs::path& dir, const RestoreOptions& opts,
                                    const std::string& origin) {
  auto t0 = Clock::now();
  Metadata meta = parseMetadata(readMetadataFile(dir));
  ContainerRecord rec = meta.container;
  if (!opts.name.empty()) rec.spec.name = opts.name;
  const std::string name = rec.name();
  return withContext("restoring " + name, [&] {
    if (containers_.find(name)) {
      // Admitted, so it is checkpointed: its state is all in its checkpoint.
      runtime_.remove(name, true);
      discard(name);
    }
    ImageRecord image = images_.resolve(rec.image_id);
    ContainerPaths p = containers_.paths(name);
    std::vector<std::string> new_volumes;
    // Replaced volumes are set aside, not deleted, until the restore succeeds.
    std::vector<std::pair<fs::path, fs::path>> set_aside;
    rec.host = cfg_.host_name;
    rec.checkpointed = false;
    rec.restored_from = meta.source.host_name + ":" + origin;
    rec.started_unix = unixNow();
    RestoreResult result;
    assignLabels(rec);
    // CRIU's restore.log outlives a failed restore: the error points at it.
    fs::path restore_work = logDir(name, "restore");
    try {
      containers_.save(rec);
      makeDirs(p.upper());
      applyArchive(dir / "rootfs.tar", p.upper(), Whiteouts::kToOverlay);
      mountOverlay({images_.rootfs(image.id), p.upper(), p.work(), p.rootfs(), rec.mount_label});
      for (const auto& v : rec.spec.volumes) {
        fs::path target = volumes_.path(v.name);
        if (pathExists(target)) {
          fs::path aside = target.parent_path() / "_data.replaced";
          removeTree(aside);
          fs::rename(target, aside);
          set_aside.emplace_back(target, aside);
        } else if (!volumes_.exists(v.name)) {
          new_volumes.push_back(v.name);
        }
        makeDirs(target);
        applyArchive(dir / "volumes" / (v.name + ".tar"), target, Whiteouts::kAsFiles);
      }
      writeSpec(rec, image, /*creating=*/false);
      prepareNotify(rec, /*restoring=*/true);
      // The output so far: conmon appends to it (a checkpoint of an older
      // ferry has none, and the log starts here).
      if (pathExists(dir / "ctr.log")) fs::copy_file(dir / "ctr.log", p.log(), fs::copy_options::overwrite_existing);
      ConmonLaunch l = launchFor(name);
      l.restore_from = dir / "criu";
      l.restore_opts = meta.options;
      l.restore_work = restore_work;
      runtime_.launch(l);
    } catch (...) {
      bestEffort("runc delete", [&] { runtime_.remove(name, true); });
      bestEffort("removing the container's files", [&] { discard(name); });
      for (const auto& v : new_volumes) bestEffort("removing a new volume", [&] { volumes_.remove(v); });
      for (const auto& [target, aside] : set_aside) {
        bestEffort("putting a replaced volume back", [&] {
          removeTree(target);
          fs::rename(aside, target);
        });
      }
      bestEffort("removing empty cgroups", [&] { removeEmptyCgroups(); });
      throw;
    }
    // The container runs: from here on nothing may turn this into a failure
    // (a migration would then resume the source too -- two live copies).
    try {
      for (const auto& [target, aside] : set_aside) removeTree(aside);
      result.criu = readCriuStats(restore_work / "stats-restore").value_or(CriuStats{}).restore;
      result.container = inspectRecord(rec);
    } catch (const std::exception& e) {
      engineLog().warn("[{}] restored, but tidying up after it failed: {}", name, e.what());
      result.container.record = rec;
      result.container.status = ContainerStatus::kRunning;
    }
    result.total_ms = msSince(t0);
    engineLog().info("[{}] restored (from host {}) in {} ms", name, meta.source.host_name,
                     result.total_ms);
    return result;
  });
}

}  // namespace ferry

namespace ferry {

int Engine::removeStaleStaging() {
  fs::path dir = cfg_.root / "staging";
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return 0;
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    // import-<pid>-<random>
    std::string name = e.path().filename().string();
    if (name.rfind("import-", 0) != 0) continue;
    pid_t pid = static_cast<pid_t>(std::atoi(name.c_str() + 7));
    if (pid > 0 && processAlive(pid)) continue;
    bestEffort("removing stale staging", [&] {
      removeTree(e.path());
      ++removed;
    });
  }
  return removed;
}

}  // namespace ferry
