#include "engine/spec/run_args.h"

#include <set>

#include "common/ipv4.h"

#include <cctype>

#include "common/error.h"
#include "engine/spec/identity.h"
#include "common/names.h"
#include "engine/spec/selinux_label.h"
#include "engine/spec/user_namespace.h"

namespace ferry {

bool takeRunOption(const std::string& opt, const std::function<std::string(const std::string&)>& value,
                   RunArgs& r) {
  if (opt == "--name") r.name = value("name after --name");
  else if (opt == "-v" || opt == "--volume") r.volumes.push_back(value("VOLUME:/PATH after -v"));
  else if (opt == "-e" || opt == "--env") r.env.push_back(value("KEY=VALUE after -e"));
  else if (opt == "-w" || opt == "--workdir") r.cwd = value("directory after -w");
  else if (opt == "-u" || opt == "--user") r.user = value("NAME|UID[:GROUP|GID] after -u");
  else if (opt == "--hostname") r.hostname = value("name after --hostname");
  else if (opt == "--group-add") r.group_add.push_back(value("group after --group-add"));
  else if (opt == "--hostuser") r.host_users.push_back(value("user name after --hostuser"));
  else if (opt == "--umask") r.umask = value("octal mask after --umask");
  else if (opt == "--no-create-workdir") r.no_create_workdir = true;
  else if (opt == "--tmpfs") r.tmpfs.push_back(value("DEST[:OPTIONS] after --tmpfs"));
  else if (opt == "--annotation") r.annotations.push_back(value("KEY=VALUE after --annotation"));
  else if (opt == "--stop-signal") r.stop_signal = value("signal after --stop-signal");
  else if (opt == "--secret") r.secrets.push_back(value("NAME,type=env[,target=VAR] after --secret"));
  else if (opt.rfind("--sdnotify=", 0) == 0) r.sdnotify = opt.substr(11);
  else if (opt == "--userns") r.userns = value("auto|host after --userns");
  else if (opt == "--network" || opt == "--net") r.network = value("ferry|none after --network");
  else if (opt == "--ip") r.ip = value("A.B.C.D after --ip");
  else if (opt == "-p" || opt == "--publish") r.publish.push_back(value("HOSTPORT:PORT after -p"));
  else if (opt == "--sdnotify") r.sdnotify = value("container|conmon|ignore after --sdnotify");
  else if (opt == "--security-opt") {
    std::string o = value("label=... after --security-opt");
    if (o.rfind("label=", 0) != 0) {
      throwInvalidInput("--security-opt " + o + ": only label=... is supported (label=disable, type:T, "
                        "level:L, user:U, role:R, filetype:T)");
    }
    r.label_opts.push_back(o.substr(6));
  } else {
    return false;
  }
  return true;
}

RunArgs runArgsFromWords(std::vector<std::string> words) {
  RunArgs run;
  size_t i = 0;
  auto value = [&](const std::string& what) {
    if (i >= words.size()) throwInvalidInput("missing " + what);
    return words[i++];
  };
  while (i < words.size()) {
    if (!run.image.empty()) {
      run.args.push_back(words[i++]);
      continue;
    }
    std::string o = words[i++];
    // --opt=value as --opt value: takeRunOption reads separate words.
    if (size_t eq = o.find('='); o.rfind("--", 0) == 0 && eq != std::string::npos) {
      words.insert(words.begin() + static_cast<std::ptrdiff_t>(i), o.substr(eq + 1));
      o.resize(eq);
    }
    if (takeRunOption(o, value, run)) continue;
    if (o.rfind("-", 0) == 0) throwInvalidInput("unknown run option '" + o + "'");
    run.image = o;
  }
  if (run.name.empty()) throwInvalidInput("run needs --name NAME");
  if (run.image.empty()) throwInvalidInput("run needs an IMAGE");
  validateName(run.name, "container name");
  for (const auto& e : run.env) {
    if (e.find('=') == std::string::npos) throwInvalidInput("-e wants KEY=VALUE, got '" + e + "'");
  }
  return run;
}

ContainerSpec specFromRunArgs(const RunArgs& r) {
  ContainerSpec s;
  s.name = r.name;
  validateName(s.name, "container name");
  s.image = r.image;
  if (s.image.empty()) throwInvalidInput("no image given");
  s.args = r.args;
  for (const auto& e : r.env) {
    if (e.find('=') == std::string::npos || e[0] == '=') {
      throwInvalidInput("-e wants KEY=VALUE, got '" + e + "'");
    }
  }
  s.env = r.env;
  for (const auto& v : r.volumes) s.volumes.push_back(parseVolumeArg(v));
  s.cwd = r.cwd;
  s.user = r.user;
  s.hostname = r.hostname;
  if (!s.hostname.empty()) {
    bool ok = s.hostname.size() <= 64 && s.hostname[0] != '-' && s.hostname[0] != '.';
    for (char c : s.hostname) ok = ok && (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.');
    if (!ok) throwInvalidInput("--hostname " + s.hostname + ": at most 64 letters, digits, '-' and '.'");
  }
  s.group_add = r.group_add;
  s.host_users = r.host_users;
  s.umask = r.umask;
  if (!s.umask.empty()) parseUmask(s.umask);
  s.create_workdir = !r.no_create_workdir;
  for (const auto& t : r.tmpfs) s.tmpfs.push_back(parseTmpfsArg(t));
  for (const auto& kv : r.annotations) {
    auto eq = kv.find('=');
    if (eq == std::string::npos || eq == 0) throwInvalidInput("invalid annotation '" + kv + "': expected KEY=VALUE");
    s.annotations[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  s.stop_signal = r.stop_signal;
  if (!s.stop_signal.empty()) parseSignal(s.stop_signal);
  s.label_opts = r.label_opts;
  validateLabelOptions(s.label_opts);
  for (const auto& x : r.secrets) s.secrets.push_back(parseSecretArg(x));
  s.sdnotify = r.sdnotify;
  validateSdNotify(s.sdnotify);
  s.userns = parseUsernsMode(r.userns);
  checkNetworkArgs(r);
  if (r.cidr.empty() && (r.network == kClusterNetworkName || !r.ip.empty() || !r.publish.empty())) {
    throwInvalidInput("--network ferry, --ip and -p need the cluster network, which a coordinator "
                      "with --network-cidr gives (`ferry run`); this engine alone has none");
  }
  if (r.network != "none" && !r.cidr.empty()) {
    // A container on the cluster network runs in the host's user namespace
    // for now: its network namespace is the host's making (an external one
    // to CRIU), and CRIU 4.1.1 refuses to dump a task whose namespaces belong
    // to different user namespaces ("One or more namespaces doesn't belong to
    // the target user namespace").
    if (r.userns == "auto") {
      throwInvalidInput("--userns auto with an address on the cluster network: CRIU cannot "
                        "checkpoint a container in a user namespace of its own that joins a "
                        "network namespace the host made; drop --userns (a container on the "
                        "network runs in the host's), or run it with --network none");
    }
    s.userns = "host";
    s.network.ip = toString(parseIpv4(r.ip, "--ip"));
    s.network.mac = r.mac;
    s.network.cidr = toString(parseCidr(r.cidr, "the cluster network"));
    for (const auto& p : r.publish) s.network.ports.push_back(toString(parsePublish(p)));
  }
  return s;
}

void checkNetworkArgs(const RunArgs& r) {
  if (!r.network.empty() && r.network != kClusterNetworkName && r.network != "none") {
    throwInvalidInput("--network " + r.network + ": no such network; there is '" +
                      std::string(kClusterNetworkName) +
                      "' (the cluster network, the default where the coordinator has one) and "
                      "'none' (loopback only)");
  }
  if (r.network == "none" && (!r.ip.empty() || !r.publish.empty())) {
    throwInvalidInput(std::string(!r.ip.empty() ? "--ip" : "-p") +
                      " needs the cluster network, and --network none gives the container none");
  }
  if (!r.ip.empty()) parseIpv4(r.ip, "--ip");
  std::set<std::string> taken;
  for (const auto& text : r.publish) {
    PublishedPort p = parsePublish(text);
    std::string key = std::to_string(p.host_port) + "/" + p.protocol;
    if (!taken.insert(key).second) {
      throwInvalidInput("-p " + text + ": host port " + key + " is published twice");
    }
  }
}

const char* const kRunOptionsHelp =
    R"(      --name N              the container's name (required)
      -v VOLUME:/PATH[:OPTS]  a named volume (made when missing); OPTS comma-
                            separated as Podman's: ro|rw; U (chown it to USER);
                            z|Z (SELinux relabel, shared|private: nothing where
                            SELinux is off); O (overlay: the volume is a read-only
                            lower layer, writes stay with the container, which
                            then cannot be checkpointed), upperdir=P,workdir=P
                            as a pair
      -e KEY=VALUE          an environment variable
      -w DIR                working directory: resolved inside the container
                            (symlinks too, at most 40), made and owned by USER
                            when missing unless --no-create-workdir
      -u USER               name|uid[:group|gid], resolved in the container's
                            /etc/passwd and /etc/group (or files a volume mounts
                            over them); its groups are supplementary groups, and
                            HOME comes from its entry unless set
      --hostname NAME       hostname (default: the container's name)
      --group-add G         a supplementary group (name or gid), repeatable
      --hostuser NAME       resolve user NAME in the host's files, repeatable
      --umask MASK          octal, e.g. 027 (default 0022)
      --tmpfs DEST[:OPTS]   a tmpfs at DEST (resolved inside the container, never
                            out of it); OPTS size=, mode=, uid=, gid=, nr_inodes=,
                            ro|rw, [no]exec, [no]suid, [no]dev (default
                            rw,noexec,nosuid,nodev)
      --annotation K=V      into the OCI spec, which also records
                            io.container.manager=ferry (unless given), the
                            creation time and the stop signal
      --stop-signal SIG     what stop sends first (default SIGTERM)
      --secret NAME,type=env[,target=VAR]
                            the host secret NAME as variable VAR (default NAME)
      --security-opt label=L  disable, type:T, level:L, user:U, role:R,
                            filetype:T; where SELinux is on the container gets a
                            process and a mount label (a fresh MCS level unless
                            given), where it is off neither
      --sdnotify MODE       container: NOTIFY_SOCKET=/run/notify/notify.sock and
                            run answers once it says READY=1 (within 120 s);
                            conmon or ignore: ready once started
      --network NET         ferry (default where the coordinator has a cluster
                            network): an address of it, kept across migrations,
                            with its MAC and open TCP connections; none: loopback
                            only
      --ip A.B.C.D          this free address of the cluster network (default:
                            the coordinator picks one)
      -p HOSTPORT:PORT[/tcp|udp]
                            publish PORT on HOSTPORT of the address of the host
                            it runs on (it moves with the container), repeatable
      --userns MODE         auto (default): a user namespace of its own, its ids
                            0-65535 a private range of host ids (its root is
                            nobody on the host; any user checkpoints); the
                            rootfs and volumes are idmapped mounts. host: the
                            host's ids (needed for an O volume)
)";

}  // namespace ferry
