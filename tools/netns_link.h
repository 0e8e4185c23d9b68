// Network namespaces on one machine joined by a bridge: the link of a local
// cluster whose hosts have networks of their own (`ferry cluster up
// --network`, tools/cluster_network.h) and of the tests' private networks
// (tests/integration/test_network.h).
//
// Each node is a namespace (`ip netns add`, so it outlives its processes)
// whose `eth0` is one end of a veth pair; the other end hangs off a bridge in
// the root namespace. Addresses come from one /24 that no route or address
// of this machine touches: the bridge has .1 (this machine on the link), the
// nodes .2, .3, ... A node has no default route, and checkRouting() proves
// that every node's address is reached from here through the bridge only:
// nothing sent on the link can leave the machine.
//
// Programs run on a node through nsenter into its network namespace only
// (launcher()), exec'ing in place (same pid), so they keep this machine's
// mount namespace, /run and cgroups. (`ip netns exec` would not do: it
// unshares the mount namespace, hiding the overlay mounts an agent makes.)
//
// Thread-safety: plain functions and values. Every call blocks on `ip` runs.
#pragma once

#include <string>
#include <vector>

#include "common/ipv4.h"
#include "engine/runtime/process.h"

namespace ferry::cluster {

struct NetnsNode {
  std::string name;     // what it is to its user: hostA, coordinator
  std::string netns;    // `ip netns` name (/run/netns/NETNS)
  std::string veth;     // the root namespace's end, on the bridge (<= 15 characters)
  std::string address;  // eth0's, on the link's /24
};

struct NetnsLink {
  std::string bridge;  // in the root namespace (<= 15 characters)
  std::string subnet;  // "10.212.7": the link's /24 without its last byte
  std::vector<NetnsNode> nodes;

  std::string bridgeAddress() const { return subnet + ".1"; }
  Cidr cidr() const;  // subnet.0/24
  // The node named `name`; throws Error kInvalidInput when there is none.
  const NetnsNode& node(const std::string& name) const;
};

// {"nsenter", "--net=/run/netns/NETNS", "--"}: prefix a command with it.
std::vector<std::string> launcher(const NetnsNode& n);

// Every range this machine routes (any table: local and broadcast entries
// too) or has an address in.
std::vector<Cidr> rangesInUse(CommandRunner& runner);

// The first "PREFIX.N" (N = first, first+1, ... mod 256) whose /24 overlaps
// no route (any table) or address of this machine, nor any of `avoid`.
// `prefix` is two bytes, "10.212". Throws Error kRetryable when all 256 are
// taken.
std::string freeSubnet(CommandRunner& runner, const std::string& prefix, int first,
                       const std::vector<Cidr>& avoid = {});

// A link of `node_names` on `subnet`: names made from `tag` (bridge TAG,
// veths TAG-0, TAG-1, ...; namespaces NETNS_PREFIX + node name), addresses
// .2, .3, ... in order. Pure. Throws Error kInvalidInput when an interface
// name would exceed 15 characters.
NetnsLink planLink(const std::string& tag, const std::string& netns_prefix,
                   const std::string& subnet, const std::vector<std::string>& node_names);

// Makes the bridge, then each node: its namespace, veth, loopback and
// address. Throws Error kPermanent, with the failing command's output, at
// the first step that fails; what was made stays (destroyLink removes it).
void createLink(CommandRunner& runner, const NetnsLink& link);

// Each node's address is routed from here onto the bridge (no gateway);
// from each node, every other node's address onto eth0 and its own onto lo;
// no node has a default route. Throws Error kPermanent saying which is not.
void checkRouting(CommandRunner& runner, const NetnsLink& link);

// Runs argv inside node `n`'s namespace; returns stdout. Throws Error
// kPermanent with the command's output when it fails.
std::string runIn(CommandRunner& runner, const NetnsNode& n, std::vector<std::string> argv);

// Removes the namespaces, veths and bridge of `link` that exist (deleting a
// namespace deletes its veth pair, and whatever the namespace held:
// addresses, routes, firewall rules). Idempotent. Returns one line for each
// thing that exists and could not be removed.
std::vector<std::string> destroyLink(CommandRunner& runner, const NetnsLink& link) noexcept;

// What of `link` exists now: "namespace NETNS", "link NAME", one each.
std::vector<std::string> linkLeftovers(CommandRunner& runner, const NetnsLink& link);

// Runs argv and returns its stdout; throws Error kPermanent naming the
// command, how it ended and its output when it fails.
std::string runChecked(CommandRunner& runner, const std::vector<std::string>& argv);

}  // namespace ferry::cluster
