// The container network on one host (DESIGN.md, "Container network").
//
// Routed, not bridged: every container has a /32 address of the cluster
// network on `eth0`, one end of a veth pair whose other end (fcXXXXXXXXXX,
// MAC ee:ee:ee:ee:ee:ee on every host) stays on the host with a /32 route to
// the container. The container's default route goes to 169.254.1.1, a
// permanent neighbour at that MAC: whichever host it runs on answers, so a
// container moved to another host needs no new ARP entry (as Calico does).
//
// Between hosts, a VXLAN device (ferry-vx, VNI 6642, UDP 4789, no learning):
// a remote container's /32 route goes "via <its host's address> dev ferry-vx
// onlink", with that host's VTEP MAC (02:67 + its address) as a permanent
// neighbour and forwarding entry. Only IP reachability between the hosts'
// addresses is needed (one L2 or L3 network alike), no daemon, and a move
// changes one /32 route per host. A blackhole route for the whole cluster
// network keeps an address no host has from ever leaving by the default
// route.
//
// Published ports are one nftables table (`ip ferry`), rewritten whole and
// atomically from what runs here: DNAT of HOSTADDR:PORT to the container.
//
// Commands go through iproute2 (`ip -batch`) and nftables (`nft -f`), the
// tools operators debug the same state with, run by the Shell the caller
// gives (the agent runs them in its own network namespace: a host's).
//
// Thread-safety: calls serialise on an internal mutex.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <mutex>
#include <string>
#include <vector>

#include "common/ipv4.h"

namespace ferry::network {

// Runs argv with `input` on stdin and returns its stdout; throws Error
// carrying the program's stderr when it fails.
using Shell = std::function<std::string(const std::vector<std::string>& argv, const std::string& input)>;

// What a container is on the network: recorded in its state, carried by a
// migration.
struct ContainerAddress {
  Ipv4 ip;
  std::string mac;
  std::vector<PublishedPort> ports;
};

struct HostNetworkConfig {
  Cidr cidr;                // the cluster network
  Ipv4 address;             // this host's address: VXLAN endpoint, published ports
  std::string tag;          // a few characters unique among the hosts on one machine
  // Where `ip netns` keeps named namespaces (iproute2's fixed place).
  std::filesystem::path netns_dir = "/run/netns";
};

inline constexpr const char* kVxlanDevice = "ferry-vx";
inline constexpr uint32_t kVxlanId = 6642;
inline constexpr uint16_t kVxlanPort = 4789;
inline constexpr const char* kGateway = "169.254.1.1";
inline constexpr const char* kGatewayMac = "ee:ee:ee:ee:ee:ee";

// The host-side interface of a container's veth pair on the host tagged
// `tag` (fc + 10 hex digits: 12 characters, under IFNAMSIZ).
std::string hostInterface(const std::string& tag, const std::string& container);
// A host's VTEP MAC: 02:67 then its address.
std::string vtepMac(Ipv4 host);

class HostNetwork {
 public:
  HostNetwork(HostNetworkConfig cfg, Shell shell);

  const HostNetworkConfig& config() const { return cfg_; }

  // Readies the host: forwarding on, the VXLAN device, the blackhole route.
  // Refuses (kIncompatible, naming the route) a cluster network that
  // overlaps a route the host already has that is not ferry's own.
  // Idempotent: an agent restarting finds its own device and routes.
  void setup();

  // The container's network namespace (created here, bind-mounted at
  // netnsPath) with eth0 at `a`'s address and MAC, its default route, and
  // the host's /32 route to it. Replaces what an earlier attach of the same
  // name left. Returns the namespace's path, for the OCI spec. `locked`:
  // the namespace is locked (as lock()) before it has an address or a
  // route -- for a restore, whose peers' packets must meet no namespace
  // without its sockets (the kernel would answer them with a reset).
  std::filesystem::path attach(const std::string& container, const ContainerAddress& a,
                               bool locked = false);
  // Removes the namespace, the veth and the route; no-op when absent.
  void detach(const std::string& container) noexcept;
  std::filesystem::path netnsPath(const std::string& container) const;

  // Drops every packet in and out of the container's namespace but
  // loopback's (nftables table inet ferry-lock in it), until unlock.
  void lock(const std::string& container);
  void unlock(const std::string& container) noexcept;
  void unlockOrThrow(const std::string& container);  // throws when the lock stays

  // The containers that run elsewhere: ip -> their host's address. Routes
  // to every one through the VXLAN device; routes to addresses no longer
  // listed (and not local) go. Local containers' routes are attach's.
  void setRemote(const std::map<Ipv4, Ipv4>& placement);
  // One container's address now lives at `host` (a migration's commit on
  // its source).
  void routeRemote(Ipv4 ip, Ipv4 host);

  // The published ports of the containers running here, container ->
  // (address, ports): the nftables table becomes exactly this.
  void publish(const std::map<std::string, ContainerAddress>& running);

 private:
  std::string ip(const std::vector<std::string>& args, const std::string& input = "");
  void batch(const std::vector<std::string>& lines);
  std::string netnsName(const std::string& container) const;
  void addRemoteHost(Ipv4 host);
  void lockNamespace(const std::string& ns);  // lock(), by the namespace's name; mu_ held

  HostNetworkConfig cfg_;
  Shell shell_;
  std::mutex mu_;
  std::map<Ipv4, Ipv4> remote_;       // container ip -> host
  std::optional<std::map<Ipv4, Ipv4>> last_placement_;  // setRemote's last
  std::map<Ipv4, bool> remote_hosts_;  // hosts whose VTEP entries exist
};

}  // namespace ferry::network
