#include "agent/agent.h"

#include <algorithm>

#include "agent/agent_log.h"
#include "agent/host_metrics.h"
#include "agent/transfer.h"
#include "common/log.h"
#include "common/random.h"
#include "protocol/framing.h"
#include "protocol/rpc.h"
#include "protocol/convert/host_info_proto.h"
#include "protocol/capnp_text.h"

namespace ferry::agent {

namespace {

using proto::text;

std::string unguessable() {
  char buf[33];
  std::snprintf(buf, sizeof buf, "%016llx%016llx", static_cast<unsigned long long>(randomU64()),
                static_cast<unsigned long long>(randomU64()));
  return buf;
}

}  // namespace

Agent::Agent(AgentOptions opts, AgentEngine& engine, zmq::context_t& ctx, PressureSource pressure)
    : opts_(std::move(opts)),
      engine_(engine),
      pressure_(pressure ? std::move(pressure) : hostPressureSource(engine.config().root)),
      drain_policy_(opts_.drain_on_memory_pressure, opts_.drain_on_disk_free),
      sock_(ctx, zmq::socket_type::dealer),
      busy_(opts_.name),
      commands_(opts_, engine, ctx, busy_,
                [this](uint64_t id, proto::Fill fill) { post(id, std::move(fill)); }) {
  commands_.setMetrics(&metrics_);
  proto::applyControlSocketOptions(sock_);
  if (opts_.keys) proto::makeCurveClient(sock_, *opts_.keys, opts_.coordinator_key);
  // The name for the coordinator's logs, then a part no one else can guess:
  // the coordinator sends this host's commands to the connection that
  // proved to be this host, by its routing id, and a peer that could take
  // the id over once this one is gone would receive them.
  sock_.set(zmq::sockopt::routing_id, opts_.name + "/" + unguessable());
  sock_.connect(coordinatorConnectEndpoint(opts_));
}

std::string coordinatorConnectEndpoint(const AgentOptions& o) {
  // Without keys a TCP coordinator knows its agents by their address
  // (`--agent-address NAME=ADDRESS`): connect from this host's own.
  if (o.keys || o.coordinator.rfind("tcp://", 0) != 0 || o.data_address.empty()) {
    return o.coordinator;
  }
  return "tcp://" + o.data_address + ":0;" + o.coordinator.substr(6);
}

Agent::~Agent() = default;  // the pool, the last member, joins its workers first

void Agent::hello() {
  const HostInfo& info = engine_.hostInfo();
  hello_id_ = next_id_++;
  sock_.send(proto::buildMessage(hello_id_,
                                 [&](proto::Message::Builder m) {
                                   auto h = m.initHello();
                                   h.setName(opts_.name);
                                   h.setDataEndpoint("tcp://" + opts_.advertisedAddress());
                                   proto::fillHostInfo(h.initInfo(), info);
                                   if (opts_.keys) h.setPublicKey(opts_.keys->public_key);
                                 }),
             zmq::send_flags::dontwait);
}

void Agent::setGauges(const HostLoad& load, const std::vector<ContainerInfo>& all) {
  metrics_.load(load.cpu_percent, load.memory_used, load.memory_total);
  metrics_.containersRunning(static_cast<size_t>(std::count_if(
      all.begin(), all.end(), [](const auto& c) { return c.status == ContainerStatus::kRunning; })));
}

void Agent::heartbeat() {
  std::vector<ContainerInfo> all = engine_.list();
  std::vector<ImageRecord> images = engine_.listImages();
  std::vector<SecretInfo> secrets = engine_.listSecrets();
  HostLoad load = readHostLoad(engine_.hostInfo().cpus);
  setGauges(load, all);
  std::string net_cidr = network_ ? network_->readyCidr() : "";
  std::string net_error;
  if (!network_) {
    net_error = "this agent has no container network support";
  } else if (net_cidr.empty()) {
    net_error = network_->state() == "none"
                    ? "it has been given no cluster network (the coordinator has no --network-cidr)"
                    : network_->state();
  }
  sock_.send(proto::buildMessage(next_id_++,
                                 [&](proto::Message::Builder m) {
                                   auto hb = m.initHeartbeat();
                                   hb.setName(opts_.name);
                                   hb.setNetwork(net_cidr);
                                   hb.setNetworkError(net_error);
                                   fillLoad(hb.initLoad(), load, opts_.memory_capacity);
                                   auto list = hb.initContainers(static_cast<unsigned>(all.size()));
                                   for (size_t i = 0; i < all.size(); ++i) {
                                     auto c = list[static_cast<unsigned>(i)];
                                     fillContainer(c, all[i], opts_.name);
                                     if (all[i].status == ContainerStatus::kRunning ||
                                         all[i].status == ContainerStatus::kPaused) {
                                       c.setMemoryBytes(engine_.memoryBytes(all[i].name()));
                                       c.setCpuUsec(engine_.cpuUsec(all[i].name()));
                                     }
                                   }
                                   size_t n = 0;
                                   for (const auto& im : images) n += im.names.size();
                                   auto refs = hb.initImages(static_cast<unsigned>(n));
                                   unsigned k = 0;
                                   for (const auto& im : images) {
                                     for (const auto& name : im.names) {
                                       refs[k].setName(name);
                                       refs[k++].setId(im.id);
                                     }
                                   }
                                   auto names = hb.initSecrets(static_cast<unsigned>(secrets.size()));
                                   for (size_t i = 0; i < secrets.size(); ++i) {
                                     names.set(static_cast<unsigned>(i), secrets[i].name);
                                   }
                                 }),
             zmq::send_flags::dontwait);
}

void Agent::onNetwork(proto::ClusterNetwork::Reader n) {
  if (!network_) return;
  std::map<Ipv4, Ipv4> placement;
  for (auto p : n.getPlacement()) {
    try {
      placement[parseIpv4(text(p.getIp()))] = parseIpv4(text(p.getHost()));
    } catch (const Error& e) {
      agentLog().warn("{}: the coordinator placed an address this agent cannot read: {}", opts_.name,
                      e.what());
    }
  }
  std::map<std::string, NetworkSpec> local;  // needed only to set up
  if (!network_->state().empty()) {
    for (const auto& c : engine_.list()) {
      if (!c.record.spec.network.empty()) local[c.name()] = c.record.spec.network;
    }
  }
  network_->configure(text(n.getCidr()), placement, local);
}

void Agent::reply(uint64_t id, const proto::Fill& fill) {
  sock_.send(proto::buildMessage(id, fill), zmq::send_flags::dontwait);
}

void Agent::replyError(uint64_t id, const Error& e) { reply(id, errorReply(e, opts_.name)); }

void Agent::post(uint64_t id, proto::Fill fill) {
  std::lock_guard<std::mutex> g(mu_);
  done_.emplace_back(id, std::move(fill));
}

void Agent::spawnQuiet(std::function<void()> work) {
  if (!pool_.trySubmit(std::move(work))) {
    throw Error(ErrorCategory::kRetryable,
                std::to_string(opts_.max_workers) + " commands are already running on " +
                    opts_.name + "; try again when one has ended");
  }
}

void Agent::spawn(uint64_t id, std::function<proto::Fill()> work) {
  spawnQuiet([this, id, work = std::move(work)] { post(id, replyOf(work, opts_.name)); });
}

void Agent::drainWorkerReplies() {
  std::deque<std::pair<uint64_t, proto::Fill>> ready;
  {
    std::lock_guard<std::mutex> g(mu_);
    ready.swap(done_);
  }
  for (auto& [id, fill] : ready) reply(id, fill);
}

void Agent::serve(std::unique_ptr<proto::Decoded> frame) {
  auto m = frame->root<proto::Message>();
  uint64_t id = proto::guard([&] { return m.getId(); });
  try {
    proto::guard([&] {
      switch (m.which()) {
        case proto::Message::OK:
          // The coordinator's answer to a hello or heartbeat.
          if (id == hello_id_) agentLog().info("{}: registered with the coordinator", opts_.name);
          return;
        case proto::Message::NETWORK:
          // The same answer from a coordinator with a cluster network.
          if (id == hello_id_) agentLog().info("{}: registered with the coordinator", opts_.name);
          onNetwork(m.getNetwork());
          return;
        case proto::Message::PROGRESS:
          if (drain_requests_.count(id)) {
            agentLog().info("{}: drain: {}", opts_.name, text(m.getProgress().getMessage()));
          }
          return;
        case proto::Message::PLACEMENT: {
          if (!drain_requests_.count(id)) return;
          drain_requests_.erase(id);
          size_t moved = 0, total = 0;
          for (auto mv : m.getPlacement().getMoves()) {
            ++total;
            moved += text(mv.getOutcome()) == "moved";
          }
          agentLog().info("{}: drained: {} of {} container(s) moved, {} unplaced", opts_.name,
                           moved, total, m.getPlacement().getUnplaced().size());
          if (id == drain_request_) drain_answered_ = true;
          return;
        }
        case proto::Message::ERROR:
          agentLog().warn("{}: the coordinator refused a message: {}", opts_.name,
                           proto::errorFrom(m.getError()).what());
          if (id == drain_request_ && drain_request_ != 0) drain_answered_ = true;
          return;
        default: {
          Handled h = commands_.handle(id, m);
          // The background first: refused (the pool is full), the error
          // goes out instead of the ticket for a stream nobody would read.
          if (h.background) spawnQuiet(std::move(h.background));
          if (h.reply) reply(id, *h.reply);
          if (h.work) spawn(id, std::move(h.work));
          return;
        }
      }
    });
  } catch (const Error& e) {
    replyError(id, e);
  } catch (const std::exception& e) {
    replyError(id, Error(ErrorCategory::kPermanent, e.what()));
  }
}

// The target side of a migration: bind a stream for this one token, answer
// with where to send it, then restore what arrives (on a worker).
bool Agent::drainingBeforeStop() {
  if (opts_.drain_on_stop.count() == 0 || drain_answered_) return false;
  if (drain_request_ == 0) {
    drain_request_ = next_id_++;
    drain_deadline_ = std::chrono::steady_clock::now() + opts_.drain_on_stop;
    agentLog().info("{}: stopping: asking the coordinator to drain this host (waiting up to {} s)",
                     opts_.name, opts_.drain_on_stop.count());
    requestDrain(drain_request_, "stopping");
  }
  if (std::chrono::steady_clock::now() >= drain_deadline_) {
    agentLog().warn("{}: the drain did not end within {} s; stopping anyway (what is left keeps "
                     "running here)",
                     opts_.name, opts_.drain_on_stop.count());
    return false;
  }
  return true;
}

void Agent::requestDrain(uint64_t id, const std::string& why) {
  drain_requests_.insert(id);
  agentLog().warn("{}: asking the coordinator to drain this host: {}", opts_.name, why);
  sock_.send(proto::buildMessage(id, [&](proto::Message::Builder m) { m.setDrainHost(opts_.name); }),
             zmq::send_flags::dontwait);
}

void Agent::checkDrainConditions() {
  if (!drain_policy_.enabled()) return;
  if (auto why = drain_policy_.observe(pressure_())) requestDrain(next_id_++, *why);
}

void Agent::run(const std::atomic<bool>& stop, const std::function<void()>& each_turn) {
  hello();
  auto next_beat = std::chrono::steady_clock::now();
  while (!stop || drainingBeforeStop()) {
    if (each_turn) each_turn();
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    try {
      zmq::poll(&item, 1, std::chrono::milliseconds(50));
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
      continue;  // a signal (SIGTERM sets stop): look at the flag again
    }
    zmq::message_t frame;
    while (sock_.recv(frame, zmq::recv_flags::dontwait)) {
      try {
        serve(std::make_unique<proto::Decoded>(frame));
      } catch (const Error& e) {
        agentLog().warn("{}: dropped a malformed message from the coordinator: {}", opts_.name,
                         e.what());
      }
    }
    drainWorkerReplies();
    if (std::chrono::steady_clock::now() >= next_beat) {
      try {
        heartbeat();
        checkDrainConditions();
      } catch (const std::exception& e) {
        agentLog().warn("{}: heartbeat failed: {}", opts_.name, e.what());
      }
      next_beat = std::chrono::steady_clock::now() + opts_.heartbeat;
    }
  }
  pool_.waitUntilIdle();
  drainWorkerReplies();
}

}  // namespace ferry::agent
