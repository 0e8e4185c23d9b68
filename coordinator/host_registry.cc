#include "coordinator/host_registry.h"

namespace ferry::coord {

void HostRegistry::add(const std::string& host, int64_t now_ms) {
  hosts_.try_emplace(host, Host{.up = true, .last_heard_ms = now_ms});
}

bool HostRegistry::heard(const std::string& host, int64_t now_ms) {
  Host& h = hosts_[host];
  bool was_down = !h.up;
  h.up = true;
  h.last_heard_ms = now_ms;
  return was_down;
}

std::vector<std::string> HostRegistry::markSilentDown(int64_t cutoff_ms) {
  std::vector<std::string> down;
  for (auto& [name, h] : hosts_) {
    if (h.up && h.last_heard_ms < cutoff_ms) {
      h.up = false;
      down.push_back(name);
    }
  }
  return down;
}

bool HostRegistry::up(const std::string& host) const {
  auto it = hosts_.find(host);
  return it != hosts_.end() && it->second.up;
}

int64_t HostRegistry::lastHeard(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? 0 : it->second.last_heard_ms;
}

void HostRegistry::setLoad(const std::string& host, const LoadRow& load) {
  hosts_[host].load = load;
}

LoadRow HostRegistry::load(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? LoadRow{} : it->second.load;
}

void HostRegistry::setMemory(const std::string& host,
                             std::map<std::string, uint64_t> by_container) {
  hosts_[host].memory = std::move(by_container);
}

ContainerRow HostRegistry::withMemory(ContainerRow row) const {
  auto h = hosts_.find(row.host);
  if (h == hosts_.end()) return row;
  auto m = h->second.memory.find(row.name);
  if (m != h->second.memory.end()) row.memory_bytes = m->second;
  return row;
}

}  // namespace ferry::coord
