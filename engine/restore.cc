// Engine::restore and Engine::importCheckpoint: admit a checkpoint (names,
// compatibility, image, volumes -- from its metadata alone, before anything
// is written), then rebuild the container from the staged layout.
#include <fcntl.h>

#include "engine/engine.h"
#include "engine/error.h"
#include "engine/fs.h"
#include "engine/layer_apply.h"
#include "engine/log.h"
#include "engine/overlay.h"

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
    if (format != kCheckpointFormat) {
      throw Error(ErrorCategory::kIncompatible,
                  "checkpoint format " + std::to_string(format) + " is not supported (this ferry "
                  "reads format " + std::to_string(kCheckpointFormat) + ")");
    }
    Metadata m{j.at("container").get<ContainerRecord>(), j.at("host").get<HostInfo>(), {}};
    const json& o = j.at("options");
    m.options.leave_running = o.value("leave_running", false);
    m.options.tcp_established = o.value("tcp_established", false);
    m.options.file_locks = o.value("file_locks", false);
    // Names become paths on this host: check them before anything uses them.
    validateName(m.container.name(), "container name in the checkpoint");
    for (const auto& v : m.container.spec.volumes) validateName(v.name, "volume name in the checkpoint");
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

std::vector<Finding> Engine::admit(const json& metadata, const RestoreOptions& opts) {
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
    if (!volumes_.empty(v.name) && !opts.replace_volumes) {
      throwInvalidInput("volume '" + v.name + "' already exists here and is not empty; remove it or "
                        "restore with --replace-volumes");
    }
  }
  for (const auto& w : warnings) engineLog().warn("[{}] {}", name, w.message);
  return warnings;
}

RestoreResult Engine::restore(const fs::path& dir_in, const RestoreOptions& opts) {
  FileLock held = lock();
  fs::path dir = fs::absolute(dir_in);
  return withContext("restoring from " + dir.string() + " on " + cfg_.host_name, [&] {
    std::vector<Finding> warnings = admit(readMetadataFile(dir), opts);
    verifyDirectory(dir);
    RestoreResult r = restoreStaged(dir, opts, dir.string());
    r.warnings = std::move(warnings);
    return r;
  });
}

RestoreResult Engine::importCheckpoint(ByteSource& in, const RestoreOptions& opts,
                                       const BundleLimits& limits) {
  FileLock held = lock();
  return withContext("importing a checkpoint on " + cfg_.host_name, [&] {
    TempDir stage(cfg_.root / "staging", "import-");
    std::vector<Finding> warnings;
    readBundle(in, stage.path(), limits, [&](const json& meta) { warnings = admit(meta, opts); });
    RestoreResult r = restoreStaged(stage.path(), opts, "bundle");
    r.warnings = std::move(warnings);
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
    rec.started_unix = std::chrono::duration_cast<std::chrono::seconds>(
                           std::chrono::system_clock::now().time_since_epoch())
                           .count();
    RestoreResult result;
    try {
      containers_.save(rec);
      makeDirs(p.upper());
      applyArchive(dir / "rootfs.tar", p.upper(), Whiteouts::kToOverlay);
      mountOverlay({images_.rootfs(image.id), p.upper(), p.work(), p.rootfs()});
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
      writeSpec(rec, image);
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
    result.total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
    engineLog().info("[{}] restored (from host {}) in {} ms", name, meta.source.host_name,
                     result.total_ms);
    return result;
  });
}

}  // namespace ferry
