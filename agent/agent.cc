#include "agent/agent.h"

#include <unistd.h>

#include <fstream>
#include <random>

#include "agent/transfer.h"
#include "engine/log.h"
#include "protocol/framing.h"

namespace ferry::agent {

namespace {

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }
std::string bytes(capnp::Data::Reader d) {
  return std::string(reinterpret_cast<const char*>(d.begin()), d.size());
}

// Host memory from /proc/meminfo, CPU from the 1-minute load average over
// the core count: what a planner needs to compare hosts.
void fillLoad(proto::Load::Builder b, uint32_t cpus) {
  std::ifstream mem("/proc/meminfo");
  std::string key;
  uint64_t value = 0, total = 0, available = 0;
  std::string unit;
  while (mem >> key >> value >> unit) {
    if (key == "MemTotal:") total = value * 1024;
    if (key == "MemAvailable:") available = value * 1024;
  }
  double load = 0;
  std::ifstream("/proc/loadavg") >> load;
  b.setCpuPercent(static_cast<float>(cpus ? std::min(100.0, 100.0 * load / cpus) : 0));
  b.setMemoryTotalBytes(total);
  b.setMemoryUsedBytes(total > available ? total - available : 0);
}

void fillContainer(proto::Container::Builder b, const ContainerInfo& c, const std::string& host) {
  b.setName(c.name());
  b.setHost(host);
  b.setImage(c.record.spec.image);
  b.setStatus(std::string(statusName(c.status)));
  b.setPid(static_cast<uint32_t>(c.pid));
  b.setExitCode(c.exit_code.value_or(-1));
  auto vols = b.initVolumes(static_cast<unsigned>(c.record.spec.volumes.size()));
  for (size_t i = 0; i < c.record.spec.volumes.size(); ++i) {
    vols.set(static_cast<unsigned>(i), c.record.spec.volumes[i].name);
  }
}

ContainerSpec specFrom(proto::RunSpec::Reader r) {
  ContainerSpec s;
  s.name = text(r.getName());
  s.image = text(r.getImage());
  for (auto a : r.getArgs()) s.args.push_back(text(a));
  for (auto e : r.getEnv()) s.env.push_back(text(e));
  for (auto v : r.getVolumes()) s.volumes.push_back(parseVolumeArg(text(v)));
  s.cwd = text(r.getCwd());
  s.user = text(r.getUser());
  return s;
}

}  // namespace

void fillHostInfo(proto::HostInfo::Builder b, const HostInfo& h) {
  b.setHostName(h.host_name);
  b.setEngineVersion(h.engine_version);
  b.setKernel(h.kernel);
  b.setArch(h.arch);
  auto flags = b.initCpuFlags(static_cast<unsigned>(h.cpu_flags.size()));
  for (size_t i = 0; i < h.cpu_flags.size(); ++i) flags.set(static_cast<unsigned>(i), h.cpu_flags[i]);
  b.setPageSize(h.page_size);
  b.setCriuVersion(h.criu_version);
  b.setRuntimeName(h.runtime_name);
  b.setRuntimeVersion(h.runtime_version);
  b.setConmonVersion(h.conmon_version);
  b.setCgroupVersion(static_cast<uint8_t>(h.cgroup_version));
  b.setDistribution(h.distribution);
  b.setDistributionVersion(h.distribution_version);
  b.setSelinuxMode(h.selinux_mode);
  b.setMemDirtyTrack(h.mem_dirty_track);
  b.setUffd(h.uffd);
  b.setMemoryBytes(h.memory_bytes);
  b.setCpus(h.cpus);
}

Agent::Agent(AgentOptions opts, Engine& engine, zmq::context_t& ctx)
    : opts_(std::move(opts)), engine_(engine), ctx_(ctx), sock_(ctx, zmq::socket_type::dealer) {
  proto::applySocketLimits(sock_);
  if (opts_.keys) proto::makeCurveClient(sock_, *opts_.keys, opts_.coordinator_key);
  sock_.set(zmq::sockopt::routing_id, opts_.name);  // the coordinator addresses hosts by name
  sock_.connect(opts_.coordinator);
}

Agent::~Agent() {
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
}

void Agent::hello() {
  const HostInfo& info = engine_.hostInfo();
  sock_.send(proto::buildMessage(next_id_++, [&](proto::Message::Builder m) {
    auto h = m.initHello();
    h.setName(opts_.name);
    h.setDataEndpoint("tcp://" + opts_.data_address);
    fillHostInfo(h.initInfo(), info);
    if (opts_.keys) h.setPublicKey(opts_.keys->public_key);
  }), zmq::send_flags::dontwait);
}

void Agent::heartbeat() {
  std::vector<ContainerInfo> all = engine_.list();
  uint32_t cpus = engine_.hostInfo().cpus;
  sock_.send(proto::buildMessage(next_id_++, [&](proto::Message::Builder m) {
    auto hb = m.initHeartbeat();
    hb.setName(opts_.name);
    fillLoad(hb.initLoad(), cpus);
    auto list = hb.initContainers(static_cast<unsigned>(all.size()));
    for (size_t i = 0; i < all.size(); ++i) fillContainer(list[static_cast<unsigned>(i)], all[i], opts_.name);
  }), zmq::send_flags::dontwait);
}

void Agent::reply(uint64_t id, const proto::Fill& fill) {
  sock_.send(proto::buildMessage(id, fill), zmq::send_flags::dontwait);
}

void Agent::replyError(uint64_t id, const Error& e) {
  reply(id, [&](proto::Message::Builder m) { proto::fillErrorInfo(m.initError(), e, opts_.name); });
}

void Agent::spawn(uint64_t id, std::function<proto::Fill()> work) {
  workers_.emplace_back([this, id, work = std::move(work)] {
    proto::Fill result;
    try {
      result = work();
    } catch (const Error& e) {
      Error copy = e;
      std::string host = opts_.name;
      result = [copy, host](proto::Message::Builder m) {
        proto::fillErrorInfo(m.initError(), copy, host);
      };
    } catch (const std::exception& e) {
      Error copy(ErrorCategory::kPermanent, e.what());
      std::string host = opts_.name;
      result = [copy, host](proto::Message::Builder m) {
        proto::fillErrorInfo(m.initError(), copy, host);
      };
    }
    std::lock_guard<std::mutex> g(mu_);
    done_.emplace_back(id, std::move(result));
  });
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
        case proto::Message::ERROR:
          return;  // the coordinator's answer to a hello or heartbeat
        case proto::Message::START_CONTAINER: {
          ContainerInfo c = engine_.run(specFrom(m.getStartContainer()));
          return reply(id, [&](proto::Message::Builder r) { fillContainer(r.initContainer(), c, opts_.name); });
        }
        case proto::Message::STOP_CONTAINER:
          engine_.stop(text(m.getStopContainer()));
          return reply(id, [](proto::Message::Builder r) { r.setOk(); });
        case proto::Message::REMOVE_CONTAINER:
        case proto::Message::COMMIT_SOURCE:
          engine_.remove(text(m.isRemoveContainer() ? m.getRemoveContainer() : m.getCommitSource()), true);
          return reply(id, [](proto::Message::Builder r) { r.setOk(); });
        case proto::Message::ROLLBACK_SOURCE: {
          std::string name = text(m.getRollbackSource());
          if (engine_.inspect(name).status == ContainerStatus::kPaused) engine_.resume(name);
          return reply(id, [](proto::Message::Builder r) { r.setOk(); });
        }
        case proto::Message::DISCARD_TARGET: {
          std::string name = text(m.getDiscardTarget());
          for (const auto& c : engine_.list()) {
            if (c.name() == name) engine_.remove(name, true);
          }
          return reply(id, [](proto::Message::Builder r) { r.setOk(); });
        }
        case proto::Message::READ_LOGS: {
          std::vector<LogLine> lines = engine_.logs(text(m.getReadLogs()));
          return reply(id, [&](proto::Message::Builder r) {
            auto l = r.initLogs(static_cast<unsigned>(lines.size()));
            for (size_t i = 0; i < lines.size(); ++i) l.set(static_cast<unsigned>(i), lines[i].text);
          });
        }
        case proto::Message::PREPARE_RECEIVE:
          return prepareReceive(id, m.getPrepareReceive());
        case proto::Message::SEND_CHECKPOINT:
          return sendCheckpointCommand(id, m.getSendCheckpoint());
        default:
          throw Error(ErrorCategory::kInvalidInput, "not a command an agent carries out");
      }
    });
  } catch (const Error& e) {
    replyError(id, e);
  }
}

// The target side of a migration: bind a stream for this one token, answer
// with where to send it, then restore what arrives (on a worker).
void Agent::prepareReceive(uint64_t id, proto::Message::PrepareReceive::Reader r) {
  std::string token = bytes(r.getToken());
  std::string container = text(r.getContainer());
  proto::StreamOptions so;
  if (opts_.keys) so.own_keys = opts_.keys;
  auto rx = std::make_shared<proto::ChunkReceiver>(ctx_, "tcp://" + opts_.data_address + ":0", token,
                                                   opts_.name, so);
  std::string endpoint = rx->endpoint();
  reply(id, [&](proto::Message::Builder m) {
    auto t = m.initStreamTicket();
    t.setEndpoint(endpoint);
    if (opts_.keys) t.setServerKey(opts_.keys->public_key);
  });
  // The restore's outcome travels back to the sender on the stream itself;
  // this worker only logs it.
  workers_.emplace_back([this, rx, container] {
    try {
      receiveCheckpoint(engine_, *rx);
      engineLog().info("[{}] received and restored on {}", container, opts_.name);
    } catch (const std::exception& e) {
      engineLog().warn("[{}] receiving on {} failed: {}", container, opts_.name, e.what());
    }
  });
}

// The source side: freeze, stream, await the target's verdict (on a worker).
void Agent::sendCheckpointCommand(uint64_t id, proto::Message::SendCheckpoint::Reader r) {
  std::string container = text(r.getContainer()), endpoint = text(r.getEndpoint());
  std::string token = bytes(r.getToken()), server_key = text(r.getServerKey());
  spawn(id, [this, container, endpoint, token, server_key]() -> proto::Fill {
    TransferOptions t;
    if (opts_.keys) {
      t.stream.own_keys = opts_.keys;
      t.stream.peer_public_key = server_key;
    }
    SendResult s = sendCheckpoint(engine_, container, ctx_, endpoint, token, t);
    return [s](proto::Message::Builder m) {
      auto f = m.initMigration();
      f.setBytesRaw(s.checkpoint.memory_bytes + s.checkpoint.rootfs_bytes + s.checkpoint.volume_bytes);
      f.setBytesWire(s.checkpoint.bundle_bytes);
      f.setDowntimeMs(static_cast<uint64_t>(s.transfer_ms));
      f.setTotalMs(static_cast<uint64_t>(s.transfer_ms));
    };
  });
}

void Agent::run(const std::atomic<bool>& stop) {
  hello();
  auto next_beat = std::chrono::steady_clock::now();
  while (!stop) {
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
        engineLog().warn("{}: dropped a malformed message from the coordinator: {}", opts_.name, e.what());
      }
    }
    drainWorkerReplies();
    if (std::chrono::steady_clock::now() >= next_beat) {
      try {
        heartbeat();
      } catch (const std::exception& e) {
        engineLog().warn("{}: heartbeat failed: {}", opts_.name, e.what());
      }
      next_beat = std::chrono::steady_clock::now() + opts_.heartbeat;
    }
  }
  for (auto& t : workers_) {
    if (t.joinable()) t.join();
  }
  drainWorkerReplies();
}

}  // namespace ferry::agent
