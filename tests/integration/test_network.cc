#include "tests/integration/test_network.h"

#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <set>
#include <sstream>
#include <stdexcept>

#include "common/error.h"
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
  try {
    create(nodes);
    cluster::checkRouting(runner_, link_);
  } catch (...) {
    destroy();
    throw;
  }
}

TestNetwork::~TestNetwork() { destroy(); }

std::string TestNetwork::runIn(const std::string& name, std::vector<std::string> argv) {
  return cluster::runIn(runner_, link_.node(name), std::move(argv));
}

const std::string& TestNetwork::address(const std::string& n) const { return link_.node(n).address; }
const std::string& TestNetwork::netns(const std::string& n) const { return link_.node(n).netns; }

std::vector<std::string> TestNetwork::launcher(const std::string& n) const {
  return cluster::launcher(link_.node(n));
}

void TestNetwork::create(const std::vector<std::string>& names) {
  FileLock lock(kLockFile);
  // Leftovers of test runs that died before their destructors ran.
  for (const auto& line : splitFields(cluster::runChecked(runner_, {"ip", "netns", "list"}), '\n')) {
    std::string ns = line.substr(0, line.find(' '));
    if (int pid = creatorPid(ns, kNetnsPrefix); pid && !processAlive(pid)) {
      runner_.run({"ip", "netns", "del", ns}, {});
    }
  }
  for (const auto& line : splitFields(cluster::runChecked(runner_, {"ip", "-o", "link", "show"}), '\n')) {
    // "7: fb123-0: <...>" or "8: fb123-0-1@if2: <...>" (fv: veths of older runs)
    std::istringstream f(line);
    std::string index, name;
    f >> index >> name;
    name = name.substr(0, name.find_first_of("@:"));
    int pid = creatorPid(name, "fb");
    if (!pid) pid = creatorPid(name, "fv");
    if (pid && !processAlive(pid)) runner_.run({"ip", "link", "del", name}, {});
  }
  // A /24 no route or address of this machine touches yet.
  std::string subnet = cluster::freeSubnet(runner_, "10.213", ::getpid() % 256);
  link_ = cluster::planLink("fb" + tag_, kNetnsPrefix + tag_ + "-", subnet, names);
  cluster::createLink(runner_, link_);
  for (const auto& n : link_.nodes) {
    // The partition rules' chain, on INPUT; empty until partition().
    runIn(n.name, {"iptables", "-w", "-N", kChain});
    runIn(n.name, {"iptables", "-w", "-A", "INPUT", "-i", "eth0", "-j", kChain});
  }
}

void TestNetwork::partition(const std::string& a, const std::string& b) {
  runIn(a, {"iptables", "-w", "-A", kChain, "-s", address(b), "-j", "DROP"});
  runIn(b, {"iptables", "-w", "-A", kChain, "-s", address(a), "-j", "DROP"});
}

uint64_t TestNetwork::droppedOn(const std::string& name) {
  // "    pkts bytes target ..." then one line per rule.
  uint64_t n = 0;
  std::istringstream lines(runIn(name, {"iptables", "-w", "-L", kChain, "-v", "-x", "-n"}));
  std::string line;
  while (std::getline(lines, line)) {
    std::istringstream f(line);
    std::string pkts, bytes, target;
    if (f >> pkts >> bytes >> target && target == "DROP") n += std::stoull(pkts);
  }
  return n;
}

void TestNetwork::limitRate(const std::string& name, const std::string& rate) {
  unlimitRate(name);
  // r2q: the class's quantum (rate / r2q) under htb's 200000-byte ceiling.
  auto htb = [&](std::vector<std::string> prefix, const std::string& dev) {
    auto tc = [&](std::vector<std::string> args) {
      std::vector<std::string> argv = prefix;
      argv.insert(argv.end(), args.begin(), args.end());
      ProcessResult r = runner_.run(argv, {});
      if (!r.ok()) throw Error(ErrorCategory::kPermanent, "tc: " + r.err);
    };
    tc({"tc", "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10", "r2q",
        "1000"});
    tc({"tc", "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb", "rate", rate,
        "ceil", rate});
  };
  const cluster::NetnsNode& n = link_.node(name);
  htb({}, n.veth);                                  // into the node
  htb(cluster::launcher(n), "eth0");                // out of it
}

void TestNetwork::unlimitRate(const std::string& name) {
  const cluster::NetnsNode& n = link_.node(name);
  runner_.run({"tc", "qdisc", "del", "dev", n.veth, "root"}, {});  // none there: fine
  std::vector<std::string> argv = cluster::launcher(n);
  for (const char* a : {"tc", "qdisc", "del", "dev", "eth0", "root"}) argv.push_back(a);
  runner_.run(argv, {});
}

void TestNetwork::heal() {
  for (const auto& n : link_.nodes) runIn(n.name, {"iptables", "-w", "-F", kChain});
}

void TestNetwork::destroy() noexcept {
  // The rules live in the namespaces; deleting a namespace deletes its end
  // of the veth, and with it the bridge's end.
  for (const auto& p : cluster::destroyLink(runner_, link_)) {
    std::fprintf(stderr, "test network cleanup: %s\n", p.c_str());
  }
}

}  // namespace ferry::testing
