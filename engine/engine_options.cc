#include "engine/engine_options.h"

namespace ferry {

void addEngineOptions(CLI::App& app, EngineConfig& cfg, const std::string& host) {
  app.add_option("--root", cfg.root, "state root (default /var/lib/ferry/" + host + ")")
      ->type_name("DIR");
  app.add_option("--run-dir", cfg.run_dir,
                 "runtime dir for runc state and sockets (default /run/ferry/" + host + ")")
      ->type_name("DIR");
  app.add_option("--cgroup-parent", cfg.cgroup_parent,
                 "parent cgroup of the containers (default /ferry/" + host + ")")
      ->type_name("P");
  app.add_option("--criu", cfg.tools.criu,
                 "CRIU to use (default: the one recorded by tools/install-deps.sh)")
      ->type_name("PATH");
}

}  // namespace ferry
