// The engine's persistent record of each container, one JSON file per
// container under <root>/containers/<name>/container.json, written
// atomically. A new engine process reads these to find and manage containers
// an earlier one started. Not thread-safe; the engine serialises mutations.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/spec/oci_spec.h"
#include "engine/spec/user_namespace.h"

namespace ferry {

namespace fs = std::filesystem;

struct ContainerRecord {
  ContainerSpec spec;
  std::string image_id;
  std::string host;            // the engine's host name when last saved
  int64_t created_unix = 0;
  int64_t started_unix = 0;
  // Set when a checkpoint ended the container (not --leave-running): conmon
  // then records exit 137, which must not read as "killed".
  bool checkpointed = false;
  std::string checkpoint_dir;  // the last checkpoint written, if any
  std::string restored_from;   // "host:dir" when this copy came from a restore
  // SELinux labels given at creation (selinux_label.h): both or neither;
  // neither where SELinux is off. Carried by a checkpoint and kept by a
  // restore where SELinux is on and the level is free there.
  std::string process_label;
  std::string mount_label;
  // --sdnotify=container: what the container said (notify.h), carried by a
  // checkpoint to the restored copy.
  bool notify_ready = false;
  std::string notify_status;
  // --userns=auto: the host ids its user namespace maps to (empty: none).
  // Given at creation, carried by a checkpoint and reserved on the target.
  UsernsRange id_range;

  const std::string& name() const { return spec.name; }
};
void to_json(nlohmann::json& j, const ContainerRecord& r);
void from_json(const nlohmann::json& j, ContainerRecord& r);

// Where a container's files live.
struct ContainerPaths {
  fs::path dir;        // <root>/containers/<name>: also the OCI bundle
  fs::path record() const { return dir / "container.json"; }
  fs::path config() const { return dir / "config.json"; }
  // CRIU options for its checkpoints and restores (runc's org.criu.config).
  fs::path criu_config() const { return dir / "criu.conf"; }
  fs::path rootfs() const { return dir / "rootfs"; }
  fs::path upper() const { return dir / "upper"; }
  fs::path work() const { return dir / "work"; }
  fs::path log() const { return dir / "ctr.log"; }         // stdout/stderr, k8s-file format
  fs::path conmon_log() const { return dir / "conmon.log"; }
  fs::path conmon_pid() const { return dir / "conmon.pid"; }
  fs::path pid_file() const { return dir / "pidfile"; }
  fs::path exit_dir() const { return dir / "exit"; }
  fs::path notify_dir() const { return dir / "notify"; }        // mounted at /run/notify
  fs::path notify_state() const { return dir / "notify.state"; }
  // --userns=auto: where the image's rootfs is idmapped while the overlay
  // is mounted, and where each volume's idmapped mount lives.
  fs::path idmapped_lower() const { return dir / "idmapped-lower"; }
  fs::path idmapped_volumes() const { return dir / "idmapped-volumes"; }
};

class ContainerStore {
 public:
  explicit ContainerStore(fs::path dir);  // <root>/containers, created if missing

  ContainerPaths paths(const std::string& name) const;
  std::optional<ContainerRecord> find(const std::string& name) const;
  // Throws Error kInvalidInput "no container 'X' on host H".
  ContainerRecord get(const std::string& name, const std::string& host) const;
  std::vector<ContainerRecord> list() const;
  void save(const ContainerRecord& r);
  // Removes the container's directory (everything in it must be unmounted).
  void erase(const std::string& name);

 private:
  fs::path dir_;
};

}  // namespace ferry
