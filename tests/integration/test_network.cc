#include "tests/integration/test_network.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/fs.h"
#include "common/strings.h"

namespace ferry::testing {

namespace {

constexpr const char* kNetnsPrefix = "ferry-net-";
constexpr const char* kChain = "FERRY-PARTITION";
// Allocation of a subnet and the sweep of leftovers exclude each other
// across processes.
constexpr const char* kLockFile = "/run/ferry-test-network.lock";

std::atomic<int> g_networks{0};

// The pid in a name made by an earlier TestNetwork: "PID-N..." after
// `prefix`, or 0.
int creatorPid(const std::string& name, const std::string& prefix) {
  if (name.rfind(prefix, 0) != 0) return 0;
  std::string rest = name.substr(prefix.size());
  size_t dash = rest.find('-');
  if (dash == 0 || dash == std::string::npos || rest.find_first_not_of("0123456789") != dash) {
    return 0;
  }
  return std::stoi(rest.substr(0, dash));
}

}  // namespace

TestNetwork::TestNetwork(const std::vector<std::string>& nodes) {
  tag_ = std::to_string(::getpid()) + "-" + std::to_string(g_networks++);
  bridge_ = "fb" + tag_;
  try {
    create(nodes);
    checkRouting();
  } catch (...) {
    destroy();
    throw;
  }
}

TestNetwork::~TestNetwork() { destroy(); }

std::string TestNetwork::run(const std::vector<std::string>& argv) {
  ProcessResult r = runner_.run(argv, {});
  if (!r.ok()) {
    std::string cmd;
    for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
    throw std::runtime_error("test network: `" + cmd + "` failed (" + r.describe() + "): " + r.err +
                             r.out);
  }
  return r.out;
}

std::vector<std::string> TestNetwork::inNode(const std::string& name,
                                             std::vector<std::string> argv) const {
  std::vector<std::string> full = launcher(name);
  full.insert(full.end(), argv.begin(), argv.end());
  return full;
}

const TestNetwork::Node& TestNetwork::node(const std::string& name) const {
  auto it = nodes_.find(name);
  if (it == nodes_.end()) throw std::runtime_error("test network: no node " + name);
  return it->second;
}

const std::string& TestNetwork::address(const std::string& n) const { return node(n).address; }
const std::string& TestNetwork::netns(const std::string& n) const { return node(n).netns; }

std::vector<std::string> TestNetwork::launcher(const std::string& n) const {
  return {"nsenter", "--net=/run/netns/" + node(n).netns, "--"};
}

void TestNetwork::create(const std::vector<std::string>& names) {
  if (names.empty() || names.size() > 200) throw std::runtime_error("test network: 1..200 nodes");
  FileLock lock(kLockFile);
  // Leftovers of test runs that died before their destructors ran.
  for (const auto& line : splitFields(run({"ip", "netns", "list"}), '\n')) {
    std::string ns = line.substr(0, line.find(' '));
    if (int pid = creatorPid(ns, kNetnsPrefix); pid && !processAlive(pid)) {
      runner_.run({"ip", "netns", "del", ns}, {});
    }
  }
  for (const auto& line : splitFields(run({"ip", "-o", "link", "show"}), '\n')) {
    // "7: fb123-0: <...>" or "8: fv123-0-1@if2: <...>"
    std::istringstream f(line);
    std::string index, name;
    f >> index >> name;
    name = name.substr(0, name.find_first_of("@:"));
    int pid = creatorPid(name, "fb");
    if (!pid) pid = creatorPid(name, "fv");
    if (pid && !processAlive(pid)) runner_.run({"ip", "link", "del", name}, {});
  }
  // A /24 no route of this machine touches yet.
  std::string routes = run({"ip", "-o", "-4", "route", "show", "table", "all"}) +
                       run({"ip", "-o", "-4", "addr", "show"});
  for (int i = 0; i < 256 && subnet_.empty(); ++i) {
    std::string candidate = "10.213." + std::to_string((::getpid() + i) % 256);
    if (routes.find(candidate + ".") == std::string::npos) subnet_ = candidate;
  }
  if (subnet_.empty()) throw std::runtime_error("test network: every 10.213.N.0/24 is in use");
  root_address_ = subnet_ + ".1";

  run({"ip", "link", "add", bridge_, "type", "bridge"});
  run({"ip", "addr", "add", root_address_ + "/24", "dev", bridge_});
  run({"ip", "link", "set", bridge_, "up"});
  int i = 0;
  for (const auto& name : names) {
    Node n{kNetnsPrefix + tag_ + "-" + name, "fv" + tag_ + "-" + std::to_string(i),
           subnet_ + "." + std::to_string(i + 2)};
    ++i;
    nodes_[name] = n;
    run({"ip", "netns", "add", n.netns});
    run({"ip", "link", "add", n.veth, "type", "veth", "peer", "name", "eth0", "netns", n.netns});
    run({"ip", "link", "set", n.veth, "master", bridge_});
    run({"ip", "link", "set", n.veth, "up"});
    run(inNode(name, {"ip", "link", "set", "lo", "up"}));
    run(inNode(name, {"ip", "addr", "add", n.address + "/24", "dev", "eth0"}));
    run(inNode(name, {"ip", "link", "set", "eth0", "up"}));
    // The partition rules' chain, on INPUT; empty until partition().
    run(inNode(name, {"iptables", "-w", "-N", kChain}));
    run(inNode(name, {"iptables", "-w", "-A", "INPUT", "-i", "eth0", "-j", kChain}));
  }
}

// Every address of this network is reached through the bridge from the root
// namespace, and through eth0 only from a node, which has no default route:
// nothing a test sends can leave the machine.
void TestNetwork::checkRouting() {
  for (const auto& [name, n] : nodes_) {
    std::string via_root = run({"ip", "-o", "route", "get", n.address});
    if (via_root.find(" dev " + bridge_ + " ") == std::string::npos ||
        via_root.find(" via ") != std::string::npos) {
      throw std::runtime_error("test network: " + n.address + " is not routed onto " + bridge_ +
                               ": " + via_root);
    }
    if (run(inNode(name, {"ip", "-4", "route", "show", "default"})).find_first_not_of(" \n") !=
        std::string::npos) {
      throw std::runtime_error("test network: namespace " + n.netns + " has a default route");
    }
    for (const auto& [other_name, other] : nodes_) {
      std::string r = run(inNode(name, {"ip", "-o", "route", "get", other.address}));
      bool local = other_name == name;
      if (r.find(local ? " dev lo " : " dev eth0 ") == std::string::npos ||
          r.find(" via ") != std::string::npos) {
        throw std::runtime_error("test network: from " + name + ", " + other.address +
                                 " is routed " + r);
      }
    }
  }
}

void TestNetwork::partition(const std::string& a, const std::string& b) {
  run(inNode(a, {"iptables", "-w", "-A", kChain, "-s", address(b), "-j", "DROP"}));
  run(inNode(b, {"iptables", "-w", "-A", kChain, "-s", address(a), "-j", "DROP"}));
}

uint64_t TestNetwork::droppedOn(const std::string& name) {
  // "    pkts bytes target ..." then one line per rule.
  uint64_t n = 0;
  std::istringstream lines(run(inNode(name, {"iptables", "-w", "-L", kChain, "-v", "-x", "-n"})));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string pkts, bytes, target;
    if (f >> pkts >> bytes >> target && target == "DROP") n += std::stoull(pkts);
  }
  return n;
}

void TestNetwork::heal() {
  for (const auto& [name, n] : nodes_) run(inNode(name, {"iptables", "-w", "-F", kChain}));
}

void TestNetwork::destroy() noexcept {
  // The rules live in the namespaces; deleting a namespace deletes its end
  // of the veth, and with it the bridge's end.
  for (const auto& [name, n] : nodes_) {
    try {
      ProcessResult r = runner_.run({"ip", "netns", "del", n.netns}, {});
      if (!r.ok()) std::fprintf(stderr, "test network cleanup: %s\n", r.err.c_str());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "test network cleanup: %s\n", e.what());
    }
  }
  try {
    runner_.run({"ip", "link", "del", bridge_}, {});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "test network cleanup: %s\n", e.what());
  }
}

}  // namespace ferry::testing
