// Engine::checkpoint and Engine::restore: CRIU through runc, plus the
// container's rootfs changes and volumes, into / out of a checkpoint
// directory (layout in engine.h).
#include "engine/engine.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/log.h"
#include "engine/oci_spec.h"
#include "engine/overlay.h"

namespace ferry {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

int64_t msSince(Clock::time_point t0) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
}

json optionsJson(const CheckpointOptions& o) {
  return {{"leave_running", o.leave_running},
          {"tcp_established", o.tcp_established},
          {"file_locks", o.file_locks}};
}

CheckpointOptions optionsFrom(const json& j) {
  CheckpointOptions o;
  o.leave_running = j.value("leave_running", false);
  o.tcp_established = j.value("tcp_established", false);
  o.file_locks = j.value("file_locks", false);
  return o;
}

struct CheckpointMeta {
  ContainerRecord container;
  HostInfo source;
  CheckpointOptions options;
};

CheckpointMeta readMeta(const fs::path& dir) {
  fs::path file = dir / "checkpoint.json";
  if (!pathExists(file)) {
    throw Error(ErrorCategory::kInvalidInput,
                dir.string() + " is not a ferry checkpoint (no checkpoint.json)");
  }
  try {
    json j = json::parse(readFile(file));
    int format = j.at("format").get<int>();
    if (format != kCheckpointFormat) {
      throw Error(ErrorCategory::kIncompatible,
                  "checkpoint format " + std::to_string(format) + " is not supported (this ferry "
                  "reads format " + std::to_string(kCheckpointFormat) + ")");
    }
    CheckpointMeta meta{j.at("container").get<ContainerRecord>(), j.at("host").get<HostInfo>(),
                        optionsFrom(j.at("options"))};
    // Names become paths on this host: check them before anything uses them.
    validateName(meta.container.name(), "container name in the checkpoint");
    for (const auto& v : meta.container.spec.volumes) validateName(v.name, "volume name in the checkpoint");
    return meta;
  } catch (const json::exception& e) {
    throw Error(ErrorCategory::kInvalidInput, "unreadable " + file.string() + ": " + e.what());
  }
}

}  // namespace

CheckpointResult Engine::checkpoint(const std::string& name, const fs::path& dir_in,
                                    const CheckpointOptions& opts) {
  FileLock held = lock();
  return withContext("checkpointing " + name + " on " + cfg_.host_name, [&] {
    auto t0 = Clock::now();
    ContainerRecord rec = containers_.get(name, cfg_.host_name);
    ContainerInfo info = inspectRecord(rec);
    if (info.status != ContainerStatus::kRunning) {
      throw Error(ErrorCategory::kInvalidInput,
                  "container is " + std::string(statusName(info.status)) +
                      "; only a running container can be checkpointed");
    }
    const HostInfo& source = hostInfo();  // before the freeze: it runs CRIU and runc
    fs::path dir = fs::absolute(dir_in);
    std::error_code ec;
    if (pathExists(dir) && !fs::is_empty(dir, ec)) {
      throw Error(ErrorCategory::kInvalidInput,
                  "checkpoint directory " + dir.string() + " is not empty");
    }
    // Only what this call made is removed on failure.
    const bool made_dir = !pathExists(dir);
    auto discardDir = [&] { made_dir ? removeTree(dir) : emptyDir(dir); };
    makeDirs(dir / "criu", 0700);
    makeDirs(dir / "criu-work", 0700);
    ContainerPaths p = containers_.paths(name);

    // With --leave-running the container is paused around the dump and the
    // copies, so memory, rootfs and volumes are one consistent moment.
    if (opts.leave_running) runtime_.pause(name);
    auto resumeIfPaused = [&] {
      if (opts.leave_running && inspectRecord(rec).status == ContainerStatus::kPaused) {
        runtime_.resume(name);
      }
    };
    auto td = Clock::now();
    try {
      runtime_.checkpoint(name, dir / "criu", dir / "criu-work", opts);
    } catch (...) {
      resumeIfPaused();
      discardDir();
      throw;
    }
    CheckpointResult result;
    result.dump_ms = msSince(td);
    if (!opts.leave_running) {
      rec.checkpointed = true;
      containers_.save(rec);
    }

    try {
      copyTree(p.upper(), dir / "rootfs-upper");
      makeDirs(dir / "volumes", 0700);
      for (const auto& v : rec.spec.volumes) copyTree(volumes_.path(v.name), dir / "volumes" / v.name);
      copyTree(p.config(), dir / "config.json");
      result.criu = readCriuStats(dir / "criu-work" / "stats-dump").value_or(CriuStats{}).dump;
      json meta = {{"format", kCheckpointFormat},
                   {"container", rec},
                   {"host", source},
                   {"options", optionsJson(opts)},
                   {"created_unix", std::chrono::duration_cast<std::chrono::seconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count()},
                   {"criu_dump_stats", result.criu ? json(*result.criu) : json(nullptr)}};
      writeFileAtomic(dir / "checkpoint.json", meta.dump(2) + "\n", 0600);
    } catch (Error& e) {
      if (opts.leave_running) {
        resumeIfPaused();
        discardDir();
        throw;
      }
      // The dump ended the process: bring it back from its own images so a
      // failed checkpoint loses nothing. Should that fail too, the images are
      // the only copy left, and stay.
      withContext("rolling back a checkpoint that failed after the dump (" + std::string(e.what()) +
                      "); the CRIU images are kept in " + (dir / "criu").string(),
                  [&] {
                    ConmonLaunch l = launchFor(name);
                    l.restore_from = dir / "criu";
                    l.restore_opts = opts;
                    runtime_.launch(l);
                  });
      rec.checkpointed = false;
      containers_.save(rec);
      discardDir();
      e.addContext("after the dump (the container was restored from its images and runs again)");
      throw;
    }
    resumeIfPaused();
    rec.checkpoint_dir = dir.string();
    containers_.save(rec);

    result.dir = dir;
    result.memory_bytes = treeSize(dir / "criu");
    result.rootfs_bytes = treeSize(dir / "rootfs-upper");
    result.volume_bytes = treeSize(dir / "volumes");
    result.total_ms = msSince(t0);
    engineLog().info("[{}] checkpointed to {} in {} ms (dump {} ms)", name,
                                dir.string(), result.total_ms, result.dump_ms);
    return result;
  });
}

RestoreResult Engine::restore(const fs::path& dir_in, const RestoreOptions& opts) {
  FileLock held = lock();
  fs::path dir = fs::absolute(dir_in);
  CheckpointMeta meta = withContext("restoring from " + dir.string(), [&] { return readMeta(dir); });
  ContainerRecord rec = meta.container;
  if (!opts.name.empty()) rec.spec.name = opts.name;
  const std::string name = rec.name();
  return withContext("restoring " + name + " on " + cfg_.host_name + " from " + dir.string(), [&] {
    auto t0 = Clock::now();
    validateName(name, "container name");
    if (auto existing = containers_.find(name)) {
      if (!existing->checkpointed) {
        throw Error(ErrorCategory::kInvalidInput, "a container named '" + name +
                                                      "' already exists here (remove it, or "
                                                      "restore under another name)");
      }
      // A checkpointed container's state is all in its checkpoint directory.
      runtime_.remove(name, true);
      discard(name);
    }
    auto image = images_.find(rec.image_id);
    if (!image) {
      throw Error(ErrorCategory::kIncompatible,
                  "image " + rec.spec.image + " (sha256:" + rec.image_id.substr(0, 12) +
                      ") is not on this host; import it here first");
    }
    for (const auto& v : rec.spec.volumes) {
      if (!volumes_.empty(v.name) && !opts.replace_volumes) {
        throw Error(ErrorCategory::kInvalidInput,
                    "volume '" + v.name + "' already exists here and is not empty; remove it or "
                    "restore with replace-volumes");
      }
    }

    ContainerPaths p = containers_.paths(name);
    std::vector<std::string> new_volumes;
    // Replaced volumes are set aside, not deleted, until the restore succeeds.
    std::vector<std::pair<fs::path, fs::path>> set_aside;
    rec.host = cfg_.host_name;
    rec.checkpointed = false;
    rec.restored_from = meta.source.host_name + ":" + dir.string();
    rec.started_unix = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    RestoreResult result;
    try {
      containers_.save(rec);
      copyTree(dir / "rootfs-upper", p.upper());
      mountOverlay({images_.rootfs(image->id), p.upper(), p.work(), p.rootfs()});
      for (const auto& v : rec.spec.volumes) {
        if (!volumes_.exists(v.name)) new_volumes.push_back(v.name);
        fs::path target = volumes_.path(v.name);
        if (pathExists(target)) {
          fs::path aside = target.parent_path() / "_data.replaced";
          removeTree(aside);
          fs::rename(target, aside);
          set_aside.emplace_back(target, aside);
        }
        makeDirs(target.parent_path());
        copyTree(dir / "volumes" / v.name, target);
      }
      writeSpec(rec, *image);
      ConmonLaunch l = launchFor(name);
      l.restore_from = dir / "criu";
      l.restore_opts = meta.options;
      runtime_.launch(l);
    } catch (...) {
      runtime_.remove(name, true);
      discard(name);
      for (const auto& v : new_volumes) volumes_.remove(v);
      for (const auto& [target, aside] : set_aside) {
        removeTree(target);
        fs::rename(aside, target);
      }
      removeEmptyCgroups();
      throw;
    }
    for (const auto& [target, aside] : set_aside) removeTree(aside);
    result.criu = readCriuStats(p.restore_work() / "stats-restore").value_or(CriuStats{}).restore;
    result.container = inspectRecord(rec);
    result.total_ms = msSince(t0);
    engineLog().info("[{}] restored from {} (host {}) in {} ms", name, dir.string(),
                                meta.source.host_name, result.total_ms);
    return result;
  });
}

}  // namespace ferry
