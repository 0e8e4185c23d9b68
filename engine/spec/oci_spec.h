// What a user asks a container to be (ContainerSpec), and the OCI runtime
// spec (config.json) generated from it for runc. Pure logic: no I/O.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "engine/spec/identity.h"
#include "engine/image/image_store.h"
#include "engine/spec/secret_ref.h"
#include "engine/spec/user_namespace.h"

namespace ferry {

struct VolumeMount {
  std::string name;         // named volume on the host
  std::string destination;  // absolute path inside the container
  bool readonly = false;
  bool chown = false;       // U: the source is chowned to the container's user
  char relabel = 0;         // 'z' shared, 'Z' private (SELinux), 0 none
  // O: an overlay volume -- the source is a read-only lower layer, writes go
  // to an upper layer of this container's (discarded with it), or to the
  // given upperdir/workdir pair (absolute host paths, both or neither).
  bool overlay = false;
  std::string upperdir;
  std::string workdir;
};

// --tmpfs DEST[:OPTIONS]: a tmpfs at DEST (resolved inside the container).
struct TmpfsMount {
  std::string destination;
  std::vector<std::string> options;  // mount options; Podman's defaults when none
};

// Its place on the cluster network (DESIGN.md, "Container network"): the
// address and MAC the coordinator gave it, kept for its life and carried by
// a migration, and its published ports. Empty ip: no network (a namespace
// with loopback only, `--network none`).
struct NetworkSpec {
  std::string ip;
  std::string mac;
  std::string cidr;                 // the cluster network the address is on
  std::vector<std::string> ports;   // HOSTPORT:PORT/PROTO, canonical
  bool empty() const { return ip.empty(); }
  bool operator==(const NetworkSpec&) const = default;
};
void to_json(nlohmann::json& j, const NetworkSpec& n);
void from_json(const nlohmann::json& j, NetworkSpec& n);

struct ContainerSpec {
  std::string name;
  std::string image;              // as the user named it
  std::vector<std::string> args;  // empty: the image's entrypoint + cmd
  std::vector<std::string> env;   // KEY=VALUE, added over the image's
  std::string cwd;                // empty: the image's, else "/"
  std::string user;               // name|uid[:group|gid]; empty: the image's, else root
  std::string hostname;           // empty: the container's name
  std::vector<VolumeMount> volumes;
  std::vector<std::string> group_add;   // supplementary groups: names or gids
  std::vector<std::string> host_users;  // user names resolved in the host's files
  std::string umask;                    // octal; empty: runc's default (0022)
  bool create_workdir = true;           // a missing working directory is made
  std::vector<TmpfsMount> tmpfs;
  std::map<std::string, std::string> annotations;  // the caller's (--annotation K=V)
  std::string stop_signal;  // what `stop` sends first (e.g. SIGINT, 2); empty: SIGTERM
  // --security-opt label=X values (disable, type:T, level:L, user:U,
  // role:R, filetype:T); see selinux_label.h.
  std::vector<std::string> label_opts;
  // Environment variables from the host's secrets store (names only here).
  std::vector<SecretRef> secrets;
  // --sdnotify: "" or "conmon" (the container counts as ready once
  // started), "container" (it gets NOTIFY_SOCKET and says READY=1 itself)
  // or "ignore" (no socket; ready once started).
  std::string sdnotify;
  // Socket activation: the engine's process was handed listen_fds sockets
  // (fds 3..) by its service manager; they go to the container, with
  // LISTEN_PID=1, LISTEN_FDS and LISTEN_FDNAMES. 0: none.
  int listen_fds = 0;
  std::string listen_fdnames;
  // --userns: "auto" (a user namespace with a private range of host ids,
  // user_namespace.h) or "host". A record written before user namespaces
  // reads as "host": that is how its container runs.
  std::string userns = "auto";
  NetworkSpec network;
};
void to_json(nlohmann::json& j, const SecretRef& r);
void from_json(const nlohmann::json& j, SecretRef& r);

// Where --sdnotify=container puts the socket in the container.
constexpr const char* kNotifySocketDir = "/run/notify";
constexpr const char* kNotifySocket = "/run/notify/notify.sock";

// Validates --sdnotify's value. Throws Error kInvalidInput.
void validateSdNotify(const std::string& mode);
void to_json(nlohmann::json& j, const VolumeMount& v);
void from_json(const nlohmann::json& j, VolumeMount& v);
void to_json(nlohmann::json& j, const TmpfsMount& t);
void from_json(const nlohmann::json& j, TmpfsMount& t);
void to_json(nlohmann::json& j, const ContainerSpec& s);
void from_json(const nlohmann::json& j, ContainerSpec& s);

// "SIGINT", "INT" or "2" as a signal number (1-64). Throws Error
// kInvalidInput naming the bad signal.
int parseSignal(const std::string& text);

// Parses "--tmpfs /dest[:OPTS]": OPTS comma-separated tmpfs mount options
// (size=, mode=, uid=, gid=, nr_inodes=, ro|rw, [no]exec, [no]suid, [no]dev);
// none: rw,noexec,nosuid,nodev as Podman. Throws Error kInvalidInput.
TmpfsMount parseTmpfsArg(const std::string& arg);

// Each volume's name is valid and named once, each destination used once.
// Throws Error kInvalidInput.
void validateVolumes(const std::vector<VolumeMount>& volumes);

// Parses "-v NAME:/path[:OPTIONS]", OPTIONS comma-separated as Podman's:
// ro|rw, U, z|Z, O, upperdir=PATH and workdir=PATH (a pair, with O only).
// Throws Error kInvalidInput naming the bad option.
VolumeMount parseVolumeArg(const std::string& arg);

// Host-side facts the spec needs besides the user's request.
struct SpecHostInputs {
  std::string rootfs;        // absolute path of the mounted rootfs
  std::string cgroups_path;  // e.g. /ferry/hostA/web
  // One host path per spec.volumes entry, same order.
  std::vector<std::string> volume_sources;
  // For each overlay (O) volume, its upper and work directories (host
  // paths); empty for the others.
  std::vector<std::pair<std::string, std::string>> overlay_dirs;
  int64_t created_unix = 0;  // recorded as an annotation (RFC 3339, UTC)
  // One resolved destination per spec.tmpfs entry (empty: as given).
  std::vector<std::string> tmpfs_destinations;
  std::string host_name;     // recorded as an annotation
  // Resolved by the engine against the rootfs (identity.h, workdir.h); when
  // unset, the user must be numeric uid[:gid] and the cwd is used as given.
  std::optional<Identity> identity;
  std::string workdir;
  // SELinux process and mount labels: both or neither.
  std::string process_label;
  std::string mount_label;
  // KEY=VALUE of each secret, set last (over the image's and the caller's).
  std::vector<std::string> secret_env;
  // --sdnotify=container: the host directory holding the notify socket.
  std::string notify_dir;
  // --userns=auto: the host ids its user namespace maps to (empty: none).
  UsernsRange id_range;
  // The network namespace the host made for it (a path runc joins, and
  // that a checkpoint treats as external); empty: runc makes an empty one.
  std::string netns_path;
  // CRIU options for its checkpoints and restores (runc's org.criu.config
  // annotation); empty: none.
  std::string criu_config;
  // The host's cgroup version (HostInfo::cgroup_version; 0 unknown): 2 gives
  // the container a cgroup namespace of its own.
  int cgroup_version = 0;
};

// Builds config.json. Namespaces: pid, ipc, uts, mount, network (loopback
// only), user with host.id_range's mappings when it has one, and cgroup on a
// cgroup-v2 host. No terminal: stdio are conmon's pipes (CRIU cannot dump a container
// whose stdio is a path outside it). No rlimits: runc would otherwise set
// them, and raising one above the current limit fails without
// CAP_SYS_RESOURCE. Throws Error kInvalidInput for a bad user, cwd, env or
// volume destination.
nlohmann::json generateOciSpec(const ContainerSpec& spec, const ImageConfig& image,
                               const SpecHostInputs& host);

// The spec with each secret's value replaced by "(secret NAME)", for copies
// that leave the host's config.json (a checkpoint's).
nlohmann::json redactSecrets(nlohmann::json spec, const std::vector<SecretRef>& secrets);

// The container paths of the mounts generateOciSpec makes besides volumes.
std::vector<std::string> defaultMountDestinations();

// The resolved argv / env / cwd (image defaults merged), as generateOciSpec
// uses them; exposed for tests and inspect output.
std::vector<std::string> effectiveArgs(const ContainerSpec& spec, const ImageConfig& image);
std::vector<std::string> effectiveEnv(const ContainerSpec& spec, const ImageConfig& image);

}  // namespace ferry
