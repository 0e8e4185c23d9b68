#include "engine/runtime/config.h"

#include <fstream>

#include "common/error.h"

namespace ferry {

std::string defaultCriuPath() {
  std::ifstream in("/etc/ferry/criu-path");
  std::string path;
  if (in && std::getline(in, path) && !path.empty()) return path;
  return "criu";
}

EngineConfig withDefaults(EngineConfig cfg) {
  validateName(cfg.host_name, "host name");
  if (cfg.root.empty()) cfg.root = fs::path("/var/lib/ferry") / cfg.host_name;
  if (cfg.run_dir.empty()) cfg.run_dir = fs::path("/run/ferry") / cfg.host_name;
  if (cfg.cgroup_parent.empty()) cfg.cgroup_parent = "/ferry/" + cfg.host_name;
  if (cfg.tools.criu.empty()) cfg.tools.criu = defaultCriuPath();
  cfg.root = fs::absolute(cfg.root);
  cfg.run_dir = fs::absolute(cfg.run_dir);
  return cfg;
}

}  // namespace ferry
