// The coordinator's control plane against peers that lie (issue 14, holes
// 2, 6 and 7): a real ferry-coordinator process, real sockets. The peers
// that stand for agents here are driven by hand, message by message,
// because the faults are in what a peer claims (a routing id, a name in a
// hello, a flood) and a real agent never claims those; each says which
// agent it stands for.
#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "common/fs.h"
#include "common/random.h"
#include "engine/runtime/process.h"
#include "protocol/rpc.h"
#include "test_host.h"
#include "tools/cluster.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

constexpr int kKeysPort = 7395;
constexpr int kPlainPort = 7396;

class ControlPlane : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::make_unique<TempDir>("/var/tmp", "ferry-ctlplane-");
    ::chmod(dir_->path().c_str(), 0755);  // a unix socket's mode is what stops others
  }
  void TearDown() override {
    if (coordinator_.pid() > 0) {
      coordinator_.kill(SIGTERM);
      coordinator_.wait();
    }
  }
  const fs::path& dir() { return dir_->path(); }
  std::string log() { return readFile(dir() / "coordinator.log"); }

  // Keys as `ferry keys generate` makes them.
  fs::path makeKeys() {
    fs::path k = dir() / "keys";
    for (const char* n : {"coordinator", "hostA", "hostB", "client"}) {
      proto::writeKeyPair(k, n, proto::generateKeyPair());
    }
    return k;
  }
  proto::KeyPair key(const std::string& name) {
    return proto::readKeyPair(dir() / "keys" / (name + ".key"));
  }
  std::string coordinatorPub() { return proto::readPublicKey(dir() / "keys" / "coordinator.pub"); }

  // Starts ferry-coordinator with `args` (after --state and --heartbeat),
  // under `shell_prefix` (e.g. a ulimit), and waits until `ping_endpoint`
  // answers.
  void startCoordinator(std::vector<std::string> args, const std::string& ping_endpoint,
                        std::optional<proto::CurveClientKeys> curve = std::nullopt,
                        const std::string& shell_prefix = "") {
    std::vector<std::string> argv = {FERRY_COORDINATOR_BIN, "--state", (dir() / "state").string(),
                                     "--heartbeat", "1000"};
    argv.insert(argv.end(), args.begin(), args.end());
    if (!shell_prefix.empty()) {
      argv.insert(argv.begin(), {"/bin/sh", "-c", shell_prefix + " && exec \"$0\" \"$@\""});
    }
    coordinator_ = spawnChild(argv, (dir() / "coordinator.log").string());
    waitFor(
        [&] {
          if (coordinator_.poll()) throw std::runtime_error("coordinator exited: " + log());
          try {
            zmq::context_t ctx;
            proto::RpcClient c(ctx, ping_endpoint, curve);
            c.call([](proto::Message::Builder m) { m.setPing(); }, milliseconds(500));
            return true;
          } catch (const Error&) {
            return false;
          }
        },
        seconds(20), "the coordinator to answer on " + ping_endpoint);
  }

  std::unique_ptr<TempDir> dir_;
  Child coordinator_;
};

// A DEALER speaking the control protocol by hand.
class Peer {
 public:
  Peer(zmq::context_t& ctx, const std::string& endpoint, const std::string& routing_id = "",
       std::optional<proto::CurveClientKeys> curve = std::nullopt)
      : sock_(ctx, zmq::socket_type::dealer) {
    proto::applySocketLimits(sock_);
    if (curve) proto::makeCurveClient(sock_, curve->own, curve->server_public);
    if (!routing_id.empty()) sock_.set(zmq::sockopt::routing_id, routing_id);
    sock_.connect(endpoint);
  }
  void send(uint64_t id, const proto::Fill& fill) {
    sock_.send(proto::buildMessage(id, fill), zmq::send_flags::none);
  }
  void hello(const std::string& name, const std::string& data_endpoint, uint64_t id = 1) {
    send(id, [&](proto::Message::Builder m) {
      auto h = m.initHello();
      h.setName(name);
      h.setDataEndpoint(data_endpoint);
    });
  }
  void heartbeat(const std::string& name, size_t containers = 0, const std::string& prefix = "c",
                 uint64_t id = 2) {
    send(id, [&](proto::Message::Builder m) {
      auto hb = m.initHeartbeat();
      hb.setName(name);
      auto list = hb.initContainers(static_cast<unsigned>(containers));
      for (size_t i = 0; i < containers; ++i) {
        list[static_cast<unsigned>(i)].setName(prefix + std::to_string(i));
        list[static_cast<unsigned>(i)].setHost(name);
        list[static_cast<unsigned>(i)].setStatus("running");
      }
    });
  }
  // The next frame within `wait`, raw.
  std::optional<std::string> raw(milliseconds wait) {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, wait) <= 0) return std::nullopt;
    zmq::message_t f;
    if (!sock_.recv(f, zmq::recv_flags::dontwait)) return std::nullopt;
    return f.to_string();
  }
  // The answer to request `id` (ok: ""; an error: its message), or nullopt
  // when none came within `wait`.
  std::optional<std::string> answer(uint64_t id, milliseconds wait = milliseconds(5000)) {
    auto deadline = std::chrono::steady_clock::now() + wait;
    while (std::chrono::steady_clock::now() < deadline) {
      auto f = raw(milliseconds(200));
      if (!f) continue;
      zmq::message_t copy(f->data(), f->size());
      proto::Decoded d(copy);
      auto m = d.root<proto::Message>();
      if (m.getId() != id) continue;
      return m.isError() ? std::string(m.getError().getMessage().cStr()) : std::string();
    }
    return std::nullopt;
  }
  zmq::socket_t& socket() { return sock_; }

 private:
  zmq::socket_t sock_;
};

std::vector<std::string> hostNames(proto::RpcClient& cli) {
  auto r = cli.call([](proto::Message::Builder m) { m.setListHosts(); }, seconds(5));
  std::vector<std::string> names;
  for (auto h : r->root<proto::Message>().getHosts()) {
    names.push_back(std::string(h.getName().cStr()) + "@" + h.getDataEndpoint().cStr());
  }
  return names;
}

// The audit's finding: with CurveZMQ on, the CLI's key connected under the
// routing id "hostA" (which the agent used) and received a secret value
// meant for hostA. The coordinator now sends hostA's commands only to the
// connection that proved, by hostA's key, to be hostA.
TEST_F(ControlPlane, ACliKeyUnderAHostsRoutingIdGetsNoneOfItsCommands) {
  makeKeys();
  std::string ep = "tcp://127.0.0.1:" + std::to_string(kKeysPort);
  proto::CurveClientKeys client{key("client"), coordinatorPub()};
  startCoordinator({"--listen", ep, "--keys", (dir() / "keys").string()}, ep, client);
  zmq::context_t ctx;
  // hostA's agent, as agents connected before: hostA's key, routing id hostA.
  Peer agent(ctx, ep, "hostA", proto::CurveClientKeys{key("hostA"), coordinatorPub()});
  agent.hello("hostA", "tcp://127.0.0.2:1");
  ASSERT_EQ(agent.answer(1), "") << log();
  proto::RpcClient cli(ctx, ep, client);
  waitFor([&] { return hostsUp(cli)["hostA"]; }, seconds(10), "hostA to be up");
  // The thief: the CLI's key, routing id hostA.
  Peer thief(ctx, ep, "hostA", client);
  thief.send(7, [](proto::Message::Builder m) { m.setPing(); });
  (void)thief.answer(7, milliseconds(1000));

  const std::string value = "the-secret-value-" + std::to_string(randomU64());
  std::thread create([&] {
    try {
      cli.call(
          [&](proto::Message::Builder m) {
            auto s = m.initSecret();
            s.setHost("hostA");
            s.setOp(proto::Message::Secret::Op::CREATE);
            s.setName("db-password");
            s.setValue(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(value.data()),
                                           value.size()));
          },
          seconds(10));
    } catch (const Error&) {
      // Whatever the answer: what matters is who saw the value.
    }
  });
  bool agent_saw = false, thief_saw = false;
  auto until = std::chrono::steady_clock::now() + seconds(8);
  while (std::chrono::steady_clock::now() < until && !agent_saw) {
    if (auto f = thief.raw(milliseconds(50)); f && f->find(value) != std::string::npos) {
      thief_saw = true;
    }
    agent.heartbeat("hostA", 0, "c", 3);  // keeps hostA up
    if (auto f = agent.raw(milliseconds(200)); f && f->find(value) != std::string::npos) {
      agent_saw = true;
      zmq::message_t copy(f->data(), f->size());
      proto::Decoded d(copy);
      agent.send(d.root<proto::Message>().getId(), [](proto::Message::Builder m) { m.setOk(); });
    }
  }
  for (int i = 0; i < 5 && !thief_saw; ++i) {
    if (auto f = thief.raw(milliseconds(200)); f && f->find(value) != std::string::npos) {
      thief_saw = true;
    }
  }
  create.join();
  EXPECT_FALSE(thief_saw) << "a client key under routing id hostA received hostA's secret";
  EXPECT_TRUE(agent_saw) << "hostA's agent never received its command; log:\n" << log();
}

// A hello names a host and where its data plane is; only that host's key
// may say it. And a CLI's key may send no agent's message at all.
TEST_F(ControlPlane, AHelloOrHeartbeatForAHostFromAnotherKeyIsRefusedAndNotStored) {
  makeKeys();
  std::string ep = "tcp://127.0.0.1:" + std::to_string(kKeysPort);
  proto::CurveClientKeys client{key("client"), coordinatorPub()};
  startCoordinator({"--listen", ep, "--keys", (dir() / "keys").string()}, ep, client);
  zmq::context_t ctx;
  Peer host_a(ctx, ep, "", proto::CurveClientKeys{key("hostA"), coordinatorPub()});
  host_a.hello("hostB", "tcp://127.0.0.66:1", 11);
  auto a = host_a.answer(11);
  ASSERT_TRUE(a.has_value()) << log();
  EXPECT_NE(a->find("not host hostB"), std::string::npos) << *a;
  Peer cli_key(ctx, ep, "", client);
  cli_key.hello("hostB", "tcp://127.0.0.66:1", 12);
  auto c = cli_key.answer(12);
  ASSERT_TRUE(c.has_value());
  EXPECT_NE(c->find("refused"), std::string::npos) << *c;
  // hostA registers as itself; then the CLI's key heartbeats for it.
  host_a.hello("hostA", "tcp://127.0.0.2:1", 13);
  EXPECT_EQ(host_a.answer(13), "");
  cli_key.heartbeat("hostA", 1, "planted", 14);
  auto h = cli_key.answer(14);
  ASSERT_TRUE(h.has_value());
  EXPECT_NE(h->find("refused"), std::string::npos) << *h;

  proto::RpcClient cli(ctx, ep, client);
  EXPECT_EQ(hostNames(cli), std::vector<std::string>{"hostA@tcp://127.0.0.2:1"});
  EXPECT_TRUE(containersOn(cli, "hostA").empty());
  // And an agent's key makes no CLI request.
  host_a.send(15, [](proto::Message::Builder m) { m.setListHosts(); });
  auto l = host_a.answer(15);
  ASSERT_TRUE(l.has_value());
  EXPECT_NE(l->find("may not make requests"), std::string::npos) << *l;
}

// Without keys, TCP admits only the agents the coordinator was told of,
// each from its own address and as its own name, and no CLI; the CLI
// comes in on the unix socket.
TEST_F(ControlPlane, WithoutKeysTcpAdmitsOnlyToldAgentsFromTheirAddresses) {
  std::string sock = "ipc://" + (dir() / "c.sock").string();
  std::string tcp = "tcp://127.0.0.1:" + std::to_string(kPlainPort);
  // TCP with no agent address would admit every local user: refused.
  LocalCommandRunner r;
  ProcessResult bad = r.run({FERRY_COORDINATOR_BIN, "--state", (dir() / "s2").string(), "--listen",
                             tcp},
                            {.timeout = seconds(20)});
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("--agent-address"), std::string::npos) << bad.err;

  startCoordinator({"--listen", sock, "--listen", tcp, "--agent-address", "hostA=127.0.0.2"},
                   sock);
  zmq::context_t ctx;
  Peer stranger(ctx, "tcp://127.0.0.3:0;127.0.0.1:" + std::to_string(kPlainPort));
  stranger.hello("hostA", "tcp://127.0.0.3:1", 21);
  EXPECT_EQ(stranger.answer(21, milliseconds(2000)), std::nullopt);
  Peer from_a(ctx, "tcp://127.0.0.2:0;127.0.0.1:" + std::to_string(kPlainPort));
  from_a.hello("hostB", "tcp://127.0.0.2:1", 22);
  auto b = from_a.answer(22);
  ASSERT_TRUE(b.has_value()) << log();
  EXPECT_NE(b->find("not host hostB"), std::string::npos) << *b;
  from_a.hello("hostA", "tcp://127.0.0.2:1", 23);
  EXPECT_EQ(from_a.answer(23), "");
  from_a.send(24, [](proto::Message::Builder m) { m.setListHosts(); });
  auto l = from_a.answer(24);
  ASSERT_TRUE(l.has_value());
  EXPECT_NE(l->find("may not make requests"), std::string::npos) << *l;
  proto::RpcClient cli(ctx, sock);
  EXPECT_EQ(hostNames(cli), std::vector<std::string>{"hostA@tcp://127.0.0.2:1"});
}

// Hole 7: without keys, "loopback only" let every local user in. A local
// cluster's coordinator now listens on a unix socket that admits root only:
// nobody's CLI is refused, saying why.
TEST_F(ControlPlane, WithoutKeysALocalUserOtherThanRootIsRefusedWithAClearMessage) {
  FERRY_REQUIRE_PREREQUISITES();
  cluster::ClusterOptions o{.hosts = 1,
                            .dir = dir() / "cluster",
                            .heartbeat = milliseconds(200),
                            .wait = seconds(30),
                            .bin_dir = fs::path(FERRY_COORDINATOR_BIN).parent_path()};
  cluster::ClusterState s = cluster::up(o);
  // A copy of the CLI that nobody may run, wherever the build tree is.
  fs::path bin = dir() / "bin";
  makeDirs(bin, 0755);
  fs::copy_file(FERRY_BIN, bin / "ferry");
  ::chmod((bin / "ferry").c_str(), 0755);
  LocalCommandRunner r;
  ProcessResult root = r.run({FERRY_BIN, "--coordinator", s.coordinator_endpoint, "hosts"},
                             {.timeout = seconds(30)});
  EXPECT_EQ(root.exit_code, 0) << root.err;
  ProcessResult nobody =
      r.run({"su", "nobody", "-s", "/bin/sh", "-c",
             (bin / "ferry").string() + " --timeout 5 --coordinator " + s.coordinator_endpoint +
                 " hosts"},
            {.timeout = seconds(30)});
  EXPECT_EQ(nobody.exit_code, 1) << nobody.out << nobody.err;
  EXPECT_NE(nobody.err.find("permission denied"), std::string::npos) << nobody.err;
  EXPECT_EQ(nobody.out.find("hostA"), std::string::npos) << nobody.out;
  cluster::DownReport d = cluster::down(o.dir);
  EXPECT_TRUE(d.problems.empty());
}

// Hole 6: a heartbeat's containers are bounded, and what no heartbeat
// names any more is forgotten (a flood of ever-new names grew the
// coordinator by 43 MB a run).
TEST_F(ControlPlane, AHeartbeatFloodLeavesTheCoordinatorBounded) {
  std::string sock = "ipc://" + (dir() / "c.sock").string();
  startCoordinator({"--listen", sock}, sock);
  zmq::context_t ctx;
  // hostA's agent over the unix socket (root: trusted as any host).
  Peer agent(ctx, sock);
  agent.hello("hostA", "tcp://127.0.0.2:1", 31);
  ASSERT_EQ(agent.answer(31), "");
  proto::RpcClient cli(ctx, sock);
  agent.heartbeat("hostA", 5000, "big", 32);
  ASSERT_EQ(agent.answer(32), "");
  EXPECT_EQ(containersOn(cli, "hostA").size(), 4096u);
  for (int round = 0; round < 30; ++round) {
    agent.heartbeat("hostA", 100, "r" + std::to_string(round) + "-", 100 + round);
    ASSERT_EQ(agent.answer(100 + round), "");
  }
  auto left = containersOn(cli, "hostA");
  EXPECT_EQ(left.size(), 100u);
  EXPECT_TRUE(left.count("r29-0"));
  EXPECT_NE(log().find("5000 containers reported, kept the first 4096"), std::string::npos)
      << log();
}

// A TCP connection from `from` to 127.0.0.1:port, not waiting for it.
int connectFrom(const char* from, int port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in src{}, dst{};
  src.sin_family = dst.sin_family = AF_INET;
  ::inet_pton(AF_INET, from, &src.sin_addr);
  ::bind(fd, reinterpret_cast<sockaddr*>(&src), sizeof src);
  dst.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
  ::connect(fd, reinterpret_cast<sockaddr*>(&dst), sizeof dst);
  return fd;
}

// Whether the other end has closed `fd` (EOF or reset), reading what came.
bool closedByPeer(int fd) {
  char buf[512];
  for (;;) {
    ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0) return true;
    if (n < 0) return errno != EAGAIN && errno != EWOULDBLOCK && errno != EINPROGRESS &&
                      errno != ENOTCONN;
  }
}

// Hole 6: 150 idle connections under a low fd limit had the coordinator
// spinning on accept(2)'s EMFILE and answering no one. Now it keeps its
// connections below the limit, shuts down the newest past it, and goes on
// answering while the flood is held open.
TEST_F(ControlPlane, AConnectionFloodUnderALowFdLimitLeavesItAnswering) {
  std::string sock = "ipc://" + (dir() / "c.sock").string();
  int port = kPlainPort + 1;
  startCoordinator({"--listen", sock, "--listen", "tcp://127.0.0.1:" + std::to_string(port),
                    "--agent-address", "hostA=127.0.0.2"},
                   sock, std::nullopt, "ulimit -n 64");
  std::vector<UniqueFd> flood;
  for (int i = 0; i < 150; ++i) flood.emplace_back(connectFrom("127.0.0.3", port));
  // The flood stays open; the coordinator answers.
  zmq::context_t ctx;
  proto::RpcClient cli(ctx, sock);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NO_THROW(cli.call([](proto::Message::Builder m) { m.setPing(); }, seconds(30)))
        << log();
  }
  // Every idle connection is let go, past the cap at once, the others when
  // their handshake times out.
  waitFor(
      [&] {
        for (auto& fd : flood) {
          if (fd && closedByPeer(fd.get())) fd.reset();
        }
        return std::all_of(flood.begin(), flood.end(), [](const UniqueFd& f) { return !f; });
      },
      seconds(60), "the coordinator to close every idle connection");
  EXPECT_NO_THROW(cli.call([](proto::Message::Builder m) { m.setPing(); }, seconds(30)));
}

// Hole 6: ZeroMQ heartbeats drop a dead peer. A peer that speaks ZMTP's
// handshake (by hand, from a told agent address) and then nothing -- no
// answer to the coordinator's PINGs, as a host that vanished -- is closed
// by the coordinator; without heartbeats it held its connection for ever.
TEST_F(ControlPlane, APeerThatStopsAnsweringHeartbeatsIsDropped) {
  std::string sock = "ipc://" + (dir() / "c.sock").string();
  int port = kPlainPort + 2;
  startCoordinator({"--listen", sock, "--listen", "tcp://127.0.0.1:" + std::to_string(port),
                    "--agent-address", "hostA=127.0.0.2"},
                   sock);
  UniqueFd fd(connectFrom("127.0.0.2", port));
  int flags = ::fcntl(fd.get(), F_GETFL);
  ::fcntl(fd.get(), F_SETFL, flags & ~O_NONBLOCK);
  timeval tv{.tv_sec = 5, .tv_usec = 0};
  ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  waitFor(
      [&] {
        sockaddr_storage ss{};
        socklen_t len = sizeof ss;
        return ::getpeername(fd.get(), reinterpret_cast<sockaddr*>(&ss), &len) == 0;
      },
      seconds(10), "the connection to be established");
  // ZMTP 3.0 greeting: signature, version 3.0, mechanism NULL, as client.
  std::string greeting(64, '\0');
  greeting[0] = '\xff';
  greeting[9] = '\x7f';
  greeting[10] = 3;
  greeting.replace(12, 4, "NULL");
  ASSERT_EQ(::send(fd.get(), greeting.data(), greeting.size(), MSG_NOSIGNAL), 64);
  std::string ready = std::string("\x05READY") + "\x0bSocket-Type" + std::string("\0\0\0\x06", 4) +
                      "DEALER";
  std::string command = std::string("\x04") + static_cast<char>(ready.size()) + ready;
  ASSERT_EQ(::send(fd.get(), command.data(), command.size(), MSG_NOSIGNAL),
            static_cast<ssize_t>(command.size()));
  // The coordinator's greeting and READY: the handshake is done.
  std::string got;
  char buf[256];
  while (got.find("READY") == std::string::npos) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    ASSERT_GT(n, 0) << "no READY from the coordinator; log:\n" << log();
    got.append(buf, static_cast<size_t>(n));
  }
  // Now silence: PINGs come and go unanswered, until the coordinator hangs up.
  auto start = std::chrono::steady_clock::now();
  bool closed = false;
  while (!closed && std::chrono::steady_clock::now() - start < seconds(40)) {
    ssize_t n = ::recv(fd.get(), buf, sizeof buf, 0);
    closed = n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
  }
  EXPECT_TRUE(closed) << "a peer that answers no heartbeat kept its connection for 40 s";
}

}  // namespace
}  // namespace ferry::testing
