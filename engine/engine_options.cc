#include "engine/engine_options.h"

#include "common/cli_options.h"

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
  app.add_option_function<size_t>(
         "--keep-logs", [&cfg](const size_t& n) { cfg.logs.keep_done = cfg.logs.keep_failed = n; },
         "CRIU's logs of this many successful operations stay in ROOT/logs (default 30; 3 at "
         "most per container and kind), and of as many failed ones")
      ->type_name("N")
      ->check(cli::countIn(1, 100000));
  app.add_option_function<uint64_t>(
         "--logs-max-size", [&cfg](const uint64_t& mib) { cfg.logs.max_bytes = mib << 20; },
         "CRIU's logs take at most this many MiB together; the oldest go first, a failure's "
         "last (default 64)")
      ->type_name("MIB")
      ->check(cli::countIn(1, uint64_t{1} << 30));
}

}  // namespace ferry
