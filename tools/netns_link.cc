#include "tools/netns_link.h"

#include <net/if.h>

#include <nlohmann/json.hpp>
#include <set>

#include "common/error.h"
#include "common/strings.h"

namespace ferry::cluster {

using nlohmann::json;

Cidr NetnsLink::cidr() const { return parseCidr(subnet + ".0/24", "link"); }

const NetnsNode& NetnsLink::node(const std::string& name) const {
  for (const auto& n : nodes) {
    if (n.name == name) return n;
  }
  throwInvalidInput("no node " + name + " on link " + bridge);
}

std::vector<std::string> launcher(const NetnsNode& n) {
  return {"nsenter", "--net=/run/netns/" + n.netns, "--"};
}

std::string runChecked(CommandRunner& runner, const std::vector<std::string>& argv) {
  ProcessResult r = runner.run(argv, {});
  if (!r.ok()) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    std::string out = r.err.empty() ? r.out : r.err;
    while (!out.empty() && out.back() == '\n') out.pop_back();
    throw Error(ErrorCategory::kPermanent,
                "`" + cmd + "` failed (" + r.describe() + "): " + out);
  }
  return r.out;
}

std::string runIn(CommandRunner& runner, const NetnsNode& n, std::vector<std::string> argv) {
  std::vector<std::string> full = launcher(n);
  full.insert(full.end(), argv.begin(), argv.end());
  return runChecked(runner, full);
}

std::vector<Cidr> rangesInUse(CommandRunner& runner) {
  std::vector<Cidr> out;
  for (const auto& r : json::parse(runChecked(runner, {"ip", "-j", "-4", "route", "show", "table", "all"}))) {
    std::string dst = r.value("dst", "");
    if (dst.empty() || dst == "default") continue;
    out.push_back(dst.find('/') == std::string::npos ? Cidr{parseIpv4(dst, "route"), 32}
                                                     : parseCidr(dst, "route"));
  }
  for (const auto& link : json::parse(runChecked(runner, {"ip", "-j", "-4", "addr", "show"}))) {
    for (const auto& a : link.value("addr_info", json::array())) {
      Ipv4 ip = parseIpv4(a.at("local").get<std::string>(), "address");
      int prefix = a.value("prefixlen", 32);
      Cidr c{ip, prefix};
      c.network.value &= c.mask();
      out.push_back(c);
    }
  }
  return out;
}

namespace {

void checkInterfaceName(const std::string& name) {
  if (name.empty() || name.size() >= IFNAMSIZ) {
    throwInvalidInput("interface name '" + name + "' is longer than " +
                      std::to_string(IFNAMSIZ - 1) + " characters");
  }
}

bool linkExists(CommandRunner& runner, const std::string& name) {
  return runner.run({"ip", "link", "show", "dev", name}, {}).ok();
}

std::set<std::string> namespaces(CommandRunner& runner) {
  std::set<std::string> out;
  // "NAME" or "NAME (id: 3)", one a line.
  for (const auto& line : splitFields(runChecked(runner, {"ip", "netns", "list"}), '\n')) {
    if (!line.empty()) out.insert(line.substr(0, line.find(' ')));
  }
  return out;
}

}  // namespace

std::string freeSubnet(CommandRunner& runner, const std::string& prefix, int first,
                       const std::vector<Cidr>& avoid) {
  std::vector<Cidr> used = rangesInUse(runner);
  used.insert(used.end(), avoid.begin(), avoid.end());
  for (int i = 0; i < 256; ++i) {
    std::string candidate = prefix + "." + std::to_string((first + i) % 256);
    Cidr c = parseCidr(candidate + ".0/24", "link");
    bool taken = false;
    for (const auto& u : used) taken = taken || overlaps(u, c);
    if (!taken) return candidate;
  }
  throw Error(ErrorCategory::kRetryable,
              "every " + prefix + ".N.0/24 overlaps a route or address of this machine");
}

NetnsLink planLink(const std::string& tag, const std::string& netns_prefix,
                   const std::string& subnet, const std::vector<std::string>& node_names) {
  if (node_names.empty() || node_names.size() > 200) throwInvalidInput("a link has 1..200 nodes");
  NetnsLink link{tag, subnet, {}};
  checkInterfaceName(link.bridge);
  for (size_t i = 0; i < node_names.size(); ++i) {
    NetnsNode n{node_names[i], netns_prefix + node_names[i], tag + "-" + std::to_string(i),
                subnet + "." + std::to_string(i + 2)};
    checkInterfaceName(n.veth);
    link.nodes.push_back(std::move(n));
  }
  return link;
}

void createLink(CommandRunner& runner, const NetnsLink& link) {
  auto run = [&](const std::vector<std::string>& argv) { runChecked(runner, argv); };
  run({"ip", "link", "add", link.bridge, "type", "bridge"});
  run({"ip", "addr", "add", link.bridgeAddress() + "/24", "dev", link.bridge});
  run({"ip", "link", "set", link.bridge, "up"});
  for (const auto& n : link.nodes) {
    run({"ip", "netns", "add", n.netns});
    run({"ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns});
    run({"ip", "link", "set", n.veth, "master", link.bridge});
    run({"ip", "link", "set", n.veth, "up"});
    runIn(runner, n, {"ip", "link", "set", "lo", "up"});
    runIn(runner, n, {"ip", "addr", "add", n.address + "/24", "dev", "eth0"});
    runIn(runner, n, {"ip", "link", "set", "eth0", "up"});
  }
}

void checkRouting(CommandRunner& runner, const NetnsLink& link) {
  auto fail = [](const std::string& msg) { throw Error(ErrorCategory::kPermanent, msg); };
  for (const auto& n : link.nodes) {
    std::string via_root = runChecked(runner, {"ip", "-o", "route", "get", n.address});
    if (via_root.find(" dev " + link.bridge + " ") == std::string::npos ||
        via_root.find(" via ") != std::string::npos) {
      fail(n.address + " is not routed onto " + link.bridge + " from here: " + via_root);
    }
    if (runIn(runner, n, {"ip", "-4", "route", "show", "default"}).find_first_not_of(" \n") !=
        std::string::npos) {
      fail("namespace " + n.netns + " has a default route");
    }
    for (const auto& other : link.nodes) {
      std::string r = runIn(runner, n, {"ip", "-o", "route", "get", other.address});
      bool self = other.name == n.name;
      if (r.find(self ? " dev lo " : " dev eth0 ") == std::string::npos ||
          r.find(" via ") != std::string::npos) {
        fail("from " + n.name + ", " + other.address + " is routed " + r);
      }
    }
  }
}

std::vector<std::string> destroyLink(CommandRunner& runner, const NetnsLink& link) noexcept {
  std::vector<std::string> problems;
  // A failure counts only when the thing is still there: a namespace's
  // veth goes with it a moment after `ip netns del` returns, so deleting it
  // too may find it gone ("Cannot find device").
  auto removeLink = [&](const std::string& name) {
    try {
      if (linkExists(runner, name)) runChecked(runner, {"ip", "link", "del", name});
    } catch (const std::exception& e) {
      if (linkExists(runner, name)) problems.push_back("removing link " + name + ": " + e.what());
    }
  };
  try {
    std::set<std::string> present = namespaces(runner);
    for (const auto& n : link.nodes) {
      try {
        if (present.count(n.netns)) runChecked(runner, {"ip", "netns", "del", n.netns});
      } catch (const std::exception& e) {
        problems.push_back("removing namespace " + n.netns + ": " + e.what());
      }
      removeLink(n.veth);
    }
    removeLink(link.bridge);
  } catch (const std::exception& e) {
    problems.push_back("removing link " + link.bridge + ": " + e.what());
  }
  return problems;
}

std::vector<std::string> linkLeftovers(CommandRunner& runner, const NetnsLink& link) {
  std::vector<std::string> out;
  std::set<std::string> present = namespaces(runner);
  for (const auto& n : link.nodes) {
    if (present.count(n.netns)) out.push_back("namespace " + n.netns);
    if (linkExists(runner, n.veth)) out.push_back("link " + n.veth);
  }
  if (linkExists(runner, link.bridge)) out.push_back("link " + link.bridge);
  return out;
}

}  // namespace ferry::cluster
