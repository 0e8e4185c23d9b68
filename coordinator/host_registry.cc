#include "coordinator/host_registry.h"

#include <algorithm>
#include <utility>

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

void HostRegistry::report(const std::string& host, const HeartbeatReport& r) {
  auto it = hosts_.find(host);
  if (it == hosts_.end()) return;  // registered by its hello only
  Host& h = it->second;
  h.load = r.load;
  h.network = {r.network, r.network_error};
  std::map<std::string, uint64_t> memory;
  for (const auto& c : r.containers) memory[c.name] = c.memory_bytes;
  setMemory(host, std::move(memory));
  h.extras = r.extras;
}

HostNetworkState HostRegistry::network(const std::string& host) const {
  auto it = hosts_.find(host);
  return it == hosts_.end() ? HostNetworkState{} : it->second.network;
}

void HostRegistry::setMemory(const std::string& host,
                             std::map<std::string, uint64_t> by_container) {
  hosts_[host].memory = std::move(by_container);
}

void HostRegistry::noteExtras(const std::string& host, const std::string& container,
                              ContainerExtras x) {
  auto it = hosts_.find(host);
  if (it != hosts_.end()) it->second.extras[container] = std::move(x);
}

std::optional<ContainerExtras> HostRegistry::extras(const std::string& host,
                                                    const std::string& container) const {
  if (auto h = hosts_.find(host); h != hosts_.end()) {
    if (auto x = h->second.extras.find(container); x != h->second.extras.end()) return x->second;
  }
  for (const auto& [name, h] : hosts_) {
    if (auto x = h.extras.find(container); x != h.extras.end()) return x->second;
  }
  return std::nullopt;
}

size_t HostRegistry::containersKnown() const {
  size_t n = 0;
  for (const auto& [name, h] : hosts_) n += std::max(h.memory.size(), h.extras.size());
  return n;
}

ContainerRow HostRegistry::withMemory(ContainerRow row) const {
  auto h = hosts_.find(row.host);
  if (h == hosts_.end()) return row;
  auto m = h->second.memory.find(row.name);
  if (m != h->second.memory.end()) row.memory_bytes = m->second;
  return row;
}

bool placementChanged(std::vector<ContainerRow> stored, std::vector<ContainerRow> reported) {
  auto byName = [](const ContainerRow& a, const ContainerRow& b) { return a.name < b.name; };
  std::sort(stored.begin(), stored.end(), byName);
  std::sort(reported.begin(), reported.end(), byName);
  return !std::equal(stored.begin(), stored.end(), reported.begin(), reported.end(),
                     [](const ContainerRow& a, const ContainerRow& b) {
                       return a.name == b.name && a.image == b.image && a.status == b.status && a.ip == b.ip;
                     });
}

bool imagesChanged(std::vector<ImageRow> stored, std::vector<ImageRow> reported) {
  auto key = [](const ImageRow& i) { return std::pair(i.name, i.id); };
  auto byKey = [&](const ImageRow& a, const ImageRow& b) { return key(a) < key(b); };
  std::sort(stored.begin(), stored.end(), byKey);
  std::sort(reported.begin(), reported.end(), byKey);
  return !std::equal(stored.begin(), stored.end(), reported.begin(), reported.end(),
                     [&](const ImageRow& a, const ImageRow& b) { return key(a) == key(b); });
}

}  // namespace ferry::coord
