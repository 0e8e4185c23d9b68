// The container network on real hosts (network/host_network.h): two hosts,
// each a network namespace of a TestNetwork, their containers' namespaces
// and veths made by HostNetwork, the VXLAN overlay between them, published
// ports through nftables. Real sockets, made inside the namespaces, carry
// the bytes. No runc here: what a container adds on top is the agent's
// (agent_network_integration_test).
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "agent/agent_network.h"
#include "common/error.h"
#include "common/fd.h"
#include "engine/runtime/process.h"
#include "network/host_network.h"
#include "tests/integration/test_network.h"
#include "tests/support/ci.h"

namespace ferry {
namespace {

using network::ContainerAddress;
using network::HostNetwork;
using network::HostNetworkConfig;
using testing::TestNetwork;

// A shell that runs in `node`'s namespace (the host's), as the agent there
// would.
network::Shell shellIn(const TestNetwork& net, const std::string& node) {
  return [prefix = net.launcher(node), local = agent::localShell()](const std::vector<std::string>& argv,
                                                                    const std::string& input) {
    std::vector<std::string> full = prefix;
    full.insert(full.end(), argv.begin(), argv.end());
    return local(full, input);
  };
}

// A socket of the network namespace at `netns` ("" : this process's): made
// on a thread that entered it (setns of a network namespace is the calling
// thread's alone), usable from any thread after.
UniqueFd socketIn(const std::string& netns, int type) {
  UniqueFd result;
  std::string error;
  std::thread([&] {
    if (!netns.empty()) {
      UniqueFd ns(::open(netns.c_str(), O_RDONLY | O_CLOEXEC));
      if (!ns || ::setns(ns.get(), CLONE_NEWNET) != 0) {
        error = "entering " + netns + ": " + std::strerror(errno);
        return;
      }
    }
    result = UniqueFd(::socket(AF_INET, type | SOCK_CLOEXEC, 0));
    if (!result) error = std::string("socket: ") + std::strerror(errno);
  }).join();
  if (!error.empty()) throw std::runtime_error(error);
  return result;
}

sockaddr_in endpoint(const std::string& ip, uint16_t port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  return a;
}

// A TCP server in `netns` on port: answers each connection with `reply`
// (then closes). Runs until destroyed.
class Responder {
 public:
  Responder(const std::string& netns, uint16_t port, std::string reply) : reply_(std::move(reply)) {
    fd_ = socketIn(netns, SOCK_STREAM);
    int one = 1;
    ::setsockopt(fd_.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in a = endpoint("0.0.0.0", port);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd_.get(), 16) != 0) {
      throw std::runtime_error(std::string("listen: ") + std::strerror(errno));
    }
    thread_ = std::thread([this] {
      for (;;) {
        int c = ::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC);
        if (c < 0) return;  // shut down
        ssize_t ignored = ::write(c, reply_.data(), reply_.size());
        (void)ignored;
        ::close(c);
      }
    });
  }
  ~Responder() {
    ::shutdown(fd_.get(), SHUT_RDWR);
    thread_.join();
  }

 private:
  std::string reply_;
  UniqueFd fd_;
  std::thread thread_;
};

// What a server at ip:port says, connecting from `netns` ("" : here);
// "" when nothing answers within 3 s.
std::string ask(const std::string& netns, const std::string& ip, uint16_t port) {
  UniqueFd s = socketIn(netns, SOCK_STREAM);
  timeval tv{3, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a = endpoint(ip, port);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  std::string got;
  char buf[256];
  ssize_t n;
  while ((n = ::read(s.get(), buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
    if (n > 0) got.append(buf, static_cast<size_t>(n));  // EINTR: a timed socket call is never restarted
  }
  return got;
}

class HostNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (network namespaces)";
    net_ = std::make_unique<TestNetwork>(std::vector<std::string>{"hostA", "hostB"});
    // The cluster network: 10.214.N.0/24, N the test network's own.
    cidr_ = parseCidr("10.214." + net_->subnet().substr(7) + ".0/24");
    for (const char* h : {"hostA", "hostB"}) {
      HostNetworkConfig c{cidr_, parseIpv4(net_->address(h)), std::string(h) + net_->subnet().substr(7)};
      hosts_[h] = std::make_unique<HostNetwork>(c, shellIn(*net_, h));
    }
    // The machine reaches the cluster network through hostA, as `ferry
    // cluster up` routes it; and the route must lead onto the test bridge.
    LocalCommandRunner r;
    ASSERT_TRUE(r.run({"ip", "route", "add", toString(cidr_), "via", net_->address("hostA")}, {}).ok());
    std::string how = r.run({"ip", "-o", "route", "get", address(5)}, {}).out;
    ASSERT_NE(how.find(" dev " + net_->bridge() + " "), std::string::npos) << how;
  }
  void TearDown() override {
    // The route goes with the bridge, the containers' namespaces here.
    for (auto& [h, n] : hosts_) {
      for (const char* c : {"c1", "c2", "c3", "c4"}) n->detach(c);
    }
  }

  std::string address(int i) const { return toString(Ipv4{cidr_.network.value + static_cast<uint32_t>(i)}); }
  ContainerAddress at(int i) const {
    Ipv4 ip{cidr_.network.value + static_cast<uint32_t>(i)};
    return {ip, macFor(ip), {}};
  }

  std::unique_ptr<TestNetwork> net_;
  Cidr cidr_;
  std::map<std::string, std::unique_ptr<HostNetwork>> hosts_;
};

TEST_F(HostNetworkTest, ContainersOnTwoHostsReachEachOtherAndTheMachineReachesBoth) {
  HostNetwork& a = *hosts_["hostA"];
  HostNetwork& b = *hosts_["hostB"];
  a.setup();
  b.setup();
  a.setup();  // again, as a restarting agent: nothing breaks
  std::string ns1 = a.attach("c1", at(5)).string();
  std::string ns2 = b.attach("c2", at(6)).string();
  std::map<Ipv4, Ipv4> placement{{at(5).ip, parseIpv4(net_->address("hostA"))},
                                 {at(6).ip, parseIpv4(net_->address("hostB"))}};
  a.setRemote(placement);
  b.setRemote(placement);

  Responder s1(ns1, 7000, "c1 here");
  Responder s2(ns2, 7000, "c2 here");
  EXPECT_EQ(ask(ns1, address(6), 7000), "c2 here");  // across the overlay
  EXPECT_EQ(ask(ns2, address(5), 7000), "c1 here");
  EXPECT_EQ(ask("", address(5), 7000), "c1 here");  // the machine, via hostA
  EXPECT_EQ(ask("", address(6), 7000), "c2 here");  // via hostA, then the overlay
  // An address no container has goes nowhere (the blackhole), not out.
  EXPECT_EQ(ask(ns1, address(9), 7000), "");

  // A published port answers on its host's address, and only there.
  b.publish({{"c2", {at(6).ip, at(6).mac, {parsePublish("8080:7000")}}}});
  EXPECT_EQ(ask("", net_->address("hostB"), 8080), "c2 here");
  EXPECT_EQ(ask(ns1, net_->address("hostB"), 8080), "c2 here");
  EXPECT_EQ(ask("", net_->address("hostA"), 8080), "");
  b.publish({});
  EXPECT_EQ(ask("", net_->address("hostB"), 8080), "");
}

TEST_F(HostNetworkTest, AnAddressMovedToAnotherHostIsReachedThereWithItsMac) {
  HostNetwork& a = *hosts_["hostA"];
  HostNetwork& b = *hosts_["hostB"];
  a.setup();
  b.setup();
  Ipv4 ha = parseIpv4(net_->address("hostA"));
  Ipv4 hb = parseIpv4(net_->address("hostB"));
  std::string ns1 = a.attach("c1", at(5)).string();
  std::string ns2 = b.attach("c2", at(6)).string();
  a.setRemote({{at(5).ip, ha}, {at(6).ip, hb}});
  b.setRemote({{at(5).ip, ha}, {at(6).ip, hb}});
  {
    Responder s2(ns2, 7000, "c2 on B");
    ASSERT_EQ(ask("", address(6), 7000), "c2 on B");
  }
  // c2 moves to hostA, as a migration does: attached on the target first,
  // then the source lets go and routes to the target (commit).
  std::string moved = a.attach("c2", at(6)).string();
  b.detach("c2");
  b.routeRemote(at(6).ip, ha);
  Responder s2(moved, 7000, "c2 on A");
  EXPECT_EQ(ask("", address(6), 7000), "c2 on A");
  EXPECT_EQ(ask(ns1, address(6), 7000), "c2 on A");
  // From hostB's side too (its route now points at hostA).
  LocalCommandRunner r;
  std::vector<std::string> get = net_->launcher("hostB");
  for (const char* w : {"ip", "-o", "route", "get"}) get.push_back(w);
  get.push_back(address(6));
  EXPECT_NE(r.run(get, {}).out.find("via " + net_->address("hostA")), std::string::npos);
  // The address keeps its MAC on its new host.
  std::vector<std::string> show = {"nsenter", "--net=" + moved, "--", "ip", "-o", "link", "show", "eth0"};
  EXPECT_NE(r.run(show, {}).out.find(at(6).mac), std::string::npos);
  // The coordinator's placement catching up changes nothing that works.
  a.setRemote({{at(5).ip, ha}, {at(6).ip, ha}});
  b.setRemote({{at(5).ip, ha}, {at(6).ip, ha}});
  EXPECT_EQ(ask(ns1, address(6), 7000), "c2 on A");
  EXPECT_EQ(ask("", address(6), 7000), "c2 on A");
}

// What a connection attempt from this process met within `ms`: 0 an
// answer, ECONNREFUSED a reset, ETIMEDOUT nothing at all.
int connectOutcome(const std::string& ip, int port, int ms) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p{s.get(), POLLOUT, 0};
  if (::poll(&p, 1, ms) == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t len = sizeof err;
  ::getsockopt(s.get(), SOL_SOCKET, SO_ERROR, &err, &len);
  return err;
}

// A restore's namespace: reachable from the moment it has its address,
// while its sockets come back only with the restore. Made locked, a peer's
// packet meets silence there (it retransmits later), not a reset that would
// end its connection.
TEST_F(HostNetworkTest, ANamespaceAttachedLockedAnswersNothingNotEvenAResetUntilUnlocked) {
  HostNetwork& a = *hosts_["hostA"];
  a.setup();
  a.attach("c4", at(8), /*locked=*/true);
  EXPECT_EQ(connectOutcome(address(8), 7000, 500), ETIMEDOUT);
  a.unlock("c4");
  EXPECT_EQ(connectOutcome(address(8), 7000, 2000), ECONNREFUSED);  // no listener: a reset
  a.lock("c4");
  EXPECT_EQ(connectOutcome(address(8), 7000, 500), ETIMEDOUT);
}

TEST_F(HostNetworkTest, AClusterNetworkOverlappingAHostRouteIsRefusedNamingIt) {
  HostNetworkConfig c{parseCidr(net_->subnet() + ".0/24"), parseIpv4(net_->address("hostA")), "x"};
  c.cidr = parseCidr("10.213.0.0/16");
  HostNetwork clash(c, shellIn(*net_, "hostA"));
  try {
    clash.setup();
    ADD_FAILURE() << "an overlapping network was accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
    EXPECT_NE(std::string(e.what()).find(net_->subnet() + ".0/24"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--network-cidr"), std::string::npos) << e.what();
  }
}

TEST_F(HostNetworkTest, AFailedAttachLeavesNothingBehind) {
  HostNetwork& a = *hosts_["hostA"];
  a.setup();
  ContainerAddress bad = at(7);
  bad.mac = "not-a-mac";
  EXPECT_THROW(a.attach("c3", bad), Error);
  // One that would add a line of its own to `ip -batch` (a crafted record).
  bad.mac = "02:66:0a:d6:00:07\nroute replace default dev lo";
  EXPECT_THROW(a.attach("c3", bad), Error);
  LocalCommandRunner check;
  std::vector<std::string> routes = net_->launcher("hostA");
  for (const char* w : {"ip", "route", "show", "default"}) routes.push_back(w);
  EXPECT_EQ(check.run(routes, {}).out.find("dev lo"), std::string::npos);
  LocalCommandRunner r;
  EXPECT_EQ(r.run({"ip", "netns", "list"}, {}).out.find("ferry-hostA"), std::string::npos);
  std::vector<std::string> links = net_->launcher("hostA");
  for (const char* w : {"ip", "-o", "link", "show"}) links.push_back(w);
  EXPECT_EQ(r.run(links, {}).out.find(network::hostInterface("hostA" + net_->subnet().substr(7), "c3")),
            std::string::npos);
}

}  // namespace
}  // namespace ferry
