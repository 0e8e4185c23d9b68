#include "coordinator/coordinator.h"

#include <nlohmann/json.hpp>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace ferry::coord {

using nlohmann::json;

namespace {

spdlog::logger& log() {
  static std::shared_ptr<spdlog::logger> l = [] {
    auto existing = spdlog::get("coordinator");
    return existing ? existing : spdlog::stderr_color_mt("coordinator");
  }();
  return *l;
}

std::string text(capnp::Text::Reader t) { return std::string(t.cStr(), t.size()); }

json hostInfoJson(proto::HostInfo::Reader i) {
  json flags = json::array();
  for (auto f : i.getCpuFlags()) flags.push_back(text(f));
  return {{"host_name", text(i.getHostName())},      {"engine_version", text(i.getEngineVersion())},
          {"kernel", text(i.getKernel())},           {"arch", text(i.getArch())},
          {"cpu_flags", flags},                      {"page_size", i.getPageSize()},
          {"criu_version", text(i.getCriuVersion())}, {"runtime_name", text(i.getRuntimeName())},
          {"runtime_version", text(i.getRuntimeVersion())},
          {"conmon_version", text(i.getConmonVersion())},
          {"cgroup_version", i.getCgroupVersion()},  {"distribution", text(i.getDistribution())},
          {"distribution_version", text(i.getDistributionVersion())},
          {"selinux_mode", text(i.getSelinuxMode())}, {"mem_dirty_track", i.getMemDirtyTrack()},
          {"uffd", i.getUffd()},                     {"memory_bytes", i.getMemoryBytes()},
          {"cpus", i.getCpus()}};
}

void fillHostInfo(proto::HostInfo::Builder b, const json& j) {
  b.setHostName(j.value("host_name", ""));
  b.setKernel(j.value("kernel", ""));
  b.setArch(j.value("arch", ""));
  b.setCriuVersion(j.value("criu_version", ""));
  b.setRuntimeName(j.value("runtime_name", ""));
  b.setRuntimeVersion(j.value("runtime_version", ""));
  b.setDistribution(j.value("distribution", ""));
  b.setDistributionVersion(j.value("distribution_version", ""));
  b.setMemoryBytes(j.value("memory_bytes", uint64_t{0}));
  b.setCpus(j.value("cpus", 0u));
}

}  // namespace

Coordinator::Coordinator(CoordinatorOptions opts, zmq::context_t& ctx, Clock clock)
    : opts_(std::move(opts)),
      server_(ctx, opts_.listen, opts_.keys),
      store_((std::filesystem::create_directories(opts_.state_dir), opts_.state_dir / "state.db")),
      clock_(std::move(clock)) {}

void Coordinator::onHello(proto::Message::Hello::Reader h) {
  std::string name = text(h.getName());
  bool known = store_.host(name).has_value();
  store_.upsertHost({name, text(h.getDataEndpoint()), hostInfoJson(h.getInfo()).dump(), true, false,
                     clock_()});
  store_.addEvent(clock_(), "host", name, known ? "registered again" : "registered");
  log().info("host {} {} (data plane {})", name, known ? "registered again" : "registered",
             text(h.getDataEndpoint()));
}

void Coordinator::onHeartbeat(proto::Message::Heartbeat::Reader h) {
  std::string name = text(h.getName());
  auto host = store_.host(name);
  if (!host) return;  // not registered yet: its hello is on its way
  if (!host->up) {
    store_.addEvent(clock_(), "host", name, "up again");
    log().info("host {} is up again", name);
  }
  host->up = true;
  host->last_seen_ms = clock_();
  store_.upsertHost(*host);
  std::vector<ContainerRow> rows;
  for (auto c : h.getContainers()) {
    rows.push_back({text(c.getName()), name, text(c.getImage()), text(c.getStatus()), c.getMemoryBytes()});
  }
  store_.replaceContainers(name, rows);
}

void Coordinator::markSilentHostsDown() {
  int64_t cutoff = clock_() - opts_.heartbeat.count() * opts_.missed_heartbeats;
  for (const auto& name : store_.markDownSilentSince(cutoff)) {
    store_.addEvent(clock_(), "host", name, "down: missed heartbeats");
    log().warn("host {} is down: no heartbeat for {} ms", name,
               opts_.heartbeat.count() * opts_.missed_heartbeats);
  }
}

void Coordinator::handle(proto::RpcServer::Request& r) {
  auto m = r.msg;
  switch (m.which()) {
    case proto::Message::HELLO:
      onHello(m.getHello());
      return server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
    case proto::Message::HEARTBEAT:
      onHeartbeat(m.getHeartbeat());
      return server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
    case proto::Message::PING:
      return server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
    case proto::Message::LIST_HOSTS: {
      std::vector<HostRow> hosts = store_.hosts();
      std::vector<ContainerRow> all = store_.containers();
      return server_.reply(r, [&](proto::Message::Builder b) {
        auto list = b.initHosts(static_cast<unsigned>(hosts.size()));
        for (size_t i = 0; i < hosts.size(); ++i) {
          auto h = list[static_cast<unsigned>(i)];
          h.setName(hosts[i].name);
          h.setDataEndpoint(hosts[i].data_endpoint);
          h.setUp(hosts[i].up);
          h.setCordoned(hosts[i].cordoned);
          uint32_t n = 0;
          for (const auto& c : all) n += c.host == hosts[i].name;
          h.setContainers(n);
          fillHostInfo(h.initInfo(), json::parse(hosts[i].host_info_json, nullptr, false));
        }
      });
    }
    case proto::Message::LIST_CONTAINERS: {
      std::vector<ContainerRow> rows = store_.containers(text(m.getListContainers()));
      return server_.reply(r, [&](proto::Message::Builder b) {
        auto list = b.initContainers(static_cast<unsigned>(rows.size()));
        for (size_t i = 0; i < rows.size(); ++i) {
          auto c = list[static_cast<unsigned>(i)];
          c.setName(rows[i].name);
          c.setHost(rows[i].host);
          c.setImage(rows[i].image);
          c.setStatus(rows[i].status);
          c.setMemoryBytes(rows[i].memory_bytes);
        }
      });
    }
    default:
      return server_.replyError(r, Error(ErrorCategory::kInvalidInput,
                                         "this coordinator does not (yet) handle that request"),
                                "coordinator");
  }
}

void Coordinator::run(const std::atomic<bool>& stop) {
  auto next_check = std::chrono::steady_clock::now();
  while (!stop) {
    try {
      if (auto r = server_.next(std::chrono::milliseconds(100))) {
        try {
          proto::guard([&] { handle(*r); });
        } catch (const Error& e) {
          server_.replyError(*r, e, "coordinator");
        }
      }
    } catch (const zmq::error_t& e) {
      if (e.num() != EINTR) throw;
    }
    if (std::chrono::steady_clock::now() >= next_check) {
      markSilentHostsDown();
      next_check = std::chrono::steady_clock::now() + opts_.heartbeat;
    }
  }
}

}  // namespace ferry::coord
