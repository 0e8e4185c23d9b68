#include "coordinator/heartbeat.h"

#include "common/ipv4.h"

#include "common/error.h"
#include "common/names.h"
#include "protocol/capnp_text.h"

namespace ferry::coord {

using proto::text;

namespace {

bool validName(const std::string& n) {
  try {
    validateName(n, "name");
    return true;
  } catch (const Error&) {
    return false;
  }
}

// Appends "N NOUN past the bound of MAX" once per list.
void cut(HeartbeatReport& r, size_t n, size_t max, const char* noun) {
  if (n > max) {
    r.refused.push_back(std::to_string(n) + " " + noun + " reported, kept the first " +
                        std::to_string(max));
  }
}

}  // namespace

void readAddress(proto::Container::Reader c, ContainerRow& row) {
  // Only what parses: an agent's word is not trusted to be well-formed.
  try {
    std::string ip = text(c.getIp());
    if (ip.empty()) return;
    row.ip = toString(parseIpv4(ip));
    std::string mac = text(c.getMac());
    if (mac.size() <= 17) row.mac = mac;
    auto ports = c.getPorts();
    for (size_t k = 0; k < std::min<size_t>(ports.size(), 64); ++k) {
      row.ports.push_back(toString(parsePublish(text(ports[static_cast<unsigned>(k)]))));
    }
  } catch (const Error&) {
    // left without (its address is then not routed)
  }
}

HeartbeatReport readHeartbeat(const std::string& host, proto::Message::Heartbeat::Reader h) {
  HeartbeatReport r;
  auto l = h.getLoad();
  r.load = {l.getCpuPercent(), l.getMemoryUsedBytes(), l.getMemoryTotalBytes(),
            l.getMemoryCapacityBytes()};
  auto containers = h.getContainers();
  cut(r, containers.size(), kMaxReportedContainers, "containers");
  size_t bad = 0;
  for (size_t i = 0; i < std::min<size_t>(containers.size(), kMaxReportedContainers); ++i) {
    auto c = containers[static_cast<unsigned>(i)];
    std::string name = text(c.getName()), image = text(c.getImage()), status = text(c.getStatus());
    if (!validName(name) || image.size() > kMaxReportedText || status.size() > kMaxReportedText ||
        r.extras.count(name)) {
      ++bad;
      continue;
    }
    ContainerExtras x;
    auto secrets = c.getSecrets();
    for (size_t k = 0; k < std::min<size_t>(secrets.size(), kMaxContainerSecrets); ++k) {
      std::string s = text(secrets[static_cast<unsigned>(k)]);
      if (validName(s)) x.secrets.push_back(s);
    }
    x.ready = c.getReady();
    x.notify_status = text(c.getNotifyStatus()).substr(0, kMaxReportedText);
    x.pid = c.getPid();
    x.reported_by = host;
    ContainerRow row{name, host, image, status, c.getMemoryBytes()};
    readAddress(c, row);
    r.containers.push_back(std::move(row));
    r.extras.emplace(name, std::move(x));
  }
  if (bad) {
    r.refused.push_back(std::to_string(bad) +
                        " containers with a bad or repeated name, or an image or status over " +
                        std::to_string(kMaxReportedText) + " characters, left out");
  }
  auto images = h.getImages();
  cut(r, images.size(), kMaxReportedImages, "images");
  for (size_t i = 0; i < std::min<size_t>(images.size(), kMaxReportedImages); ++i) {
    auto im = images[static_cast<unsigned>(i)];
    std::string name = text(im.getName()), id = text(im.getId());
    if (name.size() <= kMaxReportedText && id.size() <= kMaxReportedText) {
      r.images.push_back({name, id});
    }
  }
  auto secrets = h.getSecrets();
  cut(r, secrets.size(), kMaxReportedSecrets, "secrets");
  for (size_t i = 0; i < std::min<size_t>(secrets.size(), kMaxReportedSecrets); ++i) {
    std::string s = text(secrets[static_cast<unsigned>(i)]);
    if (validName(s)) r.secrets.insert(s);
  }
  r.network = text(h.getNetwork()).substr(0, kMaxReportedText);
  r.network_error = text(h.getNetworkError()).substr(0, 4 * kMaxReportedText);
  return r;
}

}  // namespace ferry::coord
