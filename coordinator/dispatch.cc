// Request dispatch: from each message an agent or the CLI sends to its
// handler, and the CLI's requests that are answered from the store or
// forwarded to the agent concerned.
#include "common/names.h"
#include "coordinator/addresses.h"
#include "coordinator/coordinator.h"
#include "coordinator/heartbeat.h"
#include "coordinator/coordinator_util.h"
#include "protocol/convert/host_info_proto.h"

namespace ferry::coord {

using detail::dataOf;
using detail::fillFigures;
using detail::hostInfoOf;
using detail::joinNames;
using detail::log;
using detail::randomToken;
using detail::text;

bool Coordinator::isReply(const proto::Message::Reader& m) const {
  return isAgentReply(m.which());
}

bool Coordinator::authorized(const Request& r) {
  PeerIdentity who = PeerIdentity::fromUserId(r.user);
  auto m = r.msg;
  if (senderOf(m.which()) == Sender::kClient) {
    if (who.mayUseCli()) return true;
    throw Error(ErrorCategory::kInvalidInput,
                "refused: this connection is " + who.describe() +
                    ", which may not make requests; the CLI uses a client key (client.pub) or, "
                    "without keys, the coordinator's unix socket");
  }
  if (isReply(m)) {
    if (who.mayActAsSomeHost()) return true;
    log().warn("dropped an answer from {} (only agents answer)", who.describe());
    return false;
  }
  std::string host = m.isHello()       ? text(m.getHello().getName())
                     : m.isHeartbeat() ? text(m.getHeartbeat().getName())
                                       : text(m.getDrainHost());
  if (who.mayActAsHost(host)) return true;
  log().warn("refused a message for host '{}' from {}", host, who.describe());
  throw Error(ErrorCategory::kInvalidInput,
              "refused: this connection is " + who.describe() + ", not host " + host +
                  "'s agent (an agent's key, or address without keys, names its host)");
}
void Coordinator::forward(const Request& r, const std::string& host, const std::string& what,
                          const proto::Fill& cmd, std::chrono::milliseconds timeout,
                          std::function<void(proto::Message::Reader)> on_ok,
                          std::function<void()> on_end) {
  Client c{r.peer, r.id};
  command(
      host, what, cmd, timeout,
      [this, c, on_ok, on_end](proto::Message::Reader m) {
        if (on_ok) on_ok(m);
        if (on_end) on_end();
        server_.relay(c.peer, c.id, m);
      },
      [this, c, on_end](const Error& e, Fault) {
        if (on_end) on_end();
        sendError(c, e);
      },
      [this, c](proto::Progress::Reader p) {
        server_.sendTo(c.peer, c.id, [&](proto::Message::Builder b) { b.setProgress(p); });
      });
}

// --- the CLI -------------------------------------------------------------------

// What an agent's answer says of a container, ahead of its next heartbeat
// (so that `ferry run` then `ferry logs` finds it at once).
void Coordinator::noteContainer(proto::Message::Reader m) {
  if (!m.isContainer()) return;
  auto c = m.getContainer();
  ContainerRow row{text(c.getName()), text(c.getHost()), text(c.getImage()), text(c.getStatus()),
                   c.getMemoryBytes()};
  readAddress(c, row);
  store_.putContainer(row);
  hosts_.noteExtras(text(c.getHost()), text(c.getName()),
                    {proto::strings(c.getSecrets()), c.getReady(), text(c.getNotifyStatus())});
}

HostRow Coordinator::requireHost(const std::string& name, const std::string& role) {
  if (name.empty()) throw Error(ErrorCategory::kInvalidInput, "no " + role + " host given");
  auto h = store_.host(name);
  if (!h) {
    throw Error(ErrorCategory::kInvalidInput, "unknown " + role + " host '" + name +
                                                  "' (hosts: " + joinNames(store_.hosts()) + ")");
  }
  if (!hostUp(name)) {
    throw Error(ErrorCategory::kRetryable,
                role + " host " + name + " is down (no heartbeat for " +
                    std::to_string((clock_() - hosts_.lastHeard(name)) / 1000) +
                    " s); start its agent again or pick another host");
  }
  return *h;
}

ContainerRow Coordinator::locate(const std::string& container) {
  validateName(container, "container name");
  std::vector<ContainerRow> copies = store_.containersNamed(container);
  if (copies.empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                "no container '" + container + "' in the cluster (`ferry ps` lists them)");
  }
  for (const auto& [id, run] : runs_) {
    if (run.machine.spec().container == container) {
      throw Error(ErrorCategory::kRetryable, container + " is being migrated (migration #" +
                                                 std::to_string(id) +
                                                 "); try again when it has ended");
    }
  }
  if (copies.size() > 1) {
    throw Error(ErrorCategory::kRetryable,
                container + " is reported by " + copies[0].host + " and " + copies[1].host +
                    " at once (a migration is settling); try again in a few seconds");
  }
  return copies[0];
}

void Coordinator::listHosts(const Request& r) {
  std::vector<HostRow> hosts = store_.hosts();
  std::vector<ContainerRow> all = store_.containers();
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initHosts(static_cast<unsigned>(hosts.size()));
    for (size_t i = 0; i < hosts.size(); ++i) {
      auto h = list[static_cast<unsigned>(i)];
      h.setName(hosts[i].name);
      h.setDataEndpoint(hosts[i].data_endpoint);
      h.setUp(hostUp(hosts[i].name));
      h.setCordoned(hosts[i].cordoned);
      HostNetworkState net = hosts_.network(hosts[i].name);
      h.setNetwork(net.cidr);
      h.setNetworkError(net.error);
      uint32_t n = 0;
      for (const auto& c : all) n += c.host == hosts[i].name;
      h.setContainers(n);
      LoadRow load = hosts_.load(hosts[i].name);
      auto lb = h.initLoad();
      lb.setCpuPercent(static_cast<float>(load.cpu_percent));
      lb.setMemoryUsedBytes(load.memory_used_bytes);
      lb.setMemoryTotalBytes(load.memory_total_bytes);
      lb.setMemoryCapacityBytes(load.memory_capacity_bytes);
      proto::fillHostInfo(h.initInfo(), hostInfoOf(hosts[i]));
      std::vector<ImageRow> images = store_.images(hosts[i].name);
      auto il = h.initImages(static_cast<unsigned>(images.size()));
      for (size_t k = 0; k < images.size(); ++k) {
        il[static_cast<unsigned>(k)].setName(images[k].name);
        il[static_cast<unsigned>(k)].setId(images[k].id);
      }
    }
  });
}

void Coordinator::listHistory(const Request& r, uint32_t limit) {
  std::vector<MigrationRow> rows =
      store_.history(static_cast<int>(std::clamp<uint32_t>(limit, 1, 10000)));
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initHistory(static_cast<unsigned>(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) fillFigures(list[static_cast<unsigned>(i)], rows[i]);
  });
}

// A file the CLI streams straight to an agent: the agent binds a stream for
// a token issued here, and the CLI gets the ticket and the token.
void Coordinator::importFile(const Request& r) {
  auto in = r.msg.getImportFile();
  HostRow host = requireHost(text(in.getHost()), "target");
  std::string token = randomToken();
  Client c{r.peer, r.id};
  std::string sender_key = requesterKey(r);  // whatever the request said
  auto fill = [&](proto::Message::Builder b) {
    b.setPrepareImport(in);
    b.getPrepareImport().setToken(dataOf(token));
    b.getPrepareImport().setSenderKey(sender_key);
  };
  command(
      host.name, "prepare an import", fill, opts_.command_timeout,
      [this, c, token](proto::Message::Reader m) {
        if (!m.isStreamTicket()) return;
        auto t = m.getStreamTicket();
        server_.sendTo(c.peer, c.id, [&](proto::Message::Builder b) {
          auto out = b.initStreamTicket();
          out.setEndpoint(t.getEndpoint());
          out.setServerKey(t.getServerKey());
          out.setToken(dataOf(token));
        });
      },
      [this, c](const Error& e, Fault) { sendError(c, e); });
}

void Coordinator::checkpointTo(const Request& r) {
  auto req = r.msg.getCheckpoint();
  ContainerRow c = locate(text(req.getContainer()));
  requireHost(c.host, "container's");
  std::function<void(proto::Message::Reader)> on_ok;
  if (!req.getLeaveRunning()) {
    on_ok = [this, c](proto::Message::Reader) { store_.removeContainer(c.host, c.name); };
  }
  forward(
      r, c.host, "checkpoint " + c.name,
      [&](proto::Message::Builder b) { b.setExportCheckpoint(req); }, opts_.transfer_timeout,
      on_ok);
}

void Coordinator::listContainers(const Request& r) {
  std::string host = text(r.msg.getListContainers());
  if (!host.empty() && !store_.host(host)) {
    throw Error(ErrorCategory::kInvalidInput,
                "unknown host '" + host + "' (hosts: " + joinNames(store_.hosts()) + ")");
  }
  std::vector<ContainerRow> rows = store_.containers(host);
  server_.reply(r, [&](proto::Message::Builder b) {
    auto list = b.initContainers(static_cast<unsigned>(rows.size()));
    for (size_t i = 0; i < rows.size(); ++i) {
      auto c = list[static_cast<unsigned>(i)];
      c.setName(rows[i].name);
      c.setHost(rows[i].host);
      c.setImage(rows[i].image);
      c.setStatus(rows[i].status);
      c.setMemoryBytes(hosts_.withMemory(rows[i]).memory_bytes);
      c.setIp(rows[i].ip);
      c.setMac(rows[i].mac);
      auto ports = c.initPorts(static_cast<unsigned>(rows[i].ports.size()));
      for (size_t k = 0; k < rows[i].ports.size(); ++k) ports.set(static_cast<unsigned>(k), rows[i].ports[k]);
      if (auto x = hosts_.extras(rows[i].host, rows[i].name)) {
        c.setReady(x->ready);
        c.setNotifyStatus(x->notify_status);
        // Another host's pid (a copy it reported) is no pid here.
        if (x->reported_by == rows[i].host) c.setPid(x->pid);
      }
    }
  });
}

void Coordinator::runContainer(const Request& r) {
  auto run = r.msg.getRun();
  HostRow host = requireHost(text(run.getHost()), "target");
  std::string name = text(run.getSpec().getName());
  validateName(name, "container name");
  auto copies = store_.containersNamed(name);
  if (!copies.empty()) {
    throw Error(ErrorCategory::kInvalidInput, "a container named " + name + " already exists on " +
                                                  copies[0].host +
                                                  " (names are unique in the cluster)");
  }
  auto spec = run.getSpec();
  std::string network = text(spec.getNetwork());
  if (!network.empty() && network != "ferry" && network != "none") {
    throw Error(ErrorCategory::kInvalidInput,
                "--network " + network + ": no such network; there is 'ferry' (the cluster "
                "network) and 'none' (loopback only)");
  }
  bool wants_address = network != "none";
  if (opts_.network_cidr.empty()) {
    if (network == "ferry" || spec.getIp().size() > 0 || spec.getPublish().size() > 0) {
      throw Error(ErrorCategory::kInvalidInput,
                  "this cluster has no container network (--network, --ip and -p need one: start "
                  "ferry-coordinator with --network-cidr)");
    }
    wants_address = false;
  } else if (!wants_address && (spec.getIp().size() > 0 || spec.getPublish().size() > 0)) {
    throw Error(ErrorCategory::kInvalidInput,
                std::string(spec.getIp().size() > 0 ? "--ip" : "-p") +
                    " needs the cluster network, and --network none gives the container none");
  }
  std::string ip, mac;
  std::vector<std::string> ports;
  if (wants_address) {
    Cidr cidr = parseCidr(opts_.network_cidr);
    std::map<Ipv4, std::string> used = reserved_;
    for (const auto& row : store_.containers()) {
      if (!row.ip.empty()) used.emplace(parseIpv4(row.ip), row.name);
    }
    std::optional<Ipv4> asked;
    if (spec.getIp().size() > 0) asked = parseIpv4(text(spec.getIp()), "--ip");
    for (auto p : spec.getPublish()) ports.push_back(toString(parsePublish(text(p))));
    checkPortsFree(host.name, ports, store_.containers(host.name));
    Ipv4 given = pickAddress(cidr, used, asked, last_given_);
    last_given_ = given;
    reserved_[given] = name;
    ip = toString(given);
    mac = macFor(given);
  }
  auto made = std::make_shared<bool>(false);
  return forward(
      r, host.name, "run " + name,
      [&](proto::Message::Builder b) {
        b.setStartContainer(spec);
        if (!ip.empty()) {
          auto s = b.getStartContainer();
          s.setNetwork("ferry");
          s.setIp(ip);
          s.setMac(mac);
          s.setCidr(opts_.network_cidr);
          auto list = s.initPublish(static_cast<unsigned>(ports.size()));
          for (size_t i = 0; i < ports.size(); ++i) list.set(static_cast<unsigned>(i), ports[i]);
        }
      },
      opts_.command_timeout,
      [this, made](proto::Message::Reader m) {
        *made = true;
        noteContainer(m);
      },
      [this, ip, made, name, on = host.name] {
        // Given or not, the container's row (noteContainer) holds it now.
        if (!ip.empty()) reserved_.erase(parseIpv4(ip));
        // Refused: a heartbeat sent while the agent was creating it may have
        // listed it; the name was free before this run, and is again.
        if (!*made) store_.removeContainer(on, name);
      });
}

void Coordinator::answerAgent(const Request& r) {
  if (opts_.network_cidr.empty()) {
    server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
    return;
  }
  std::map<std::string, std::string> address_of;
  for (const auto& h : store_.hosts()) address_of[h.name] = endpointAddress(h.data_endpoint);
  std::vector<std::pair<std::string, std::string>> placed;
  for (const auto& [ip, host] : addressPlacement(store_.containers())) {
    const std::string& a = address_of[host];
    if (!a.empty()) placed.emplace_back(toString(ip), a);
  }
  server_.reply(r, [&](proto::Message::Builder b) {
    auto n = b.initNetwork();
    n.setCidr(opts_.network_cidr);
    auto list = n.initPlacement(static_cast<unsigned>(placed.size()));
    for (size_t i = 0; i < placed.size(); ++i) {
      list[static_cast<unsigned>(i)].setIp(placed[i].first);
      list[static_cast<unsigned>(i)].setHost(placed[i].second);
    }
  });
}

void Coordinator::readLogs(const Request& r) {
  auto q = r.msg.getGetLogsFrom();
  std::string name = text(q.getContainer());
  validateName(name, "container name");
  std::vector<ContainerRow> copies = store_.containersNamed(name);
  if (copies.empty()) {
    throw Error(ErrorCategory::kInvalidInput,
                "no container '" + name + "' in the cluster (`ferry ps` lists them)");
  }
  // Mid-migration the target's copy is the one whose output goes on. The
  // position means the same on either host: the log moves with the
  // container, and the agent checks the mark.
  const ContainerRow& c =
      copies.size() > 1 && copies[1].status == "running" ? copies[1] : copies[0];
  requireHost(c.host, "container's");
  return forward(
      r, c.host, "read the logs of " + name,
      [&](proto::Message::Builder b) { b.setReadLogsFrom(q); }, opts_.command_timeout);
}

void Coordinator::handle(Request& r) {
  auto m = r.msg;
  if (!authorized(r)) return;
  if (isReply(m)) return onAgentReply(r);
  switch (m.which()) {
    case proto::Message::HELLO:
      onHello(r);
      return answerAgent(r);
    case proto::Message::HEARTBEAT:
      onHeartbeat(r);
      return answerAgent(r);
    case proto::Message::PING:
      server_.reply(r, [](proto::Message::Builder b) { b.setOk(); });
      return;
    case proto::Message::LIST_HOSTS:
      return listHosts(r);
    case proto::Message::LIST_CONTAINERS:
      return listContainers(r);
    case proto::Message::RUN:
      return runContainer(r);
    case proto::Message::SECRET: {
      auto sec = m.getSecret();
      HostRow host = requireHost(text(sec.getHost()), "secret's");
      std::string name = text(sec.getName());
      auto op = sec.getOp();
      // The value crosses here untouched and is never logged: only the name is.
      return forward(
          r, host.name, "secret " + name, [&](proto::Message::Builder b) { b.setSecret(sec); },
          opts_.command_timeout,
          [this, op, name, h = host.name](proto::Message::Reader m) {
            if (!m.isOk()) return;
            if (op == proto::Message::Secret::Op::CREATE) host_secrets_[h].insert(name);
            if (op == proto::Message::Secret::Op::REMOVE) host_secrets_[h].erase(name);
          });
    }
    case proto::Message::STOP: {
      ContainerRow c = locate(text(m.getStop()));
      requireHost(c.host, "container's");
      return forward(
          r, c.host, "stop " + c.name,
          [&](proto::Message::Builder b) { b.setStopContainer(c.name); }, opts_.command_timeout,
          [this](proto::Message::Reader m) { noteContainer(m); });
    }
    case proto::Message::REMOVE: {
      ContainerRow c = locate(text(m.getRemove()));
      requireHost(c.host, "container's");
      return forward(
          r, c.host, "remove " + c.name,
          [&](proto::Message::Builder b) { b.setRemoveContainer(c.name); }, opts_.command_timeout,
          [this, c](proto::Message::Reader) { store_.removeContainer(c.host, c.name); });
    }
    case proto::Message::GET_LOGS_FROM:
      return readLogs(r);
    case proto::Message::MIGRATE:
      return startMigration(r);
    case proto::Message::LIST_HISTORY:
      return listHistory(r, m.getListHistory());
    case proto::Message::LIST_PENDING:
      return listPending(r);
    case proto::Message::RESUME_SOURCE: {
      auto rs = m.getResumeSource();
      if (!rs.getTargetLost()) {
        throw Error(ErrorCategory::kInvalidInput,
                    "resuming a frozen source needs the operator's word that the target's copy is "
                    "not running (--target-lost)");
      }
      return resumeSourceNow(r, static_cast<int64_t>(rs.getMigration()));
    }
    case proto::Message::IMPORT_FILE:
      return importFile(r);
    case proto::Message::CHECKPOINT:
      return checkpointTo(r);
    case proto::Message::CORDON:
      return cordon(r);
    case proto::Message::DRAIN: {
      auto d = m.getDrain();
      std::string host = text(d.getHost());
      requireHost(host, "drained");
      if (d.getParallel() > 16) {
        throw Error(ErrorCategory::kInvalidInput, "--parallel is at most 16");
      }
      int64_t deadline = d.getDeadlineMs() ? clock_() + static_cast<int64_t>(d.getDeadlineMs()) : 0;
      return startDrain(host, std::max(1, static_cast<int>(d.getParallel())), deadline,
                        d.getDryRun(), Client{r.peer, r.id});
    }
    case proto::Message::DRAIN_HOST: {
      // An agent being stopped: drain its host, answer when it is done.
      std::string host = text(m.getDrainHost());
      requireHost(host, "drained");
      return startDrain(host, 2, 0, false, Client{r.peer, r.id});
    }
    case proto::Message::REBALANCE:
      return startRebalance(r);
    default:
      throw Error(ErrorCategory::kInvalidInput, "not a request the coordinator serves");
  }
}

}  // namespace ferry::coord
