#include "tools/cluster_network.h"

#include "common/error.h"
#include "common/fs.h"
#include "common/ipv4.h"
#include "protocol/curve.h"

namespace ferry::cluster {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// The hosts' links are 10.212.N.0/24: private, and apart from the test
// networks' 10.213 and 10.214.
constexpr const char* kLinkPrefix = "10.212";

std::vector<std::string> nodeNames(const NetnsLink& l) {
  std::vector<std::string> out;
  for (const auto& n : l.nodes) out.push_back(n.name);
  return out;
}

// Whether this machine's main table holds the route `n` added.
bool routePresent(CommandRunner& runner, const ClusterNetwork& n) {
  for (const auto& r : json::parse(runChecked(runner, {"ip", "-j", "-4", "route", "show", "table", "main"}))) {
    if (r.value("dst", "") == n.cidr && r.value("gateway", "") == n.via &&
        r.value("dev", "") == n.link.bridge) {
      return true;
    }
  }
  return false;
}

}  // namespace

void to_json(json& j, const ClusterNetwork& n) {
  json nodes = json::array();
  for (const auto& x : n.link.nodes) {
    nodes.push_back({{"name", x.name}, {"netns", x.netns}, {"veth", x.veth}, {"address", x.address}});
  }
  j = json{{"cidr", n.cidr},
           {"bridge", n.link.bridge},
           {"bridge_address", n.enabled() ? n.link.bridgeAddress() : ""},
           {"subnet", n.link.subnet},
           {"nodes", nodes},
           {"via", n.via}};
}

void from_json(const json& j, ClusterNetwork& n) {
  n.cidr = j.value("cidr", "");
  n.via = j.value("via", "");
  n.link.bridge = j.value("bridge", "");
  n.link.subnet = j.value("subnet", "");
  n.link.nodes.clear();
  for (const auto& x : j.value("nodes", json::array())) {
    n.link.nodes.push_back({x.at("name").get<std::string>(), x.at("netns").get<std::string>(),
                            x.at("veth").get<std::string>(), x.at("address").get<std::string>()});
  }
}

NetnsLink clusterLink(const std::string& id, const std::string& subnet,
                      const std::vector<std::string>& hosts) {
  return planLink("fcl" + id, "ferry-cl-" + id + "-", subnet, hosts);
}

ClusterNetwork planNetwork(CommandRunner& runner, const std::string& id, const std::string& cidr,
                           const std::vector<std::string>& hosts) {
  Cidr c = parseCidr(cidr, "--network");
  if (c.prefix < 8 || c.prefix > 28) {
    throwInvalidInput("--network " + cidr + ": give a range of /8 to /28 for the containers");
  }
  std::vector<Cidr> used = rangesInUse(runner);
  for (const auto& u : used) {
    if (overlaps(u, c)) {
      throwInvalidInput("--network " + cidr + " overlaps " + toString(u) +
                        ", which this machine routes or has an address in; pick a range apart "
                        "from every route (`ip route show table all`)");
    }
  }
  // Where to start looking: apart for clusters in different directories.
  int first = std::stoi(id.substr(0, 2), nullptr, 16);
  ClusterNetwork n;
  n.cidr = toString(c);
  n.link = clusterLink(id, freeSubnet(runner, kLinkPrefix, first, {c}), hosts);
  return n;
}

void createNetwork(CommandRunner& runner, ClusterNetwork& n, const std::function<void()>& record) {
  createLink(runner, n.link);
  checkRouting(runner, n.link);
  n.via = n.link.nodes.front().address;
  record();  // before the route exists: a record that names it can remove it
  runChecked(runner, {"ip", "route", "add", n.cidr, "via", n.via, "dev", n.link.bridge});
  std::string probe = toString(parseCidr(n.cidr).firstHost());
  std::string how = runChecked(runner, {"ip", "-o", "route", "get", probe});
  if (how.find(" via " + n.via + " dev " + n.link.bridge + " ") == std::string::npos) {
    throw Error(ErrorCategory::kPermanent,
                "the containers' network " + n.cidr + " is not routed onto " + n.link.bridge +
                    " via " + n.via + " as it was just set up: `ip route get " + probe +
                    "` says " + how + "(a policy rule or a more specific route is in the way)");
  }
}

std::vector<std::string> removeNetwork(CommandRunner& runner, const ClusterNetwork& n) noexcept {
  std::vector<std::string> problems;
  if (!n.enabled()) return problems;
  try {
    if (!n.via.empty() && routePresent(runner, n)) {
      runChecked(runner, {"ip", "route", "del", n.cidr, "via", n.via, "dev", n.link.bridge});
    }
  } catch (const std::exception& e) {
    problems.push_back("removing the route to " + n.cidr + ": " + e.what());
  }
  for (auto& p : destroyLink(runner, n.link)) problems.push_back(std::move(p));
  return problems;
}

std::string networkMistake(const ClusterNetwork& n, const std::string& id) {
  if (!n.enabled()) return n.link.nodes.empty() ? "" : "a network without a range";
  if (n.link.subnet.rfind(std::string(kLinkPrefix) + ".", 0) != 0) {
    return "link " + n.link.subnet + " is not a cluster's";
  }
  try {
    NetnsLink expected = clusterLink(id, n.link.subnet, nodeNames(n.link));
    bool same = expected.bridge == n.link.bridge;
    for (size_t i = 0; i < expected.nodes.size(); ++i) {
      const NetnsNode &a = expected.nodes[i], &b = n.link.nodes[i];
      same = same && a.netns == b.netns && a.veth == b.veth && a.address == b.address;
    }
    if (!same) return "its network's names are not the cluster's";
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

std::vector<std::string> networkLeftovers(CommandRunner& runner, const ClusterNetwork& n) {
  if (!n.enabled()) return {};
  std::vector<std::string> out = linkLeftovers(runner, n.link);
  if (!n.via.empty() && routePresent(runner, n)) {
    out.push_back("route " + n.cidr + " via " + n.via + " dev " + n.link.bridge);
  }
  return out;
}

void ensureKeys(const fs::path& dir, const std::vector<std::string>& hosts) {
  std::vector<std::string> names = {"coordinator", "client"};
  names.insert(names.end(), hosts.begin(), hosts.end());
  for (const auto& name : names) {
    if (!pathExists(dir / (name + ".key"))) proto::writeKeyPair(dir, name, proto::generateKeyPair());
  }
}

std::string networkReadyLine(const std::string& cidr) {
  // agent/agent_network.cc: "container network {} ready here ({})".
  return "container network " + cidr + " ready here";
}

}  // namespace ferry::cluster
