#include "protocol/convert/host_info_proto.h"

#include "protocol/capnp_text.h"

namespace ferry::proto {

void fillHostInfo(HostInfo::Builder b, const ferry::HostInfo& h) {
  b.setHostName(h.host_name);
  b.setEngineVersion(h.engine_version);
  b.setKernel(h.kernel);
  b.setArch(h.arch);
  auto flags = b.initCpuFlags(static_cast<unsigned>(h.cpu_flags.size()));
  for (size_t i = 0; i < h.cpu_flags.size(); ++i)
    flags.set(static_cast<unsigned>(i), h.cpu_flags[i]);
  b.setPageSize(h.page_size);
  b.setCriuVersion(h.criu_version);
  b.setRuntimeName(h.runtime_name);
  b.setRuntimeVersion(h.runtime_version);
  b.setConmonVersion(h.conmon_version);
  b.setCgroupVersion(static_cast<uint8_t>(h.cgroup_version));
  b.setDistribution(h.distribution);
  b.setDistributionVersion(h.distribution_version);
  b.setSelinuxMode(h.selinux_mode);
  b.setMemDirtyTrack(h.mem_dirty_track);
  b.setUffd(h.uffd);
  b.setPostcopyUnavailable(h.postcopy_unavailable);
  b.setNftablesLock(h.nftables_lock);
  b.setMemoryBytes(h.memory_bytes);
  b.setCpus(h.cpus);
}

ferry::HostInfo hostInfoFrom(HostInfo::Reader i) {
  ferry::HostInfo h;
  h.host_name = text(i.getHostName());
  h.engine_version = text(i.getEngineVersion());
  h.kernel = text(i.getKernel());
  h.arch = text(i.getArch());
  for (auto f : i.getCpuFlags()) h.cpu_flags.push_back(text(f));
  h.page_size = i.getPageSize();
  h.criu_version = text(i.getCriuVersion());
  h.runtime_name = text(i.getRuntimeName());
  h.runtime_version = text(i.getRuntimeVersion());
  h.conmon_version = text(i.getConmonVersion());
  h.cgroup_version = i.getCgroupVersion();
  h.distribution = text(i.getDistribution());
  h.distribution_version = text(i.getDistributionVersion());
  h.selinux_mode = text(i.getSelinuxMode());
  h.mem_dirty_track = i.getMemDirtyTrack();
  h.uffd = i.getUffd();
  h.postcopy_unavailable = text(i.getPostcopyUnavailable());
  h.nftables_lock = i.getNftablesLock();
  h.memory_bytes = i.getMemoryBytes();
  h.cpus = i.getCpus();
  return h;
}

}  // namespace ferry::proto
