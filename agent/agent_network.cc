#include "agent/agent_network.h"

#include "agent/agent_log.h"
#include "common/error.h"
#include "engine/runtime/process.h"

namespace ferry::agent {

namespace {

network::ContainerAddress addressOf(const NetworkSpec& n) {
  network::ContainerAddress a;
  a.ip = parseIpv4(n.ip, "container address");
  // Its MAC is its address's (the coordinator gives no other): anything
  // else came from a crafted record, and would reach `ip -batch`.
  if (n.mac != macFor(a.ip)) {
    throw Error(ErrorCategory::kInvalidInput, "container address " + n.ip + " has MAC '" +
                                                  n.mac.substr(0, 32) + "', not its own " +
                                                  macFor(a.ip));
  }
  a.mac = n.mac;
  for (const auto& p : n.ports) a.ports.push_back(parsePublish(p));
  return a;
}

}  // namespace

network::Shell localShell() {
  return [](const std::vector<std::string>& argv, const std::string& input) {
    LocalCommandRunner runner;
    RunOptions o;
    o.stdin_data = input;
    o.timeout = std::chrono::seconds(30);
    ProcessResult r = runner.run(argv, o);
    if (!r.ok()) {
      std::string cmd;
      for (const auto& a : argv) cmd += (cmd.empty() ? "" : " ") + a;
      throw Error(ErrorCategory::kPermanent,
                  "`" + cmd + "` failed (" + r.describe() + "): " + (r.err.empty() ? r.out : r.err));
    }
    return r.out;
  };
}

AgentNetwork::AgentNetwork(std::string address, std::string tag, network::Shell shell)
    : address_(std::move(address)), tag_(std::move(tag)), shell_(std::move(shell)) {}

void AgentNetwork::configure(const std::string& cidr, const std::map<Ipv4, Ipv4>& placement,
                             const std::map<std::string, NetworkSpec>& local) {
  std::lock_guard g(mu_);
  try {
    if (!net_ || cidr != cidr_) {
      network::HostNetworkConfig c{parseCidr(cidr, "the coordinator's cluster network"),
                                   parseIpv4(address_, "this host's address"), tag_};
      auto n = std::make_unique<network::HostNetwork>(c, shell_);
      n->setup();
      net_ = std::move(n);
      cidr_ = cidr;
      attached_.clear();
      for (const auto& [name, spec] : local) {
        if (spec.cidr == cidr) attached_[name] = addressOf(spec);
      }
      net_->publish(attached_);
      agentLog().info("container network {} ready here ({})", cidr, address_);
      error_.clear();
    }
    net_->setRemote(placement);
    error_.clear();  // ready, also after a word that failed
  } catch (const std::exception& e) {
    std::string why = e.what();
    if (why != error_) agentLog().warn("container network {}: {}", cidr, why);
    error_ = why;
  }
}

std::string AgentNetwork::state() const {
  std::lock_guard g(mu_);
  return error_;
}

std::string AgentNetwork::readyCidr() const {
  std::lock_guard g(mu_);
  return net_ && error_.empty() ? cidr_ : "";
}

network::HostNetwork& AgentNetwork::ready() {
  if (!net_) {
    throw Error(ErrorCategory::kRetryable,
                error_ == "none" ? "this host has no container network yet (its agent has not heard "
                                   "from a coordinator with --network-cidr)"
                                 : "this host's container network is not ready: " + error_);
  }
  return *net_;
}

void AgentNetwork::republish() {
  try {
    net_->publish(attached_);
  } catch (const std::exception& e) {
    agentLog().warn("publishing ports: {}", e.what());
  }
}

std::filesystem::path AgentNetwork::attach(const std::string& container, const NetworkSpec& spec,
                                           bool locked) {
  std::lock_guard g(mu_);
  network::HostNetwork& n = ready();
  if (spec.cidr != cidr_) {
    throw Error(ErrorCategory::kIncompatible,
                container + "'s address " + spec.ip + " is on the cluster network " + spec.cidr +
                    ", this host on " + cidr_);
  }
  network::ContainerAddress a = addressOf(spec);
  std::filesystem::path ns = n.attach(container, a, locked);
  attached_[container] = a;
  if (!a.ports.empty()) {
    try {
      n.publish(attached_);
    } catch (...) {
      attached_.erase(container);
      n.detach(container);
      throw;
    }
  }
  return ns;
}

void AgentNetwork::detach(const std::string& container) noexcept {
  std::lock_guard g(mu_);
  if (!net_) return;
  net_->detach(container);
  auto it = attached_.find(container);
  if (it == attached_.end()) return;
  bool had_ports = !it->second.ports.empty();
  attached_.erase(it);
  if (had_ports) republish();
}

void AgentNetwork::restoredOn(const std::string& container, const std::string& host_address) noexcept {
  try {
    Ipv4 host = parseIpv4(host_address, "the target's address");
    std::lock_guard g(mu_);
    moved_to_[container] = host;
  } catch (const std::exception&) {
    // not an IPv4 address: no container network between these hosts
  }
}

void AgentNetwork::forgetMove(const std::string& container) {
  std::lock_guard g(mu_);
  moved_to_.erase(container);
}

void AgentNetwork::routeToNewHost(const std::string& container) noexcept {
  std::lock_guard g(mu_);
  auto to = moved_to_.find(container);
  auto at = attached_.find(container);
  if (to != moved_to_.end() && at != attached_.end() && net_) {
    try {
      net_->routeRemote(at->second.ip, to->second);
      agentLog().info("[{}] {} routed to {}, where it runs now", container, toString(at->second.ip),
                      toString(to->second));
    } catch (const std::exception& e) {
      agentLog().warn("[{}] routing its address to {}: {} (the next placement will)", container,
                      toString(to->second), e.what());
    }
  }
  if (to != moved_to_.end()) moved_to_.erase(to);
}

void AgentNetwork::lock(const std::string& container) {
  std::lock_guard g(mu_);
  ready().lock(container);
}

void AgentNetwork::unlock(const std::string& container) noexcept {
  std::lock_guard g(mu_);
  if (net_) net_->unlock(container);
}

void AgentNetwork::unlockOrThrow(const std::string& container) {
  std::lock_guard g(mu_);
  ready().unlockOrThrow(container);
}

}  // namespace ferry::agent
