// HostInfo <-> JSON: how hosts record themselves in checkpoints and how the
// coordinator keeps them. Part of ferry_compat (no I/O).
#include <nlohmann/json.hpp>

#include "compat/host_info.h"

namespace ferry {

using nlohmann::json;

void to_json(json& j, const HostInfo& h) {
  j = json{{"host_name", h.host_name},
           {"engine_version", h.engine_version},
           {"kernel", h.kernel},
           {"arch", h.arch},
           {"cpu_flags", h.cpu_flags},
           {"page_size", h.page_size},
           {"criu_version", h.criu_version},
           {"runtime_name", h.runtime_name},
           {"runtime_version", h.runtime_version},
           {"conmon_version", h.conmon_version},
           {"cgroup_version", h.cgroup_version},
           {"distribution", h.distribution},
           {"distribution_version", h.distribution_version},
           {"selinux_mode", h.selinux_mode},
           {"mem_dirty_track", h.mem_dirty_track},
           {"uffd", h.uffd},
           {"postcopy_unavailable", h.postcopy_unavailable},
           {"nftables_lock", h.nftables_lock},
           {"memory_bytes", h.memory_bytes},
           {"cpus", h.cpus}};
}

void from_json(const json& j, HostInfo& h) {
  h.host_name = j.value("host_name", "");
  h.engine_version = j.value("engine_version", "");
  h.kernel = j.value("kernel", "");
  h.arch = j.value("arch", "");
  h.cpu_flags = j.value("cpu_flags", std::vector<std::string>{});
  h.page_size = j.value("page_size", 0u);
  h.criu_version = j.value("criu_version", "");
  h.runtime_name = j.value("runtime_name", "");
  h.runtime_version = j.value("runtime_version", "");
  h.conmon_version = j.value("conmon_version", "");
  h.cgroup_version = j.value("cgroup_version", 0);
  h.distribution = j.value("distribution", "");
  h.distribution_version = j.value("distribution_version", "");
  h.selinux_mode = j.value("selinux_mode", "");
  h.mem_dirty_track = j.value("mem_dirty_track", false);
  h.uffd = j.value("uffd", false);
  // A host of an older ferry did not say: it never ran post-copy.
  h.postcopy_unavailable = j.value("postcopy_unavailable", h.host_name.empty() ? "" :
                                   "its ferry is older than post-copy");
  // A checkpoint of an older ferry was dumped with CRIU's default (iptables).
  h.nftables_lock = j.value("nftables_lock", false);
  h.memory_bytes = j.value("memory_bytes", uint64_t{0});
  h.cpus = j.value("cpus", 0u);
}

}  // namespace ferry
