// Engine::restore and Engine::importCheckpoint: admit a checkpoint (names,
// compatibility, image, volumes -- from its metadata alone, before anything
// is written), then rebuild the container from the staged layout.
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>

#include "engine/engine.h"
#include "common/error.h"
#include "common/time_util.h"
#include "common/units.h"
#include "common/fs.h"
#include "engine/checkpoint/page_stream.h"
#include "engine/image/layer_apply.h"
#include "common/log.h"
#include "engine/store/carried_record.h"
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
    m.options.tcp_close = o.value("tcp_close", false);
    m.options.file_locks = o.value("file_locks", false);
    m.options.lazy_pages = o.value("lazy_pages", false);
    // Names become paths on this host, volumes mounts, labels contexts:
    // check the whole record before anything uses it.
    validateCarriedRecord(m.container);
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
  if (!opts.expect_container.empty() && m.container.name() != opts.expect_container) {
    throwInvalidInput("this stream was prepared for container '" + opts.expect_container +
                      "', but it carries a bundle of '" + m.container.name() +
                      "'; refused, nothing restored (migrate each container by its own name)");
  }
  if (m.options.lazy_pages && !opts.on_lazy_start) {
    throwInvalidInput("this checkpoint of " + m.container.name() +
                      " was dumped for post-copy: its memory stayed on the source and comes "
                      "only through that migration's stream; it cannot be restored on its own");
  }
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
  // Its user namespace's range travels with it: reserved here, or refused
  // (its files on disk carry those ids; another range would need a chown).
  if (const UsernsRange& ids = m.container.id_range; !ids.empty()) {
    for (const auto& other : containers_.list()) {
      if (other.name() != name && overlaps(other.id_range, ids)) {
        throw Error(ErrorCategory::kIncompatible,
                    name + "'s user namespace maps to " + describe(ids) + ", which container '" +
                        other.name() + "' on " + cfg_.host_name +
                        " uses; move or remove that container first");
      }
    }
  }
  if (log_warnings) {
    for (const auto& w : warnings) engineLog().warn("[{}] {}", name, w.message);
  }
  return warnings;
}

namespace {

std::string restoredName(const json& metadata, const RestoreOptions& opts) {
  std::string name = opts.name.empty() ? parseMetadata(metadata).container.name() : opts.name;
  validateName(name, "container name");
  return name;
}

// A migration's "pages" stream (checkpoint/page_stream.h), fed to CRIU's
// page server, which writes the pagemap and pages images into the staged
// images as the source's CRIU dumps them.
class PageServerStream final : public DivertedStream {
 public:
  PageServerStream(Child server, UniqueFd fd, fs::path images, fs::path work)
      : server_(std::move(server)), fd_(std::move(fd)), feed_(fd_.get(), kSilence),
        images_(std::move(images)), work_(std::move(work)) {}

  void write(std::string_view data) override {
    try {
      feed_.write(data);
    } catch (Error& e) {
      throw failed(std::move(e));
    }
  }

  void finish() override {
    try {
      feed_.finish();
    } catch (Error& e) {
      throw failed(std::move(e));
    }
    ::shutdown(fd_.get(), SHUT_WR);
    std::optional<int> status = server_.waitFor(kSilence);
    if (!status) {
      server_.kill(SIGKILL);
      throw failed(Error(ErrorCategory::kPermanent, "it did not end within " +
                                                        std::to_string(kSilence.count()) + " ms"));
    }
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
      throw failed(Error(ErrorCategory::kPermanent, "it failed (wait status " +
                                                        std::to_string(*status) + ")"));
    }
    checkImages();
    bestEffort("marking the page server's log done", [&] { markLogDone(work_); });
    engineLog().info("{} pages of {} processes or segments written by CRIU's page server",
                     feed_.stats().pages, feed_.stats().pagemaps);
  }

 private:
  static constexpr std::chrono::milliseconds kSilence{60'000};

  // The server's own account, beside what went wrong (when it stopped
  // taking pages it is ending: its log is complete once it has).
  Error failed(Error e) {
    fs::path log = work_ / "page-server.log";
    if (e.category() != ErrorCategory::kInvalidInput) {
      server_.waitFor(std::chrono::seconds(2));
      e.addContext("CRIU's page server (log " + log.string() + ": " + lastCriuErrors(log) + ")");
    }
    return e;
  }

  // CRIU's page server exits 0 even when its last write of a pagemap
  // failed (it only logs it): what it wrote is checked against what it
  // was fed -- a pagemap image per open, none empty, and every page.
  void checkImages() {
    uint64_t pagemaps = 0, page_bytes = 0;
    std::string empty;
    for (const auto& e : fs::directory_iterator(images_)) {
      const std::string n = e.path().filename().string();
      if (n.starts_with("pagemap-")) {
        ++pagemaps;
        if (e.file_size() == 0) empty = n;
      } else if (n.starts_with("pages-")) {
        page_bytes += e.file_size();
      }
    }
    const PageStreamStats& fed = feed_.stats();
    if (pagemaps != fed.pagemaps || page_bytes != fed.bytes() || !empty.empty()) {
      throw failed(Error(ErrorCategory::kPermanent,
                         "it ended well but wrote " + std::to_string(pagemaps) + " pagemap(s) " +
                             (empty.empty() ? "" : "(" + empty + " empty) ") + "and " +
                             std::to_string(page_bytes) + " bytes of pages for " +
                             std::to_string(fed.pagemaps) + " and " +
                             std::to_string(fed.bytes()) + " (a disk full?)"));
    }
  }

  Child server_;  // killed, if still running, when the stream is dropped
  UniqueFd fd_;
  PageStreamFeed feed_;
  fs::path images_;
  fs::path work_;
};

}  // namespace

RestoreResult Engine::restore(const fs::path& dir_in, const RestoreOptions& opts) {
  fs::path dir = fs::absolute(dir_in);
  return withContext("restoring from " + dir.string() + " on " + cfg_.host_name, [&] {
    verifyDirectory(dir);
    FileLock held = containerLock(restoredName(readMetadataFile(dir), opts));
    return restoreStaged(dir, opts, opts.origin.empty() ? dir.string() : opts.origin,
                         /*log_warnings=*/true);
  });
}

RestoreResult Engine::importCheckpoint(ByteSource& in, const RestoreOptions& opts,
                                       const BundleLimits& limits) {
  // No lock is held while the bytes arrive (a stream may take minutes; the
  // host's other work goes on): the host's to admit from the metadata, then
  // the container's to restore, which admits again (the host may have
  // changed meanwhile).
  return withContext("importing a checkpoint on " + cfg_.host_name, [&] {
    TempDir stage(cfg_.root / "staging", "import-" + std::to_string(::getpid()) + "-");
    // A bundle may not fill this host's disk: its budget is the free space
    // less a margin (a full disk is refused cleanly, not hit).
    BundleLimits bounded = boundedByFreeDisk(limits, stage.path().parent_path(), cfg_.host_name);
    std::vector<Finding> warnings;
    std::string name;  // once admitted
    auto pages = [&]() -> std::unique_ptr<DivertedStream> {
      fs::path images = stage.path() / "criu";
      makeDirs(images, 0700);
      int pair[2];
      if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) != 0) {
        throwErrno("socketpair for CRIU's page server");
      }
      UniqueFd ours(pair[0]), theirs(pair[1]);
      fs::path work = logDir(name, "page-server");
      Child server = runtime_.startPageServer(images, work, theirs.get());
      return std::make_unique<PageServerStream>(std::move(server), std::move(ours), images, work);
    };
    BundleReadResult read = readBundle(
        in, stage.path(), bounded,
        [&](const json& meta) {
          FileLock host = hostLock();
          warnings = admit(meta, opts);
          name = restoredName(meta, opts);
        },
        pages);
    FileLock held = containerLock(restoredName(readMetadataFile(stage.path()), opts));
    RestoreOptions with_blocks = opts;
    if (opts.on_lazy_start && read.blocks) {
      // Post-copy after pre-copy: the pages the target holds are served here.
      with_blocks.on_lazy_start = [&](const RestoreOptions::LazyStart& s) {
        RestoreOptions::LazyStart more = s;
        more.precopied = read.blocks;
        return opts.on_lazy_start(more);
      };
    }
    RestoreResult r = restoreStaged(stage.path(), with_blocks,
                                    opts.origin.empty() ? "bundle" : opts.origin,
                                    /*log_warnings=*/false);
    read.blocks.reset();
    r.warnings = std::move(warnings);
    // Staging (the whole checkpoint) goes after the verdict, not before it;
    // a crash leaves it to removeStaleStaging (its name carries our pid).
    // A post-copy's daemon reads the images until the last page arrived.
    if (r.lazy) {
      r.lazy->onEnd([dir = stage.release()] { removeTreeInBackground(dir); });
    } else {
      removeTreeInBackground(stage.release());
    }
    return r;
  });
}

RestoreResult Engine::restoreStaged(const fs::path& dir, const RestoreOptions& opts,
                                    const std::string& origin, bool log_warnings) {
  auto t0 = Clock::now();
  const json metadata = readMetadataFile(dir);
  Metadata meta = parseMetadata(metadata);
  ContainerRecord rec = meta.container;
  if (!opts.name.empty()) rec.spec.name = opts.name;
  const std::string name = rec.name();
  return withContext("restoring " + name, [&] {
    RestoreResult result;
    // Under the host's lock it is admitted (again: the host may have changed
    // since a bundle's metadata arrived), given its SELinux level, recorded,
    // and its volumes claimed; from then on no other create or restore can
    // take its name, its level or a volume it replaces. The long part -- the
    // archives and CRIU -- runs under its own lock alone.
    std::optional<FileLock> host(hostLock());
    result.warnings = admit(metadata, opts, log_warnings);
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
    rec.checkpoint_dir.clear();  // the source's path, not this host's
    rec.started_unix = unixNow();
    assignLabels(rec);
    // CRIU's restore.log outlives a failed restore: the error points at it.
    fs::path restore_work = logDir(name, "restore");
    try {
      containers_.save(rec);
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
      }
      host.reset();
      makeDirs(p.upper());
      applyArchive(dir / "rootfs.tar", p.upper(), Whiteouts::kToOverlay);
      mountRootfs(rec, image);
      for (const auto& v : rec.spec.volumes) {
        applyArchive(dir / "volumes" / (v.name + ".tar"), volumes_.path(v.name), Whiteouts::kAsFiles);
      }
      // Its address is reachable here once writeSpec attached it (this
      // host routes it to the new namespace), but its sockets come back only
      // with the restore: a peer's packet meanwhile would meet no socket and
      // be answered with a reset. So the namespace is made locked (nothing in
      // or out) and unlocked once CRIU has put them back.
      writeSpec(rec, image, /*creating=*/false);
      const bool networked = !rec.spec.network.empty() && networking_;
      // CRIU must be told again that the connections were dumped to be dropped.
      writeFileAtomic(p.criu_config(), networked && meta.options.tcp_close ? "tcp-close\n" : "", 0600);
      prepareNotify(rec, /*restoring=*/true);
      // The output so far: conmon appends to it (a checkpoint of an older
      // ferry has none, and the log starts here).
      if (pathExists(dir / "ctr.log")) fs::copy_file(dir / "ctr.log", p.log(), fs::copy_options::overwrite_existing);
      giveImagesToItsRoot(dir / "criu", rec.id_range);
      ConmonLaunch l = launchFor(name);
      l.restore_from = dir / "criu";
      l.restore_opts = meta.options;
      l.restore_work = restore_work;
      if (meta.options.lazy_pages) {
        // Its memory is still on the source: the daemon that fetches it
        // must listen before CRIU restores (and hands it the faults).
        RestoreOptions::LazyPagesFds fds = opts.on_lazy_start({dir / "criu", nullptr});
        result.lazy = runtime_.startLazyPages(name, dir / "criu", restore_work, fds.daemon,
                                              fds.caller);
      }
      runtime_.launch(l);
      // A copy whose traffic stays dropped would run cut off: a failed
      // restore (the source resumes) rather than a committed one.
      if (networked) networking_->unlockOrThrow(name);
    } catch (...) {
      if (result.lazy) bestEffort("stopping the lazy-pages daemon", [&] { result.lazy->abort(); });
      bestEffort("runc delete", [&] { runtime_.remove(name, true); });
      bestEffort("removing the container's files", [&] { discard(name); });
      for (const auto& v : new_volumes) bestEffort("removing a new volume", [&] { volumes_.remove(v); });
      // A pair, not a structured binding: clang 14 cannot capture those.
      for (const auto& moved : set_aside) {
        bestEffort("putting a replaced volume back", [&] {
          removeTree(moved.first);
          fs::rename(moved.second, moved.first);
        });
      }
      throw;
    }
    // The container runs: from here on nothing may turn this into a failure
    // (a migration would then resume the source too -- two live copies).
    try {
      for (const auto& [target, aside] : set_aside) removeTree(aside);
      result.criu = readCriuStats(restore_work / "stats-restore").value_or(CriuStats{}).restore;
      bestEffort("marking the restore's log done", [&] { markLogDone(restore_work); });
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

// CRIU reads some images as the restored task, in its user namespace: they
// become its root's (they hold its own memory). The task reads
// timens-0.img before its uid map is written, while it is still the host's
// root without power over files of unmapped owners (a race in CRIU 4.1.1: a
// restore failed one time in two with "Unable to open timens-0.img:
// Permission denied"), so their group is root's and may read them too.
void giveImagesToItsRoot(const fs::path& criu_dir, const UsernsRange& ids) {
  if (ids.empty()) return;
  auto give = [&](const fs::path& f) {
    if (::lchown(f.c_str(), ids.host, 0) != 0) throwErrno("chown " + f.string());
    struct stat st {};
    if (::lstat(f.c_str(), &st) != 0) throwErrno("stat " + f.string());
    if (S_ISLNK(st.st_mode)) return;
    mode_t add = S_IRGRP | (S_ISDIR(st.st_mode) ? S_IXGRP : 0);
    if (::chmod(f.c_str(), (st.st_mode & 07777) | add) != 0) throwErrno("chmod " + f.string());
  };
  give(criu_dir);
  for (const auto& e : fs::directory_iterator(criu_dir)) give(e.path());
}

}  // namespace ferry

