#include "engine/engine.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <selinux/selinux.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <set>

#include "common/error.h"
#include "common/random.h"
#include "common/time_util.h"
#include "common/log.h"
#include "common/fs.h"
#include "engine/spec/identity.h"
#include "engine/spec/oci_spec.h"
#include "engine/runtime/host_probe.h"
#include "engine/runtime/wait.h"
#include "engine/store/idmap.h"
#include "engine/store/overlay.h"
#include "engine/spec/selinux_label.h"
#include "engine/spec/workdir.h"

namespace ferry {

using nlohmann::json;

std::string_view statusName(ContainerStatus s) {
  switch (s) {
    case ContainerStatus::kCreated: return "created";
    case ContainerStatus::kRunning: return "running";
    case ContainerStatus::kPaused: return "paused";
    case ContainerStatus::kExited: return "exited";
    case ContainerStatus::kCheckpointed: return "checkpointed";
  }
  return "unknown";
}

void to_json(json& j, const ContainerInfo& c) {
  j = json{{"name", c.name()},
           {"status", statusName(c.status)},
           {"pid", c.pid},
           {"exit_code", c.exit_code ? json(*c.exit_code) : json(nullptr)},
           {"ready", c.ready},
           {"notify_status", c.notify_status},
           {"record", c.record}};
}

void to_json(json& j, const CheckpointResult& r) {
  j = json{{"dir", r.dir.string()},          {"total_ms", r.total_ms},
           {"dump_ms", r.dump_ms},           {"memory_bytes", r.memory_bytes},
           {"rootfs_bytes", r.rootfs_bytes}, {"volume_bytes", r.volume_bytes},
           {"bundle_bytes", r.bundle_bytes},
           {"criu", r.criu ? json(*r.criu) : json(nullptr)}};
}

void to_json(json& j, const RestoreResult& r) {
  j = json{{"container", r.container}, {"total_ms", r.total_ms},
           {"criu", r.criu ? json(*r.criu) : json(nullptr)}, {"warnings", r.warnings}};
}

Engine::Engine(EngineConfig cfg, CommandRunner& runner)
    : cfg_(withDefaults(std::move(cfg))),
      runner_(runner),
      runtime_(cfg_, runner),
      images_(cfg_.root / "images"),
      volumes_(cfg_.root / "volumes"),
      secrets_(cfg_.root / "secrets"),
      containers_(cfg_.root / "containers") {
  makeDirs(runcRoot(cfg_), 0700);
  makeDirs(cfg_.root / "logs", 0700);  // CRIU's dump and restore logs
  makeDirs(cfg_.root / "locks", 0700);
}

FileLock Engine::hostLock() { return FileLock(cfg_.root / "lock"); }

FileLock Engine::containerLock(const std::string& name) {
  validateName(name, "container name");  // it names a file
  return FileLock(cfg_.root / "locks" / name);
}

fs::path Engine::logDir(const std::string& name, const std::string& what) const {
  // One directory per operation grew without end: a container migrated
  // back and forth left a dump log (~50 KB) per move on each host. What
  // stays is cfg_.logs's (log_retention.h): failures, the newest few, a
  // size cap -- a removed container's logs included.
  fs::path logs = cfg_.root / "logs";
  // Milliseconds: two operations in one second shared a directory, the
  // second's CRIU log overwriting the first's.
  fs::path dir = logs / (name + "-" + what + "-" + std::to_string(unixMillis()));
  pruneLogs(logs, cfg_.logs, std::chrono::system_clock::now(), dir);
  return dir;
}

const HostInfo& Engine::hostInfo() {
  std::lock_guard<std::mutex> g(host_info_mu_);
  if (!host_info_) host_info_ = collectHostInfo(cfg_, runner_);
  return *host_info_;
}

std::optional<int> Engine::exitCode(const std::string& name) const {
  std::ifstream in(containers_.paths(name).exit_dir() / name);
  int code;
  if (in >> code) return code;
  return std::nullopt;
}

ContainerInfo Engine::inspectRecord(const ContainerRecord& rec) {
  return inspectRecord(rec, runtime_.state(rec.name()));
}

ContainerInfo Engine::inspectRecord(const ContainerRecord& rec,
                                    const std::optional<RuncState>& st) {
  ContainerInfo info{rec};
  if (rec.spec.sdnotify == "container") {
    NotifyState n = readNotifyState(containers_.paths(rec.name()).notify_state());
    info.ready = n.ready;
    info.notify_status = n.status;
  }
  if (st && st->status != "stopped") {
    info.pid = st->pid;
    info.status = st->status == "running"  ? ContainerStatus::kRunning
                  : st->status == "paused" ? ContainerStatus::kPaused
                                           : ContainerStatus::kCreated;
    // A lazy dump (post-copy) holds the tasks with ptrace while it serves
    // their pages, and thaws the freezer meanwhile: runc says running, but
    // nothing runs until CRIU lets them go. CRIU freezes them again before
    // it lets go, so a task no longer traced may already be frozen after
    // runc's look: the freezer, read after the trace state, tells.
    if (info.status == ContainerStatus::kRunning &&
        (processTraceStopped(st->pid) || processCgroupFrozen(st->pid))) {
      info.status = ContainerStatus::kPaused;
    }
    if (rec.spec.sdnotify != "container") info.ready = info.status == ContainerStatus::kRunning;
    return info;
  }
  // conmon records 137 when CRIU's dump ends the process; the record tells
  // that apart from a real SIGKILL.
  info.status = rec.checkpointed ? ContainerStatus::kCheckpointed : ContainerStatus::kExited;
  if (!rec.checkpointed) info.exit_code = exitCode(rec.name());
  return info;
}

ContainerInfo Engine::inspect(const std::string& name) {
  return inspectRecord(containers_.get(name, cfg_.host_name));
}

std::vector<ContainerInfo> Engine::list() {
  // One `runc list` for every container (the agent lists at each heartbeat).
  // Records before runc's list: a container created in between is left out,
  // not shown as exited.
  std::vector<ContainerRecord> records = containers_.list();
  std::map<std::string, RuncState> states = runtime_.list();
  std::vector<ContainerInfo> out;
  for (const auto& rec : records) {
    auto it = states.find(rec.name());
    out.push_back(
        inspectRecord(rec, it == states.end() ? std::nullopt : std::optional(it->second)));
  }
  return out;
}

namespace {

// A file as the container will see it: from the volume mounted over it (the
// longest destination that contains it), else from its rootfs. Missing or
// unreadable: empty.
std::string containerFile(const fs::path& rootfs, const std::vector<VolumeMount>& volumes,
                          const std::vector<std::string>& sources, const std::string& path) {
  fs::path base = rootfs;
  std::string rel = path.substr(1);
  size_t best = 0;
  for (size_t i = 0; i < volumes.size(); ++i) {
    const std::string& d = volumes[i].destination;
    if ((path == d || path.rfind(d + "/", 0) == 0) && d.size() > best) {
      best = d.size();
      base = sources[i];
      rel = path.substr(std::min(path.size(), d.size() + 1));
    }
  }
  // Strictly beneath the container's root (or the volume): never through a
  // symlink anywhere on the way, so an image cannot point it at the host.
  try {
    UniqueFd dir = openFile(base, O_RDONLY | O_DIRECTORY);
    UniqueFd fd = openBeneath(dir.get(), rel, O_RDONLY);
    std::string out, buf(65536, '\0');
    for (;;) {
      ssize_t n = retryEintr([&] { return ::read(fd.get(), buf.data(), buf.size()); });
      if (n <= 0) break;
      out.append(buf.data(), static_cast<size_t>(n));
      if (out.size() > (16u << 20)) return "";  // not a passwd file
    }
    return out;
  } catch (const std::exception&) {
    return "";
  }
}

// lsetfilecon on the tree, symlinks themselves included.
void relabelTree(const fs::path& root, const std::string& context) {
  auto one = [&](const fs::path& f) {
    if (::lsetfilecon(f.c_str(), context.c_str()) != 0) throwErrno("relabeling " + f.string() + " as " + context);
  };
  one(root);
  for (const auto& e : fs::recursive_directory_iterator(root)) one(e.path());
}

mode_t modeOf(const fs::path& p) {
  struct stat st {};
  if (::stat(p.c_str(), &st) != 0) throwErrno("stat " + p.string());
  return st.st_mode & 07777;
}

UserDb userDbAt(const std::function<std::string(const std::string&)>& read) {
  return {parsePasswd(read("/etc/passwd")), parseGroup(read("/etc/group"))};
}

}  // namespace

void Engine::writeSpec(const ContainerRecord& rec, const ImageRecord& image, bool creating) {
  ContainerPaths p = containers_.paths(rec.name());
  SpecHostInputs host;
  // Secrets' values: read here, written only to config.json (0600).
  for (const auto& s : rec.spec.secrets) {
    host.secret_env.push_back(s.target + "=" + secrets_.get(s.name, cfg_.host_name));
  }
  if (rec.spec.sdnotify == "container") host.notify_dir = p.notify_dir().string();
  host.rootfs = p.rootfs().string();
  host.cgroups_path = cfg_.cgroup_parent + "/" + rec.name();
  host.host_name = cfg_.host_name;
  host.created_unix = rec.created_unix;
  host.process_label = rec.process_label;
  host.mount_label = rec.mount_label;
  for (const auto& v : rec.spec.volumes) host.volume_sources.push_back(volumes_.path(v.name).string());
  // Who it runs as, from the container's own files (or files mounted over
  // them), and its working directory, prepared in the rootfs.
  IdentityRequest who;
  who.user = !rec.spec.user.empty() ? rec.spec.user : image.config.user;
  who.group_add = rec.spec.group_add;
  who.host_users = {rec.spec.host_users.begin(), rec.spec.host_users.end()};
  const UsernsRange& ids = rec.id_range;
  if (!ids.empty()) who.gid_map = {{0, ids.host, ids.size}};
  UserDb inside = userDbAt([&](const std::string& f) {
    return containerFile(p.rootfs(), rec.spec.volumes, host.volume_sources, f);
  });
  UserDb outside = userDbAt([](const std::string& f) {
    std::error_code ec;
    return fs::is_regular_file(f, ec) ? readFile(f) : std::string();
  });
  host.identity = resolveIdentity(who, inside, outside);
  for (const auto& w : host.identity->warnings) engineLog().warn("[{}] {}", rec.name(), w);
  if (!ids.empty() && host.identity->uid >= ids.size) {
    throwInvalidInput("uid " + std::to_string(host.identity->uid) +
                      " is outside the container's user namespace (ids 0-" +
                      std::to_string(ids.size - 1) + "); run it with --userns=host");
  }
  host.id_range = ids;
  prepareVolumeOptions(rec, *host.identity, host, creating);
  if (!ids.empty()) {
    // Each volume through an idmapped mount: its files keep their ids on
    // disk (they move between hosts and containers as they are), and the
    // container sees them as its own.
    for (size_t i = 0; i < rec.spec.volumes.size(); ++i) {
      fs::path mapped = p.idmapped_volumes() / rec.spec.volumes[i].name;
      unmountIfMounted(mapped);
      mountIdmapped(host.volume_sources[i], mapped, ids);
      host.volume_sources[i] = mapped.string();
    }
  }
  std::vector<std::string> mounts = defaultMountDestinations();
  for (const auto& v : rec.spec.volumes) mounts.push_back(v.destination);
  std::string cwd = !rec.spec.cwd.empty() ? rec.spec.cwd
                    : !image.config.workdir.empty() ? image.config.workdir
                                                    : "/";
  // tmpfs destinations: resolved inside the rootfs, never out of it.
  for (const auto& t : rec.spec.tmpfs) {
    host.tmpfs_destinations.push_back(resolveMountDestination(p.rootfs(), t.destination, mounts));
  }
  for (const auto& d : host.tmpfs_destinations) mounts.push_back(d);
  // Made from the host, through the overlay: in host ids.
  uint32_t owner_uid = ids.empty() ? host.identity->uid : ids.toHost(host.identity->uid);
  uint32_t owner_gid = ids.empty() ? host.identity->gid : ids.toHost(host.identity->gid);
  Workdir wd = prepareWorkdir(p.rootfs(), cwd, mounts, rec.spec.create_workdir, owner_uid, owner_gid);
  if (wd.created) engineLog().info("[{}] created working directory {}", rec.name(), wd.path);
  host.workdir = wd.path;
  if (!rec.spec.network.empty()) {
    // Its own namespace, which the host made: a checkpoint leaves it out
    // (runc passes it to CRIU as external), and the copy a restore makes
    // joins the one made here, at the same address.
    if (!networking_) {
      throw Error(ErrorCategory::kIncompatible,
                  rec.name() + " has address " + rec.spec.network.ip + " on the cluster network " +
                      rec.spec.network.cidr + ", but " + cfg_.host_name +
                      " has no container network (its agent joins one when the coordinator has "
                      "--network-cidr); run it with --network none");
    }
    // A restore's namespace is locked from its start: the address is
    // reachable here as soon as it exists, and its sockets come back only
    // with the restore (restoreStaged unlocks once it ran).
    host.netns_path = networking_->attach(rec.name(), rec.spec.network, /*locked=*/!creating).string();
  }
  // CRIU's options, from a file of its own (runc would otherwise read
  // /etc/criu/runc.conf): written before each checkpoint and restore.
  host.criu_config = p.criu_config().string();
  if (!pathExists(p.criu_config())) writeFileAtomic(p.criu_config(), "", 0600);
  // A cgroup namespace on v2 (oci_spec.h); the value hostInfo() records in
  // a checkpoint, without running CRIU to learn it.
  host.cgroup_version = probeCgroupVersion();
  json spec = generateOciSpec(rec.spec, image.config, host);
  writeFileAtomic(p.config(), spec.dump(2) + "\n", 0600);
}

std::map<std::string, std::vector<std::string>> Engine::secretUsers() const {
  std::map<std::string, std::vector<std::string>> out;
  for (const auto& rec : containers_.list()) {
    for (const auto& ref : rec.spec.secrets) out[ref.name].push_back(rec.name());
  }
  return out;
}

void Engine::removeSecret(const std::string& name) {
  FileLock held = hostLock();  // no container is created with it meanwhile
  secrets_.secretMustExist(name, cfg_.host_name);
  auto users = secretUsers();
  if (auto it = users.find(name); it != users.end()) {
    throwInvalidInput("secret " + name + " is given to " + it->second.front() + " on " + cfg_.host_name +
                      "; remove that container first");
  }
  secrets_.remove(name);
}

void Engine::serveNotify() {
  FileLock held = hostLock();
  serve_notify_ = true;
  for (const auto& rec : containers_.list()) {
    if (rec.spec.sdnotify != "container") continue;
    ContainerPaths p = containers_.paths(rec.name());
    try {
      notify_.watch(rec.name(), p.notify_dir(), p.notify_state());
    } catch (const std::exception& e) {
      engineLog().warn("[{}] binding its notify socket: {}", rec.name(), e.what());
    }
  }
}

void Engine::prepareNotify(const ContainerRecord& rec, bool restoring) {
  if (rec.spec.sdnotify != "container") return;
  ContainerPaths p = containers_.paths(rec.name());
  if (restoring) writeNotifyState(p.notify_state(), {rec.notify_ready, rec.notify_status, 0});
  if (serve_notify_) {
    notify_.watch(rec.name(), p.notify_dir(), p.notify_state());
    // The container's processes must reach the socket (as libpod).
    if (!rec.mount_label.empty()) relabelTree(p.notify_dir(), rec.mount_label);
  } else {
    makeDirs(p.notify_dir(), 0755);
    engineLog().warn("[{}] --sdnotify=container: nothing serves its notify socket in this process "
                     "(ferry-agent does); what it says is not heard",
                     rec.name());
  }
}

// SELinux labels: both or neither (selinux_label.h). Labels a checkpoint
// carried are kept as they are, as libpod's restore does: CRIU restores the
// process with the label it was dumped with, so a new level would leave it
// unable to reach its own rootfs and volumes.
void Engine::assignLabels(ContainerRecord& rec) {
  validateLabelOptions(rec.spec.label_opts);
  if (is_selinux_enabled() <= 0 || labelsDisabled(rec.spec.label_opts)) {
    rec.process_label.clear();
    rec.mount_label.clear();
    return;
  }
  if (!rec.process_label.empty() && !rec.mount_label.empty()) return;
  const char* contexts = selinux_lxc_contexts_path();
  std::error_code ec;
  if (!contexts || !fs::is_regular_file(contexts, ec)) {
    // As libpod: a policy without container contexts gives no labels.
    engineLog().warn("[{}] SELinux is on but the policy has no container contexts ({}); running "
                     "without labels (install container-selinux)",
                     rec.name(), contexts ? contexts : "none");
    rec.process_label.clear();
    rec.mount_label.clear();
    return;
  }
  std::set<std::string> used;
  for (const auto& other : containers_.list()) {
    if (other.name() != rec.name() && !other.process_label.empty()) used.insert(levelOf(other.process_label));
  }
  SelinuxLabels l = containerLabels(true, readFile(contexts), rec.spec.label_opts, used, randomU64());
  rec.process_label = l.process;
  rec.mount_label = l.mount;
}

// U, z/Z and O: what the options ask of the host before the spec is written.
void Engine::prepareVolumeOptions(const ContainerRecord& rec, const Identity& who,
                                  SpecHostInputs& host, bool creating) {
  ContainerPaths p = containers_.paths(rec.name());
  for (size_t i = 0; i < rec.spec.volumes.size(); ++i) {
    const VolumeMount& v = rec.spec.volumes[i];
    if (v.relabel && rec.mount_label.empty()) {
      engineLog().info("[{}] volume {}: {} relabels nothing: {}", rec.name(), v.name,
                       std::string(1, v.relabel),
                       labelsDisabled(rec.spec.label_opts) ? "labels are disabled (label=disable)"
                                                           : "SELinux is disabled on " + cfg_.host_name);
    } else if (v.relabel) {
      // As libpod, at every start (and restore): z shares the volume with
      // every container (level s0), Z keeps it to this one.
      relabelTree(host.volume_sources[i], relabelContext(rec.mount_label, v.relabel));
    }
    if (v.chown && creating) {
      // As libpod: the whole source, to the container user's ids.
      fs::path src = host.volume_sources[i];
      auto chownOne = [&](const fs::path& f) {
        if (::lchown(f.c_str(), who.uid, who.gid) != 0) throwErrno("chown " + f.string());
      };
      chownOne(src);
      for (const auto& e : fs::recursive_directory_iterator(src)) chownOne(e.path());
    }
    std::pair<std::string, std::string> dirs;
    if (v.overlay) {
      // Only a create acts on an O volume (and its upperdir/workdir, host
      // paths the user gave): a restored record never carries one.
      if (!creating) throw Error(ErrorCategory::kPermanent, "internal: restoring overlay volume " + v.name);
      fs::path upper = v.upperdir.empty() ? p.dir / "volume-overlays" / v.name / "upper" : fs::path(v.upperdir);
      fs::path work = v.workdir.empty() ? p.dir / "volume-overlays" / v.name / "work" : fs::path(v.workdir);
      makeDirs(upper, 0755);
      makeDirs(work, 0700);
      // The overlay's root takes the upper layer's owner and mode: make
      // them the source's, so the volume looks as it is, writable alike.
      struct stat src {};
      if (::stat(host.volume_sources[i].c_str(), &src) != 0) throwErrno("stat " + host.volume_sources[i]);
      if (::chown(upper.c_str(), src.st_uid, src.st_gid) != 0 ||
          ::chmod(upper.c_str(), src.st_mode & 07777) != 0) {
        throwErrno("preparing the upper layer of volume " + v.name);
      }
      dirs = {upper.string(), work.string()};
    }
    host.overlay_dirs.push_back(dirs);
  }
}

ConmonLaunch Engine::launchFor(const std::string& name) const {
  ContainerPaths p = containers_.paths(name);
  ConmonLaunch l;
  l.id = name;
  l.bundle = p.dir;
  l.log_path = p.log();
  l.exit_dir = p.exit_dir();
  l.pid_file = p.pid_file();
  l.conmon_pid_file = p.conmon_pid();
  l.conmon_log = p.conmon_log();
  return l;
}

void Engine::discard(const std::string& name) {
  notify_.unwatch(name);
  if (networking_) {
    networking_->detach(name);
  } else {
    // Without the host's network (a tool, `cluster down`): the namespace the
    // host made for it still goes (its veth with it, the routes with that);
    // `ip netns del` does no more.
    bestEffort("removing the container's network namespace", [&] {
      fs::path config = containers_.paths(name).config();
      if (!pathExists(config)) return;
      const json spec = json::parse(readFile(config));
      for (const auto& ns : spec.at("linux").at("namespaces")) {
        std::string path = ns.value("path", "");
        if (ns.value("type", "") == "network" && path.rfind("/run/netns/ferry-", 0) == 0 &&
            pathExists(path)) {
          ::umount2(path.c_str(), MNT_DETACH);
          fs::remove(path);
        }
      }
    });
  }
  ContainerPaths p = containers_.paths(name);
  unmountIfMounted(p.rootfs());
  unmountIfMounted(p.idmapped_lower());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(p.idmapped_volumes(), ec)) unmountIfMounted(e.path());
  containers_.erase(name);
}

UsernsRange Engine::freeIdRange(const std::string& name) const {
  std::vector<UsernsRange> used;
  for (const auto& other : containers_.list()) {
    if (other.name() != name) used.push_back(other.id_range);
  }
  return pickIdRange(used, randomU64());
}

void Engine::mountRootfs(const ContainerRecord& rec, const ImageRecord& image) {
  ContainerPaths p = containers_.paths(rec.name());
  if (!rec.id_range.empty()) {
    // Ours: searchable (not readable) by others, as the container's root
    // is on the host. Above the state root: the operator's, checked.
    for (const fs::path& d : {cfg_.root, cfg_.root / "containers", p.dir}) {
      if (::chmod(d.c_str(), d == cfg_.root ? (modeOf(d) | 0111) : 0711) != 0) throwErrno("chmod " + d.string());
    }
    for (fs::path d = cfg_.root.parent_path(); !d.empty(); d = d.parent_path()) {
      if (mode_t m = modeOf(d); (m & 0001) == 0) {
        char octal[16];
        std::snprintf(octal, sizeof octal, "%04o", static_cast<unsigned>(m));
        throwInvalidInput(d.string() + " is not searchable by others (mode " + octal + "), so a container in a user namespace cannot reach its rootfs below "
                          "it; `chmod o+x " + d.string() + "`, or run the container with --userns=host");
      }
      if (d == d.parent_path()) break;
    }
  }
  mountOverlay({images_.rootfs(image.id), p.upper(), p.work(), p.rootfs(), rec.mount_label,
                rec.id_range, p.idmapped_lower()});
}

ContainerInfo Engine::create(const ContainerSpec& spec) {
  validateName(spec.name, "container name");
  FileLock mine = containerLock(spec.name);
  FileLock host = hostLock();  // the name, its SELinux level, new volumes
  return withContext("creating container " + spec.name + " on " + cfg_.host_name, [&] {
    if (containers_.find(spec.name)) {
      throw Error(ErrorCategory::kInvalidInput, "a container named '" + spec.name +
                                                    "' already exists (remove it first)");
    }
    ImageRecord image = images_.resolve(spec.image);
    std::vector<std::string> new_volumes;
    ContainerRecord rec{spec, image.id, cfg_.host_name, unixNow()};
    validateVolumes(spec.volumes);
    validateSdNotify(spec.sdnotify);
    rec.spec.userns = parseUsernsMode(spec.userns);
    if (rec.spec.userns == "auto") {
      for (const auto& v : spec.volumes) {
        if (v.overlay) {
          throwInvalidInput("volume " + v.name + " is an overlay (O) volume, which runc would mount "
                            "inside the container's user namespace; run it with --userns=host");
        }
      }
      rec.id_range = freeIdRange(spec.name);
    }
    for (int fd = 3; fd < 3 + spec.listen_fds; ++fd) {
      if (::fcntl(fd, F_GETFD) < 0) {
        throwInvalidInput("socket activation: LISTEN_FDS=" + std::to_string(spec.listen_fds) + " but fd " +
                          std::to_string(fd) + " is not open in this process");
      }
    }
    assignLabels(rec);
    try {
      for (const auto& v : spec.volumes) {
        if (!volumes_.exists(v.name)) new_volumes.push_back(v.name);
        volumes_.ensure(v.name);
      }
      ContainerPaths p = containers_.paths(spec.name);
      containers_.save(rec);
      mountRootfs(rec, image);
      writeSpec(rec, image, /*creating=*/true);
      prepareNotify(rec, /*restoring=*/false);
      ConmonLaunch l = launchFor(spec.name);
      l.listen_fds = spec.listen_fds;
      l.listen_fdnames = spec.listen_fdnames;
      runtime_.launch(l);
    } catch (...) {
      bestEffort("runc delete", [&] { runtime_.remove(spec.name, true); });
      bestEffort("removing the container's files", [&] { discard(spec.name); });
      for (const auto& v : new_volumes) bestEffort("removing a new volume", [&] { volumes_.remove(v); });
      throw;
    }
    engineLog().info("[{}] created from image {}", spec.name, image.id.substr(0, 12));
    return inspectRecord(rec);
  });
}

ContainerInfo Engine::start(const std::string& name) {
  FileLock held = containerLock(name);
  return withContext("starting " + name + " on " + cfg_.host_name, [&] {
    ContainerRecord rec = containers_.get(name, cfg_.host_name);
    runtime_.start(name);
    rec.started_unix = unixNow();
    containers_.save(rec);
    engineLog().info("[{}] started", name);
    return inspectRecord(rec);
  });
}

ContainerInfo Engine::run(const ContainerSpec& spec) {
  create(spec);
  try {
    return start(spec.name);
  } catch (...) {
    remove(spec.name, true);
    throw;
  }
}

bool Engine::waitForExit(const std::string& name, std::chrono::milliseconds timeout) {
  // The container's init is conmon's child, not ours; a pidfd still waits
  // for it. runc's state after opening it confirms the pid was that init's
  // (runc checks its start time), so a reused pid is never waited on.
  auto st = runtime_.state(name);
  if (!st || st->status == "stopped") return true;
  PidFd init = PidFd::open(st->pid);
  auto again = runtime_.state(name);
  if (!again || again->status == "stopped" || again->pid != st->pid) return true;
  return init.waitExit(timeout);
}

ContainerInfo Engine::stop(const std::string& name, std::chrono::milliseconds timeout,
                           std::optional<int> given) {
  FileLock held = containerLock(name);  // never in the middle of its checkpoint or restore
  return withContext("stopping " + name + " on " + cfg_.host_name, [&] {
    ContainerInfo info = inspect(name);
    const std::string& configured = info.record.spec.stop_signal;
    int signal = given ? *given : configured.empty() ? SIGTERM : parseSignal(configured);
    if (info.status != ContainerStatus::kRunning && info.status != ContainerStatus::kPaused &&
        info.status != ContainerStatus::kCreated) {
      return info;  // already stopped: stopping is idempotent
    }
    if (info.status == ContainerStatus::kPaused) runtime_.resume(name);
    runtime_.kill(name, signal);
    if (!waitForExit(name, timeout)) {
      engineLog().warn("[{}] did not exit within {} ms of signal {}; killing", name,
                     timeout.count(), signal);
      runtime_.kill(name, SIGKILL);
      waitForExit(name, std::chrono::seconds(10));
    }
    // conmon writes the exit code just after the process is reaped.
    waitForFile(containers_.paths(name).exit_dir() / name, std::chrono::seconds(5),
                [&] { return exitCode(name).has_value(); });
    return inspect(name);
  });
}

void Engine::kill(const std::string& name, int signal) {
  FileLock held = containerLock(name);
  withContext("signalling " + name + " on " + cfg_.host_name, [&] {
    containers_.get(name, cfg_.host_name);
    runtime_.kill(name, signal);
  });
}

void Engine::pause(const std::string& name) {
  FileLock held = containerLock(name);
  withContext("pausing " + name + " on " + cfg_.host_name, [&] {
    containers_.get(name, cfg_.host_name);
    runtime_.pause(name);
  });
}

void Engine::resume(const std::string& name) {
  FileLock held = containerLock(name);
  withContext("resuming " + name + " on " + cfg_.host_name, [&] {
    ContainerRecord rec = containers_.get(name, cfg_.host_name);
    runtime_.resume(name);
    // A migration's source locked it off the network while frozen.
    if (!rec.spec.network.empty() && networking_) networking_->unlock(name);
  });
}

void Engine::removeEmptyCgroupsIfIdle() {
  // Only when this host has no container left, decided under the host's
  // lock: a create or restore records its container under it before runc
  // makes the cgroups, so none is between runc's mkdir of a parent and of
  // its own cgroup (an rmdir there would fail its launch).
  FileLock host = hostLock();
  if (!containers_.list().empty()) return;
  // v2: one tree; v1: one per controller. Parents we made are removed only
  // when empty (rmdir fails otherwise, which is fine).
  std::vector<fs::path> bases = {"/sys/fs/cgroup"};
  std::error_code ec;
  for (const auto& e : fs::directory_iterator("/sys/fs/cgroup", ec)) {
    if (e.is_directory(ec) && !e.is_symlink(ec)) bases.push_back(e.path());
  }
  fs::path parent = fs::path(cfg_.cgroup_parent).relative_path();
  for (const auto& base : bases) {
    for (fs::path p = parent; !p.empty(); p = p.parent_path()) ::rmdir((base / p).c_str());
  }
}

uint64_t Engine::memoryBytes(const std::string& name) const {
  fs::path rel = fs::path(cfg_.cgroup_parent).relative_path() / name;
  auto statValue = [](const fs::path& file, std::string_view key) -> uint64_t {
    std::ifstream in(file);
    std::string k;
    uint64_t v = 0;
    while (in >> k >> v) {
      if (k == key) return v;
    }
    return 0;
  };
  std::error_code ec;
  if (fs::exists(fs::path("/sys/fs/cgroup/memory") / rel / "memory.stat", ec)) {
    return statValue(fs::path("/sys/fs/cgroup/memory") / rel / "memory.stat", "total_rss");
  }
  return statValue(fs::path("/sys/fs/cgroup") / rel / "memory.stat", "anon");
}

uint64_t Engine::cpuUsec(const std::string& name) const {
  fs::path rel = fs::path(cfg_.cgroup_parent).relative_path() / name;
  std::error_code ec;
  fs::path v1 = fs::path("/sys/fs/cgroup/cpuacct") / rel / "cpuacct.usage";
  if (fs::exists(v1, ec)) {
    uint64_t ns = 0;
    std::ifstream(v1) >> ns;
    return ns / 1000;
  }
  std::ifstream in(fs::path("/sys/fs/cgroup") / rel / "cpu.stat");
  std::string k;
  uint64_t v = 0;
  while (in >> k >> v) {
    if (k == "usage_usec") return v;
  }
  return 0;
}

void Engine::remove(const std::string& name, bool force) {
  FileLock held = containerLock(name);
  withContext("removing " + name + " on " + cfg_.host_name, [&] {
    ContainerRecord rec = containers_.get(name, cfg_.host_name);
    ContainerInfo info = inspectRecord(rec);
    bool live = info.status == ContainerStatus::kRunning || info.status == ContainerStatus::kPaused;
    if (live && !force) {
      throw Error(ErrorCategory::kInvalidInput,
                  "container is " + std::string(statusName(info.status)) +
                      "; stop it first or remove it with force (-f)");
    }
    // conmon exits once its container is gone; wait so no monitor outlives
    // it. Held before the delete, so its exit cannot be missed.
    PidFd conmon = conmonPidFd(containers_.paths(name).conmon_pid(), name);
    runtime_.remove(name, true);
    conmon.waitExit(std::chrono::seconds(10));
    discard(name);
    removeEmptyCgroupsIfIdle();
    held.removeFile();
    engineLog().info("[{}] removed", name);
  });
}

std::vector<LogLine> Engine::logs(const std::string& name) {
  containers_.get(name, cfg_.host_name);
  return readWholeLog(containers_.paths(name).log());
}

LogChunk Engine::logsFrom(const std::string& name, LogPosition from) {
  // Looked at before the read: conmon writes the exit code only after it has
  // drained the container's pipes into the log, so an exit seen here means
  // the read below holds all of the output.
  ContainerInfo info = inspect(name);
  bool ended = info.status == ContainerStatus::kExited && info.exit_code.has_value();
  LogChunk c = readLog(containers_.paths(name).log(), from, kLogChunkBytes, /*final=*/ended);
  c.ended = ended;
  return c;
}

}  // namespace ferry
