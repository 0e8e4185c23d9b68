#include "coordinator/addresses.h"

#include "common/error.h"

namespace ferry::coord {

Ipv4 pickAddress(const Cidr& network, const std::map<Ipv4, std::string>& used,
                 std::optional<Ipv4> asked, Ipv4 last) {
  Ipv4 first = network.firstHost(), end = network.lastHost();
  if (asked) {
    std::string a = toString(*asked);
    if (!network.contains(*asked)) {
      throwInvalidInput("--ip " + a + " is not on the cluster network " + toString(network));
    }
    if (*asked < first || *asked > end) {
      throwInvalidInput("--ip " + a + " is the cluster network's own " +
                        (*asked == network.network ? "network" : "broadcast") + " address");
    }
    if (auto it = used.find(*asked); it != used.end()) {
      throwInvalidInput("--ip " + a + " is in use by container " + it->second);
    }
    return *asked;
  }
  uint64_t count = uint64_t{end.value} - first.value + 1;
  uint64_t start = (last < first || last >= end) ? 0 : uint64_t{last.value} - first.value + 1;
  for (uint64_t i = 0; i < count; ++i) {
    Ipv4 ip{static_cast<uint32_t>(first.value + (start + i) % count)};
    if (!used.count(ip)) return ip;
  }
  throw Error(ErrorCategory::kPermanent, "every address of the cluster network " + toString(network) +
                                             " is in use; remove containers, or run this one with "
                                             "--network none");
}

void checkPortsFree(const std::string& host, const std::vector<std::string>& wanted,
                    const std::vector<ContainerRow>& on_host, const std::string& except) {
  for (const auto& w : wanted) {
    PublishedPort p = parsePublish(w);
    for (const auto& c : on_host) {
      if (c.name == except) continue;
      for (const auto& theirs : c.ports) {
        PublishedPort q = parsePublish(theirs);
        if (q.host_port == p.host_port && q.protocol == p.protocol) {
          throwInvalidInput("-p " + w + ": host port " + std::to_string(p.host_port) + "/" +
                            p.protocol + " on " + host + " is published by container " + c.name);
        }
      }
    }
  }
}

std::map<Ipv4, std::string> addressPlacement(const std::vector<ContainerRow>& rows) {
  std::map<Ipv4, std::string> out;
  std::map<Ipv4, bool> running;
  for (const auto& r : rows) {
    if (r.ip.empty()) continue;
    Ipv4 ip;
    try {
      ip = parseIpv4(r.ip);
    } catch (const Error&) {
      continue;
    }
    bool runs = r.status == "running";
    if (!out.count(ip) || (runs && !running[ip])) {
      out[ip] = r.host;
      running[ip] = runs;
    }
  }
  return out;
}

std::string endpointAddress(const std::string& endpoint) {
  std::string rest = endpoint.rfind("tcp://", 0) == 0 ? endpoint.substr(6) : endpoint;
  rest = rest.substr(0, rest.find(':'));
  try {
    return toString(parseIpv4(rest));
  } catch (const Error&) {
    return "";
  }
}

}  // namespace ferry::coord
