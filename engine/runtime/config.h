// Where one engine instance (one host) keeps its state, and which runtime
// tools it drives.
#pragma once

#include "engine/runtime/log_retention.h"
#include <filesystem>
#include <string>

#include "common/names.h"

namespace ferry {

namespace fs = std::filesystem;

struct ToolPaths {
  std::string runc = "runc";
  std::string conmon = "conmon";
  // A CRIU that works on this kernel. Default: the path recorded by
  // tools/install-deps.sh in /etc/ferry/criu-path, else "criu" from PATH.
  std::string criu;
};

struct EngineConfig {
  // The host's name: it appears in cgroup paths, logs and host info, so
  // several hosts can share one machine (tests, the local cluster).
  std::string host_name = "local";
  // State root: images, volumes, containers. Default /var/lib/ferry/<host>.
  fs::path root;
  // Runtime state that does not outlive a reboot: runc's --root is
  // <run_dir>/runc, conmon's attach sockets live in <run_dir>/sock.
  // Default /run/ferry/<host>.
  fs::path run_dir;
  // Parent of every container's cgroup. Default /ferry/<host>.
  std::string cgroup_parent;
  ToolPaths tools;
  // Whether this host takes part in post-copy migrations (the agent's
  // --postcopy); it also needs uffd and two host settings (host_probe.h).
  bool postcopy = false;
  // How long CRIU's logs stay (root/logs; log_retention.h).
  LogRetention logs;
};

inline fs::path runcRoot(const EngineConfig& c) { return c.run_dir / "runc"; }

// Fills every empty field of `cfg` with its default (documented above).
EngineConfig withDefaults(EngineConfig cfg);

// The CRIU recorded by the installer, or "criu".
std::string defaultCriuPath();


}  // namespace ferry
