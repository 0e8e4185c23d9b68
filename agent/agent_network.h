// The agent's side of the container network: the engine's
// ContainerNetworking over this host's HostNetwork (network/), which exists
// once the coordinator has said which cluster network this host is on (its
// reply to hello and heartbeats). Published ports follow the containers
// attached here.
//
// Thread-safety: every call may come from any thread (the engine's calls
// come from workers, the coordinator's placement from the main loop).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "engine/container_networking.h"
#include "network/host_network.h"

namespace ferry::agent {

class AgentNetwork final : public ContainerNetworking {
 public:
  // `address`: this host's (its data-plane address); `tag`: unique among
  // the hosts on one machine. `local`: the containers this host already has
  // with an address (an agent restarting), whose ports are published again.
  AgentNetwork(std::string address, std::string tag, network::Shell shell);

  // The coordinator's word: the range and where each address lives. The
  // first readies the host (HostNetwork::setup); an error is kept, logged
  // once, and said by attach, and tried again with the next word.
  void configure(const std::string& cidr, const std::map<Ipv4, Ipv4>& placement,
                 const std::map<std::string, NetworkSpec>& local);
  // "" when ready, or why not; "none" before the coordinator has said.
  std::string state() const;
  // The range this host's containers can join now ("" none).
  std::string readyCidr() const;

  std::filesystem::path attach(const std::string& container, const NetworkSpec& net,
                               bool locked) override;
  void detach(const std::string& container) noexcept override;
  void lock(const std::string& container) override;
  void unlock(const std::string& container) noexcept override;
  void unlockOrThrow(const std::string& container) override;

  // A migration restored `container` on the host at `host_address`; its
  // frozen copy here goes at the commit. Remembered until then (or a
  // rollback forgets it).
  // An address that is not IPv4 (a host name) is ignored: nothing to route.
  void restoredOn(const std::string& container, const std::string& host_address) noexcept;
  void forgetMove(const std::string& container);
  // At the commit, before the copy here goes: its address is routed to
  // where it runs now, at once -- not at the next heartbeat's placement,
  // while a peer's retransmissions would meet a blackhole.
  void routeToNewHost(const std::string& container) noexcept;

 private:
  network::HostNetwork& ready();
  void republish();

  std::string address_, tag_;
  network::Shell shell_;
  mutable std::mutex mu_;
  std::unique_ptr<network::HostNetwork> net_;
  std::string cidr_;
  std::string error_ = "none";
  std::map<std::string, network::ContainerAddress> attached_;
  std::map<std::string, Ipv4> moved_to_;  // restoredOn, until the commit
};

// A Shell over this process's own command runner, in its own network
// namespace.
network::Shell localShell();

}  // namespace ferry::agent
