// The network of a local cluster whose hosts have networks of their own
// (`ferry cluster up --network CIDR`, issue 15): each host a network
// namespace ferry-cl-ID-hostX (its own interfaces, routes and firewall),
// joined by a bridge fclID in the root namespace (tools/netns_link.h), with
// addresses from a free 10.212.N.0/24 -- the bridge .1, hostA .2, hostB .3.
// The coordinator stays in the root namespace and listens on the bridge's
// address; agents listen on their hosts' addresses, so the cluster runs with
// CurveZMQ keys. The containers' network CIDR (the coordinator's
// --network-cidr) is routed from this machine via hostA, whose agent reaches
// the other hosts' containers over its VXLAN device: this machine reaches
// every host and every container, and nothing of either leaves it.
//
// Internal to ferry_cluster. Thread-safety: plain functions; each blocks on
// `ip` runs.
#pragma once

#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/runtime/process.h"
#include "tools/netns_link.h"

namespace ferry::cluster {

struct ClusterNetwork {
  std::string cidr;  // the containers' network; "" when the cluster has none
  NetnsLink link;    // the hosts' link
  // The gateway of this machine's route to `cidr` (hostA's address) once
  // it was added; "" before.
  std::string via;

  bool enabled() const { return !cidr.empty(); }
};

void to_json(nlohmann::json& j, const ClusterNetwork& n);
void from_json(const nlohmann::json& j, ClusterNetwork& n);

// The names a cluster with id `id` gives its link: what planNetwork makes
// and what a record may name (`down` removes exactly those).
NetnsLink clusterLink(const std::string& id, const std::string& subnet,
                      const std::vector<std::string>& hosts);

// "" when `n` names nothing but what a cluster with id `id` makes (or no
// network at all); else what is wrong with it.
std::string networkMistake(const ClusterNetwork& n, const std::string& id);

// Checks `cidr` (Error kInvalidInput: malformed, or overlapping a route or
// address of this machine, naming it), then picks the hosts' /24 clear of
// both. Pure but for reading the routes.
ClusterNetwork planNetwork(CommandRunner& runner, const std::string& id, const std::string& cidr,
                           const std::vector<std::string>& hosts);

// Makes the link, checks its routing, then adds the route to the
// containers' network via hostA (recorded in `n.via` first) and checks with
// `ip route get` that a container address goes onto the bridge through
// hostA. Throws Error kPermanent at the first failure, saying what; what was
// made stays for removeNetwork.
void createNetwork(CommandRunner& runner, ClusterNetwork& n,
                   const std::function<void()>& record);

// Removes the route (when it is still the one recorded), then the hosts'
// namespaces, veths and the bridge. Idempotent; never throws. Returns one
// line per thing that could not be removed.
std::vector<std::string> removeNetwork(CommandRunner& runner, const ClusterNetwork& n) noexcept;

// What of the network still exists: namespaces, links, the route.
std::vector<std::string> networkLeftovers(CommandRunner& runner, const ClusterNetwork& n);

// Key pairs in `dir` for the coordinator, each host and "client", made
// where missing (an earlier `up` in the same directory made the rest).
void ensureKeys(const std::filesystem::path& dir, const std::vector<std::string>& hosts);

// The line an agent logs once its container network is set up.
std::string networkReadyLine(const std::string& cidr);

}  // namespace ferry::cluster
