#include "engine/spec/oci_spec.h"

#include <algorithm>
#include <charconv>
#include <csignal>
#include <ctime>
#include <map>
#include <set>

#include "common/fs.h"
#include "common/names.h"
#include "common/error.h"
#include "common/strings.h"

namespace ferry {

using nlohmann::json;

void to_json(json& j, const VolumeMount& v) {
  j = json{{"name", v.name},         {"destination", v.destination},
           {"readonly", v.readonly}, {"chown", v.chown},
           {"relabel", v.relabel ? std::string(1, v.relabel) : std::string()},
           {"overlay", v.overlay},   {"upperdir", v.upperdir},
           {"workdir", v.workdir}};
}
void from_json(const json& j, VolumeMount& v) {
  j.at("name").get_to(v.name);
  j.at("destination").get_to(v.destination);
  v.readonly = j.value("readonly", false);
  v.chown = j.value("chown", false);
  std::string relabel = j.value("relabel", "");
  v.relabel = relabel.empty() ? 0 : relabel[0];
  v.overlay = j.value("overlay", false);
  v.upperdir = j.value("upperdir", "");
  v.workdir = j.value("workdir", "");
}
void to_json(json& j, const TmpfsMount& t) {
  j = json{{"destination", t.destination}, {"options", t.options}};
}
void from_json(const json& j, TmpfsMount& t) {
  j.at("destination").get_to(t.destination);
  t.options = j.value("options", std::vector<std::string>{});
}
void to_json(json& j, const ContainerSpec& s) {
  j = json{{"name", s.name}, {"image", s.image}, {"args", s.args},     {"env", s.env},
           {"cwd", s.cwd},   {"user", s.user},   {"hostname", s.hostname}, {"volumes", s.volumes},
           {"group_add", s.group_add}, {"host_users", s.host_users}, {"umask", s.umask},
           {"create_workdir", s.create_workdir}, {"tmpfs", s.tmpfs},
           {"annotations", s.annotations}, {"stop_signal", s.stop_signal},
           {"label_opts", s.label_opts}, {"secrets", s.secrets}, {"sdnotify", s.sdnotify},
           {"listen_fds", s.listen_fds}, {"listen_fdnames", s.listen_fdnames},
           {"userns", s.userns}};
  if (!s.network.empty()) j["network"] = s.network;
}
void to_json(json& j, const NetworkSpec& n) {
  j = json{{"ip", n.ip}, {"mac", n.mac}, {"cidr", n.cidr}, {"ports", n.ports}};
}
void from_json(const json& j, NetworkSpec& n) {
  j.at("ip").get_to(n.ip);
  j.at("mac").get_to(n.mac);
  j.at("cidr").get_to(n.cidr);
  n.ports = j.value("ports", std::vector<std::string>{});
}
void from_json(const json& j, ContainerSpec& s) {
  j.at("name").get_to(s.name);
  j.at("image").get_to(s.image);
  s.args = j.value("args", std::vector<std::string>{});
  s.env = j.value("env", std::vector<std::string>{});
  s.cwd = j.value("cwd", "");
  s.user = j.value("user", "");
  s.hostname = j.value("hostname", "");
  s.volumes = j.value("volumes", std::vector<VolumeMount>{});
  s.group_add = j.value("group_add", std::vector<std::string>{});
  s.host_users = j.value("host_users", std::vector<std::string>{});
  s.umask = j.value("umask", "");
  s.create_workdir = j.value("create_workdir", true);
  s.tmpfs = j.value("tmpfs", std::vector<TmpfsMount>{});
  s.annotations = j.value("annotations", std::map<std::string, std::string>{});
  s.stop_signal = j.value("stop_signal", "");
  s.label_opts = j.value("label_opts", std::vector<std::string>{});
  s.secrets = j.value("secrets", std::vector<SecretRef>{});
  s.sdnotify = j.value("sdnotify", "");
  s.listen_fds = j.value("listen_fds", 0);
  s.listen_fdnames = j.value("listen_fdnames", "");
  s.userns = j.value("userns", "host");
  s.network = j.value("network", NetworkSpec{});
}
void to_json(json& j, const SecretRef& r) { j = json{{"name", r.name}, {"target", r.target}}; }
void from_json(const json& j, SecretRef& r) {
  j.at("name").get_to(r.name);
  j.at("target").get_to(r.target);
}

json redactSecrets(json spec, const std::vector<SecretRef>& secrets) {
  if (!spec.contains("process") || !spec["process"].contains("env")) return spec;
  for (auto& e : spec["process"]["env"]) {
    std::string kv = e.get<std::string>();
    for (const auto& s : secrets) {
      if (kv.rfind(s.target + "=", 0) == 0) e = s.target + "=(secret " + s.name + ")";
    }
  }
  return spec;
}

void validateSdNotify(const std::string& mode) {
  if (mode.empty() || mode == "container" || mode == "conmon" || mode == "ignore") return;
  throwInvalidInput("--sdnotify=" + mode + ": expected container, conmon or ignore");
}

namespace {

bool cleanAbsolute(const std::string& p) {
  if (p.empty() || p[0] != '/') return false;
  size_t start = 1;
  while (start <= p.size()) {
    size_t end = p.find('/', start);
    if (end == std::string::npos) end = p.size();
    std::string_view part(p.data() + start, end - start);
    if (part == "." || part == "..") return false;
    start = end + 1;
  }
  return true;
}

uint32_t parseId(std::string_view s, const std::string& user) {
  uint32_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || ptr != s.data() + s.size()) {
    throwInvalidInput("invalid user '" + user +
            "': give a numeric uid[:gid] or 'root' here (names are resolved by the engine)");
  }
  return v;
}

std::pair<uint32_t, uint32_t> parseUser(const std::string& user) {
  if (user.empty() || user == "root") return {0, 0};
  auto colon = user.find(':');
  uint32_t uid = parseId(std::string_view(user).substr(0, colon), user);
  uint32_t gid = colon == std::string::npos
                     ? uid
                     : parseId(std::string_view(user).substr(colon + 1), user);
  return {uid, gid};
}

json mount(const std::string& dest, const std::string& type, const std::string& source,
           std::vector<std::string> options) {
  return json{{"destination", dest}, {"type", type}, {"source", source}, {"options", options}};
}

json defaultMounts() {
  return json::array({
      mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  });
}

// Podman's default capability set.
const std::vector<std::string> kCapabilities = {
    "CAP_CHOWN",  "CAP_DAC_OVERRIDE",     "CAP_FOWNER", "CAP_FSETID", "CAP_KILL",
    "CAP_NET_BIND_SERVICE", "CAP_SETFCAP", "CAP_SETGID", "CAP_SETPCAP", "CAP_SETUID",
    "CAP_SYS_CHROOT"};

}  // namespace

std::vector<std::string> defaultMountDestinations() {
  std::vector<std::string> out;
  for (const auto& m : defaultMounts()) out.push_back(m["destination"]);
  return out;
}

void validateVolumes(const std::vector<VolumeMount>& volumes) {
  std::set<std::string> names, destinations;
  for (const auto& v : volumes) {
    validateName(v.name, "volume name");
    if (!names.insert(v.name).second) {
      throwInvalidInput("volume '" + v.name + "' is given twice: mount each volume once");
    }
    if (!destinations.insert(v.destination).second) {
      throwInvalidInput("two volumes are mounted at " + v.destination);
    }
  }
}

VolumeMount parseVolumeArg(const std::string& arg) {
  VolumeMount v;
  auto first = arg.find(':');
  if (first == std::string::npos) {
    throwInvalidInput("invalid volume '" + arg + "': expected NAME:/path[:OPTIONS]");
  }
  v.name = arg.substr(0, first);
  std::string rest = arg.substr(first + 1);
  auto second = rest.find(':');
  v.destination = rest.substr(0, second);
  if (second == std::string::npos) return v;
  std::string opts = rest.substr(second + 1);
  std::set<std::string> seen;
  for (const std::string& opt : splitFields(opts, ',')) {
    std::string key = opt.substr(0, opt.find('='));
    if (!seen.insert(key == "rw" ? "ro" : key == "Z" ? "z" : key).second) {
      throwInvalidInput("volume option '" + key + "' given twice (or with its opposite) in '" + arg + "'");
    }
    if (opt == "ro") {
      v.readonly = true;
    } else if (opt == "rw") {
      v.readonly = false;
    } else if (opt == "U") {
      v.chown = true;
    } else if (opt == "z" || opt == "Z") {
      v.relabel = opt[0];
    } else if (opt == "O") {
      v.overlay = true;
    } else if (key == "upperdir" || key == "workdir") {
      std::string path = opt.size() > key.size() ? opt.substr(key.size() + 1) : "";
      if (!cleanAbsolute(path)) {
        throwInvalidInput("volume option " + key + "= needs an absolute host path, in '" + arg + "'");
      }
      (key == "upperdir" ? v.upperdir : v.workdir) = path;
    } else {
      throwInvalidInput("invalid volume option '" + opt + "' in '" + arg +
                        "': use ro, rw, U, z, Z, O, upperdir=PATH, workdir=PATH");
    }
  }
  if (v.upperdir.empty() != v.workdir.empty()) {
    throwInvalidInput("volume '" + arg + "': upperdir= and workdir= go together: give both or neither");
  }
  if (!v.upperdir.empty() && !v.overlay) {
    throwInvalidInput("volume '" + arg + "': upperdir= and workdir= need O (an overlay volume)");
  }
  if (v.overlay && v.chown) {
    throwInvalidInput("volume '" + arg + "': U cannot change an O volume's source (it stays as it is)");
  }
  return v;
}

int parseSignal(const std::string& text) {
  static const std::map<std::string, int> names = {
      {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL},
      {"USR1", SIGUSR1}, {"USR2", SIGUSR2}, {"TERM", SIGTERM}, {"STOP", SIGSTOP},
      {"WINCH", SIGWINCH}, {"PWR", SIGPWR}};
  std::string t = text.rfind("SIG", 0) == 0 ? text.substr(3) : text;
  if (auto it = names.find(t); it != names.end()) return it->second;
  int n = 0;
  auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), n);
  if (t.empty() || ec != std::errc() || p != t.data() + t.size() || n < 1 || n > 64) {
    throwInvalidInput("invalid stop signal '" + text + "': give a name (SIGTERM, SIGINT, ...) or 1-64");
  }
  return n;
}

TmpfsMount parseTmpfsArg(const std::string& arg) {
  TmpfsMount t;
  auto colon = arg.find(':');
  t.destination = arg.substr(0, colon);
  if (!cleanAbsolute(t.destination) || t.destination == "/") {
    throwInvalidInput("invalid tmpfs '" + arg + "': the destination must be an absolute path below /");
  }
  if (colon == std::string::npos) {
    t.options = {"rw", "noexec", "nosuid", "nodev"};
    return t;
  }
  static const std::set<std::string> flags = {"ro", "rw", "exec", "noexec", "suid",
                                              "nosuid", "dev", "nodev"};
  static const std::set<std::string> keys = {"size", "mode", "uid", "gid", "nr_inodes"};
  for (const std::string& o : splitFields(arg.substr(colon + 1), ',')) {
    std::string key = o.substr(0, o.find('='));
    bool ok = flags.count(o) || (keys.count(key) && o.size() > key.size() + 1 &&
                                 o.find_first_of(" \t;") == std::string::npos);
    if (!ok) {
      throwInvalidInput("invalid tmpfs option '" + o + "' in '" + arg +
                        "': use size=, mode=, uid=, gid=, nr_inodes=, ro, rw, [no]exec, "
                        "[no]suid, [no]dev");
    }
    t.options.push_back(o);
  }
  return t;
}

std::vector<std::string> effectiveArgs(const ContainerSpec& spec, const ImageConfig& image) {
  if (!spec.args.empty()) return spec.args;
  std::vector<std::string> args = image.entrypoint;
  args.insert(args.end(), image.cmd.begin(), image.cmd.end());
  return args;
}

std::vector<std::string> effectiveEnv(const ContainerSpec& spec, const ImageConfig& image) {
  std::vector<std::string> env = image.env;
  bool has_path = false;
  for (const auto& e : env) has_path |= e.rfind("PATH=", 0) == 0;
  if (!has_path) env.insert(env.begin(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
  for (const auto& kv : spec.env) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throwInvalidInput("invalid environment entry '" + kv + "': expected KEY=VALUE");
    std::string key = kv.substr(0, eq + 1);
    std::erase_if(env, [&](const std::string& e) { return e.rfind(key, 0) == 0; });
    env.push_back(kv);
  }
  return env;
}

json generateOciSpec(const ContainerSpec& spec, const ImageConfig& image,
                     const SpecHostInputs& host) {
  std::vector<std::string> args = effectiveArgs(spec, image);
  if (args.empty()) throwInvalidInput("no command: the image has no entrypoint or cmd, give one");
  std::string cwd = !host.workdir.empty() ? host.workdir
                    : !spec.cwd.empty()   ? spec.cwd
                    : (!image.workdir.empty() ? image.workdir : "/");
  if (!cleanAbsolute(cwd)) throwInvalidInput("invalid working directory '" + cwd + "': must be an absolute path");
  auto [uid, gid] = host.identity ? std::pair{host.identity->uid, host.identity->gid}
                                  : parseUser(!spec.user.empty() ? spec.user : image.user);
  if (host.volume_sources.size() != spec.volumes.size()) {
    throw Error(ErrorCategory::kPermanent, "internal: one volume source per volume expected");
  }

  json mounts = defaultMounts();
  if (!host.netns_path.empty() && !host.id_range.empty()) {
    // sysfs may be mounted only by the owner of the network namespace's user
    // namespace, and the host made this one: the host's /sys, bound read-only
    // with what is mounted below it (locked in a user namespace: a bind of
    // /sys alone is refused), as Podman does then.
    for (auto& m : mounts) {
      if (m["destination"] == "/sys") {
        m = mount("/sys", "bind", "/sys", {"rbind", "nosuid", "noexec", "nodev", "ro"});
      }
    }
  }
  for (size_t i = 0; i < spec.volumes.size(); ++i) {
    const auto& v = spec.volumes[i];
    if (!cleanAbsolute(v.destination) || v.destination == "/") {
      throwInvalidInput("invalid volume destination '" + v.destination + "': must be an absolute path below /");
    }
    if (v.overlay) {
      if (host.overlay_dirs.size() != spec.volumes.size() || host.overlay_dirs[i].first.empty()) {
        throw Error(ErrorCategory::kPermanent, "internal: no upper layer for overlay volume " + v.name);
      }
      // Only mount options reach the spec: U, z and O are ferry's own.
      mounts.push_back(mount(v.destination, "overlay", "overlay",
                             {"lowerdir=" + host.volume_sources[i],
                              "upperdir=" + host.overlay_dirs[i].first,
                              "workdir=" + host.overlay_dirs[i].second, v.readonly ? "ro" : "rw",
                              "nosuid", "nodev"}));
      continue;
    }
    mounts.push_back(mount(v.destination, "bind", host.volume_sources[i],
                           {"rbind", v.readonly ? "ro" : "rw", "nosuid", "nodev"}));
  }

  for (size_t i = 0; i < spec.tmpfs.size(); ++i) {
    const auto& t = spec.tmpfs[i];
    std::string dest = i < host.tmpfs_destinations.size() && !host.tmpfs_destinations[i].empty()
                           ? host.tmpfs_destinations[i]
                           : t.destination;
    mounts.push_back(mount(dest, "tmpfs", "tmpfs", t.options));
  }

  json caps = kCapabilities;
  json user = {{"uid", uid}, {"gid", gid}};
  std::vector<std::string> env = effectiveEnv(spec, image);
  if (host.identity) {
    if (!host.identity->additional_gids.empty()) user["additionalGids"] = host.identity->additional_gids;
    // HOME from the passwd entry unless the image or the caller set it.
    bool has_home = std::any_of(env.begin(), env.end(),
                                [](const std::string& e) { return e.rfind("HOME=", 0) == 0; });
    if (!has_home) env.push_back("HOME=" + host.identity->home);
  }
  auto setEnv = [&env](const std::string& kv) {
    std::string key = kv.substr(0, kv.find('=') + 1);
    env.erase(std::remove_if(env.begin(), env.end(), [&](const std::string& e) { return e.rfind(key, 0) == 0; }),
              env.end());
    env.push_back(kv);
  };
  if (spec.sdnotify == "container") {
    if (host.notify_dir.empty()) throw Error(ErrorCategory::kPermanent, "internal: no notify socket directory");
    // Read-only: sending to a socket needs no write access to its mount,
    // and the container must not be able to swap the socket for a link
    // the agent would then follow when it binds the socket again.
    mounts.push_back(mount(kNotifySocketDir, "bind", host.notify_dir, {"rbind", "ro", "nosuid", "nodev", "noexec"}));
    setEnv(std::string("NOTIFY_SOCKET=") + kNotifySocket);
  }
  if (spec.listen_fds > 0) {
    // As libpod: passed through, LISTEN_PID the container's init.
    setEnv("LISTEN_PID=1");
    setEnv("LISTEN_FDS=" + std::to_string(spec.listen_fds));
    if (!spec.listen_fdnames.empty()) setEnv("LISTEN_FDNAMES=" + spec.listen_fdnames);
  }
  for (const auto& kv : host.secret_env) setEnv(kv);
  if (!spec.umask.empty()) user["umask"] = parseUmask(spec.umask);
  if (host.process_label.empty() != host.mount_label.empty()) {
    throw Error(ErrorCategory::kPermanent, "internal: SELinux process and mount labels go together");
  }
  json process = {
      {"terminal", false},
      {"user", user},
      {"args", args},
      {"env", env},
      {"cwd", cwd},
      {"capabilities",
       {{"bounding", caps}, {"effective", caps}, {"permitted", caps}}},
      {"noNewPrivileges", false},
  };
  if (!host.process_label.empty()) process["selinuxLabel"] = host.process_label;
  json namespaces = json::array();
  for (const char* ns : {"pid", "ipc", "uts", "mount"}) namespaces.push_back({{"type", ns}});
  namespaces.push_back(host.netns_path.empty() ? json{{"type", "network"}}
                                               : json{{"type", "network"}, {"path", host.netns_path}});
  if (host.cgroup_version == 2) {
    // As Podman (cgroupns=private on v2). Without one, a user-namespaced
    // container may not mount cgroup2 and runc binds the host's
    // /sys/fs/cgroup: under systemd a slave of a peer group outside the
    // container, which CRIU will not dump ("./sys/fs/cgroup (master_id: 15
    // shared_id: 0) has unreachable sharing"); made private, its restore
    // fails ("Unable to mount cgroup ...: Operation not permitted"), as a
    // fresh cgroup2 needs a cgroup namespace owned by the user namespace.
    // With one, runc mounts the container's own cgroup2 and CRIU mounts it
    // again. v1 hosts keep the spec they had: a checkpoint never crosses
    // versions (compat.cc), so the choice follows the host.
    namespaces.push_back({{"type", "cgroup"}});
  }
  json id_mappings;
  if (!host.id_range.empty()) {
    namespaces.push_back({{"type", "user"}});
    id_mappings = json::array(
        {{{"containerID", 0}, {"hostID", host.id_range.host}, {"size", host.id_range.size}}});
  }

  // The caller's, then ferry's own; a container manager unless the caller
  // named one, the creation time and the stop signal.
  json annotations = spec.annotations;
  annotations["io.ferry.name"] = spec.name;
  annotations["io.ferry.image"] = spec.image;
  annotations["io.ferry.host"] = host.host_name;
  if (!host.criu_config.empty()) annotations["org.criu.config"] = host.criu_config;
  if (!annotations.contains("io.container.manager")) annotations["io.container.manager"] = "ferry";
  if (host.created_unix > 0) {
    std::time_t t = host.created_unix;
    std::tm utc{};
    gmtime_r(&t, &utc);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &utc);
    annotations["io.ferry.created"] = buf;
  }
  annotations["io.ferry.stop-signal"] =
      std::to_string(spec.stop_signal.empty() ? SIGTERM : parseSignal(spec.stop_signal));

  json out{
      {"ociVersion", "1.0.2"},
      {"process", process},
      {"root", {{"path", host.rootfs}, {"readonly", false}}},
      {"hostname", spec.hostname.empty() ? spec.name : spec.hostname},
      {"mounts", mounts},
      {"annotations", annotations},
      {"linux",
       {{"namespaces", namespaces},
        {"cgroupsPath", host.cgroups_path},
        {"resources", {{"devices", json::array({{{"allow", false}, {"access", "rwm"}}})}}},
        {"maskedPaths",
         {"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
          "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
          "/proc/scsi"}},
        {"readonlyPaths",
         {"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}}}},
  };
  if (!host.mount_label.empty()) out["linux"]["mountLabel"] = host.mount_label;
  if (!id_mappings.is_null()) {
    out["linux"]["uidMappings"] = id_mappings;
    out["linux"]["gidMappings"] = id_mappings;
  }
  return out;
}

}  // namespace ferry
