// What a host is, as far as restoring a checkpoint is concerned: recorded in
// every checkpoint and compared before a restore.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>


namespace ferry {

struct HostInfo {
  std::string host_name;
  std::string engine_version;
  std::string kernel;           // uname -r
  std::string arch;             // uname -m
  std::vector<std::string> cpu_flags;  // /proc/cpuinfo "flags", sorted
  uint32_t page_size = 0;
  std::string criu_version;     // "4.1.1"
  std::string runtime_name = "runc";
  std::string runtime_version;  // "1.1.5+ds1"
  std::string conmon_version;   // "2.1.6"
  int cgroup_version = 0;       // 1 or 2
  std::string distribution;     // os-release ID
  std::string distribution_version;  // os-release VERSION_ID
  std::string selinux_mode;     // enforcing | permissive | disabled
  bool mem_dirty_track = false; // CRIU pre-dump / --track-mem usable
  bool uffd = false;            // lazy pages (post-copy) usable
  // Post-copy migrations to and from this host work: uffd, and a pipe size
  // CRIU's page server can have. Empty: yes; else why not.
  std::string postcopy_unavailable;
  // This host's: its CRIU can lock a container's network with nftables
  // (`criu check --feature network_lock_nftables`). A checkpoint's copy: its
  // dump did (a migration between two such hosts), so its restore needs a
  // CRIU that can lift it.
  bool nftables_lock = false;
  uint64_t memory_bytes = 0;
  uint32_t cpus = 0;
};
void to_json(nlohmann::json& j, const HostInfo& h);
void from_json(const nlohmann::json& j, HostInfo& h);

}  // namespace ferry
