#include "network/host_network.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/sha256.h"

namespace ferry::network {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string hostRoute(Ipv4 ip) { return toString(ip) + "/32"; }

}  // namespace

std::string hostInterface(const std::string& tag, const std::string& container) {
  return "fc" + sha256Hex(tag + "/" + container).substr(0, 10);
}

std::string vtepMac(Ipv4 host) {
  std::string m = macFor(host);  // 02:66:...
  return "02:67" + m.substr(5);
}

HostNetwork::HostNetwork(HostNetworkConfig cfg, Shell shell)
    : cfg_(std::move(cfg)), shell_(std::move(shell)) {}

std::string HostNetwork::ip(const std::vector<std::string>& args, const std::string& input) {
  std::vector<std::string> argv{"ip"};
  argv.insert(argv.end(), args.begin(), args.end());
  return shell_(argv, input);
}

void HostNetwork::batch(const std::vector<std::string>& lines) {
  std::string input;
  for (const auto& l : lines) input += l + "\n";
  ip({"-batch", "-"}, input);
}

std::string HostNetwork::netnsName(const std::string& container) const {
  return "ferry-" + cfg_.tag + "-" + container;
}

fs::path HostNetwork::netnsPath(const std::string& container) const {
  return cfg_.netns_dir / netnsName(container);
}

void HostNetwork::setup() {
  std::lock_guard lock(mu_);
  std::string cidr = toString(cfg_.cidr);
  // Routes the host has that are not ferry's own: the cluster network may
  // not overlap one (its addresses would be ambiguous).
  json routes = json::parse(ip({"-j", "route", "show", "table", "main"}));
  for (const auto& r : routes) {
    std::string dst = r.value("dst", "");
    std::string dev = r.value("dev", "");
    std::string type = r.value("type", "unicast");
    if (dst.empty() || dst == "default") continue;
    if (dev == kVxlanDevice || dev.rfind("fc", 0) == 0) continue;
    if (type == "blackhole" && dst == cidr) continue;
    Cidr have = dst.find('/') == std::string::npos ? Cidr{parseIpv4(dst, "route"), 32}
                                                    : parseCidr(dst, "route");
    if (overlaps(have, cfg_.cidr)) {
      throw Error(ErrorCategory::kIncompatible,
                  "the cluster network " + cidr + " overlaps the route to " + dst +
                      (dev.empty() ? "" : " (dev " + dev + ")") + " that host address " +
                      toString(cfg_.address) +
                      " already has; give the coordinator another --network-cidr");
    }
  }
  // Through the shell too: /proc/sys/net is the network namespace of the
  // process that opens it, and the shell's is the host's.
  shell_({"sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward"}, "");
  // The VXLAN device, made again when it is not what this host needs.
  bool fits = false;
  try {
    json link = json::parse(ip({"-d", "-j", "link", "show", kVxlanDevice}));
    const json& data = link.at(0).at("linkinfo").at("info_data");
    fits = data.value("id", 0u) == kVxlanId && data.value("local", "") == toString(cfg_.address) &&
           data.value("port", 0u) == kVxlanPort;
    if (!fits) ip({"link", "del", kVxlanDevice});
  } catch (const Error&) {
    // none yet
  }
  if (!fits) {
    batch({"link add " + std::string(kVxlanDevice) + " type vxlan id " + std::to_string(kVxlanId) +
               " local " + toString(cfg_.address) + " dstport " + std::to_string(kVxlanPort) +
               " nolearning",
           "link set " + std::string(kVxlanDevice) + " address " + vtepMac(cfg_.address)});
    remote_.clear();
    remote_hosts_.clear();
    last_placement_.reset();
  }
  batch({"link set " + std::string(kVxlanDevice) + " up", "route replace blackhole " + cidr});
}

fs::path HostNetwork::attach(const std::string& container, const ContainerAddress& a, bool locked) {
  // The MAC goes into `ip -batch` input: six hex pairs, nothing else.
  bool mac_ok = a.mac.size() == 17;
  for (size_t i = 0; mac_ok && i < 17; ++i) {
    mac_ok = i % 3 == 2 ? a.mac[i] == ':' : std::isxdigit(static_cast<unsigned char>(a.mac[i])) != 0;
  }
  if (!mac_ok) {
    throw Error(ErrorCategory::kInvalidInput,
                "MAC '" + a.mac.substr(0, 32) + "' of " + container + " is not six hex pairs");
  }
  detach(container);
  std::lock_guard lock(mu_);
  std::string ns = netnsName(container);
  std::string hostif = hostInterface(cfg_.tag, container);
  std::string addr = toString(a.ip);
  try {
    ip({"netns", "add", ns});
    if (locked) lockNamespace(ns);
    batch({"link add " + hostif + " type veth peer name eth0 netns " + ns,
           "link set " + hostif + " address " + kGatewayMac, "link set " + hostif + " up",
           "route replace " + hostRoute(a.ip) + " dev " + hostif + " scope link",
           "neigh replace " + addr + " lladdr " + a.mac + " dev " + hostif + " nud permanent"});
    ip({"-n", ns, "-batch", "-"},
       "link set lo up\n"
       "link set eth0 address " + a.mac + "\n"
       "addr add " + addr + "/32 dev eth0\n"
       "link set eth0 up\n"
       "route add " + std::string(kGateway) + " dev eth0 scope link\n"
       "neigh replace " + kGateway + " lladdr " + kGatewayMac + " dev eth0 nud permanent\n"
       "route add default via " + kGateway + " dev eth0\n");
  } catch (...) {
    try {
      ip({"link", "del", hostif});
    } catch (const std::exception&) {
    }
    try {
      ip({"netns", "del", ns});
    } catch (const std::exception&) {
    }
    throw;
  }
  return netnsPath(container);
}

void HostNetwork::detach(const std::string& container) noexcept {
  std::lock_guard lock(mu_);
  std::string ns = netnsName(container);
  std::string hostif = hostInterface(cfg_.tag, container);
  std::optional<Ipv4> was;
  try {
    json addrs = json::parse(ip({"-j", "-n", ns, "addr", "show", "eth0"}));
    for (const auto& a : addrs.at(0).at("addr_info")) {
      if (a.value("family", "") == "inet") was = parseIpv4(a.at("local").get<std::string>());
    }
  } catch (const std::exception&) {
  }
  for (auto args : {std::vector<std::string>{"link", "del", hostif},
                    std::vector<std::string>{"netns", "del", ns}}) {
    try {
      ip(args);
    } catch (const std::exception&) {
      // absent already
    }
  }
  // Where the coordinator places the address elsewhere, route there again.
  if (was) {
    if (auto it = remote_.find(*was); it != remote_.end()) {
      try {
        addRemoteHost(it->second);
        ip({"route", "replace", hostRoute(*was), "via", toString(it->second), "dev", kVxlanDevice,
            "onlink"});
      } catch (const std::exception&) {
        // the next setRemote puts it back
      }
    }
  }
}

void HostNetwork::lock(const std::string& container) {
  std::lock_guard lock(mu_);
  lockNamespace(netnsName(container));
}

void HostNetwork::lockNamespace(const std::string& ns) {
  shell_({"ip", "netns", "exec", ns, "nft", "-f", "-"},
         "table inet ferry-lock {\n"
         "  chain input { type filter hook input priority -400; policy drop; iif lo accept; }\n"
         "  chain output { type filter hook output priority -400; policy drop; oif lo accept; }\n"
         "}\n");
}

void HostNetwork::unlock(const std::string& container) noexcept {
  try {
    unlockOrThrow(container);
  } catch (const std::exception&) {
    // no namespace (gone with its container): nothing to unlock
  }
}

void HostNetwork::unlockOrThrow(const std::string& container) {
  std::lock_guard lock(mu_);
  shell_({"ip", "netns", "exec", netnsName(container), "nft", "-f", "-"},
         "table inet ferry-lock {}\ndelete table inet ferry-lock\n");
}

void HostNetwork::addRemoteHost(Ipv4 host) {
  if (remote_hosts_.count(host)) return;
  std::string mac = vtepMac(host);
  ip({"neigh", "replace", toString(host), "lladdr", mac, "dev", kVxlanDevice, "nud", "permanent"});
  shell_({"bridge", "fdb", "replace", mac, "dev", kVxlanDevice, "dst", toString(host), "self",
          "permanent"},
         "");
  remote_hosts_[host] = true;
}

void HostNetwork::setRemote(const std::map<Ipv4, Ipv4>& placement) {
  std::lock_guard lock(mu_);
  // The same word as last time (every heartbeat's answer): routes are as it
  // wants them, as attach and detach keep their own addresses' routes.
  // (Recorded only once applied: a failure is tried again with the next.)
  if (last_placement_ && *last_placement_ == placement) return;
  // Addresses attached here are routed to their veth; those stay.
  std::set<Ipv4> local;
  try {
    json routes = json::parse(ip({"-j", "route", "show", "table", "main"}));
    for (const auto& r : routes) {
      std::string dev = r.value("dev", "");
      std::string dst = r.value("dst", "");
      if (dev.rfind("fc", 0) == 0 && dst.find('/') == std::string::npos && !dst.empty()) {
        local.insert(parseIpv4(dst));
      }
    }
  } catch (const std::exception&) {
  }
  std::vector<std::string> lines;
  for (const auto& [ip_addr, host] : placement) {
    if (host == cfg_.address || local.count(ip_addr) || !cfg_.cidr.contains(ip_addr)) continue;
    auto it = remote_.find(ip_addr);
    if (it != remote_.end() && it->second == host) continue;
    addRemoteHost(host);
    lines.push_back("route replace " + hostRoute(ip_addr) + " via " + toString(host) + " dev " +
                    kVxlanDevice + " onlink");
  }
  for (const auto& [ip_addr, host] : remote_) {
    if (!placement.count(ip_addr) && !local.count(ip_addr)) {
      lines.push_back("route del " + hostRoute(ip_addr) + " dev " + kVxlanDevice);
    }
  }
  if (!lines.empty()) {
    // -force: one route already gone does not keep the others from changing.
    std::string input;
    for (const auto& l : lines) input += l + "\n";
    try {
      ip({"-force", "-batch", "-"}, input);
    } catch (const Error&) {
      // some lines failed (a route already absent); the rest applied
    }
  }
  remote_ = placement;
  for (auto it = remote_.begin(); it != remote_.end();) {
    it = it->second == cfg_.address ? remote_.erase(it) : std::next(it);
  }
  last_placement_ = placement;
}

void HostNetwork::routeRemote(Ipv4 ip_addr, Ipv4 host) {
  std::lock_guard lock(mu_);
  addRemoteHost(host);
  ip({"route", "replace", hostRoute(ip_addr), "via", toString(host), "dev", kVxlanDevice, "onlink"});
  remote_[ip_addr] = host;
}

void HostNetwork::publish(const std::map<std::string, ContainerAddress>& running) {
  std::lock_guard lock(mu_);
  std::string rules;
  for (const auto& [name, a] : running) {
    for (const auto& p : a.ports) {
      rules += "    ip daddr " + toString(cfg_.address) + " " + p.protocol + " dport " +
               std::to_string(p.host_port) + " dnat to " + toString(a.ip) + ":" +
               std::to_string(p.port) + "\n";
    }
  }
  // Declared, deleted and declared again in one transaction: the table
  // becomes exactly this, atomically, whether or not it existed.
  std::string script =
      "table ip ferry {}\n"
      "delete table ip ferry\n"
      "table ip ferry {\n"
      "  chain prerouting {\n"
      "    type nat hook prerouting priority dstnat; policy accept;\n" +
      rules +
      "  }\n"
      "  chain output {\n"
      "    type nat hook output priority -100; policy accept;\n" +
      rules +
      "  }\n"
      "}\n";
  shell_({"nft", "-f", "-"}, script);
}

}  // namespace ferry::network
