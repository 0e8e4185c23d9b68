// A private network for tests: "nodes" (hosts, a coordinator) each in a
// network namespace of its own, joined by a bridge in the root namespace,
// with addresses from 10.213.N.0/24 -- routed only onto that bridge, never
// by the default route (checked with `ip route get` after setup). The test
// process itself, in the root namespace, reaches every node through the
// bridge's own address (.1). The namespaces and the bridge are the local
// cluster's (tools/netns_link.h), so are the checks.
//
// Programs are placed on a node by starting them through launcher(node):
// nsenter into the node's network namespace only, exec'ing in place (same
// pid), so they keep the machine's mount namespace, /run and cgroups -- a
// container an agent there runs is as visible to the test as any other.
//
// Partitions are iptables DROP rules inside the nodes' namespaces, in a
// chain of their own on INPUT from the peer on the node's link: packets
// vanish on arrival, as on a broken link -- no reset, no error for the
// sender (a DROP on OUTPUT would fail the sender's send() with EPERM at
// once). The machine's own firewall is never touched, and the rules go
// with the namespaces.
//
// Names are unique per process and network (ferry-net-PID-N-NODE, links
// fbPID-N and fbPID-N-I), so parallel test runs never collide; a network
// whose creating process is gone (a test run that was SIGKILLed) is swept
// away by the next TestNetwork. Destruction removes the namespaces, links
// and rules, also when the test failed.
//
// Thread-safety: none; one test thread. Blocks on `ip`/`iptables` runs.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "engine/runtime/process.h"
#include "tools/netns_link.h"

namespace ferry::testing {

class TestNetwork {
 public:
  // Creates one namespace per node ("hostA", "coordinator", ...), all
  // linked to a new bridge. Throws Error, with the failing command's
  // output, when the machine cannot (not root, no veth/bridge).
  explicit TestNetwork(const std::vector<std::string>& nodes);
  ~TestNetwork();
  TestNetwork(const TestNetwork&) = delete;
  TestNetwork& operator=(const TestNetwork&) = delete;

  // The node's address (10.213.N.x) and the bridge's, where the root
  // namespace is on this network.
  const std::string& address(const std::string& node) const;
  std::string rootAddress() const { return link_.bridgeAddress(); }
  // "10.213.N": the network's /24, unique among the test networks alive.
  const std::string& subnet() const { return link_.subnet; }
  // The bridge in the root namespace all nodes hang off.
  const std::string& bridge() const { return link_.bridge; }
  // {"nsenter", "--net=/run/netns/NS", "--"}: prefix a command with it.
  std::vector<std::string> launcher(const std::string& node) const;
  const std::string& netns(const std::string& node) const;

  // Drops every packet between nodes a and b, both ways, from now on.
  void partition(const std::string& a, const std::string& b);
  // Lifts every partition.
  void heal();
  // Packets the partition rules dropped on `node`'s side since the last
  // heal: proof that a partition was in the way of real traffic.
  uint64_t droppedOn(const std::string& node);

  // Limits `node`'s link to `rate` (tc's units: "1gbit") both ways: an htb
  // qdisc on each end of its veth (netem, for delay or loss, is not in
  // every kernel; htb is). Replaces an earlier limit.
  void limitRate(const std::string& node, const std::string& rate);
  // Lifts `node`'s limit.
  void unlimitRate(const std::string& node);

 private:
  // Runs a command in node `name`; throws with its output when it fails.
  std::string runIn(const std::string& name, std::vector<std::string> argv);
  void create(const std::vector<std::string>& nodes);
  void destroy() noexcept;

  LocalCommandRunner runner_;
  std::string tag_;  // PID-N
  cluster::NetnsLink link_;
};

}  // namespace ferry::testing
