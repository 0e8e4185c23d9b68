// `ferry cluster up --network CIDR` (tools/cluster_network.h) through the
// real `ferry` CLI: every host in a network namespace of its own, joined by a
// bridge, the containers' network routed from this machine via hostA. This
// process -- the machine that runs the cluster -- reaches a container on
// hostA and again once it moved to hostB; `ferry cluster down` leaves no
// namespace, link or route behind, also after an `up` that failed half-way.
//
// Every address the test connects to is first checked to be routed onto the
// cluster's bridge (never the default route).
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <set>

#include "common/ipv4.h"
#include "common/log.h"
#include "common/random.h"
#include "common/strings.h"
#include "engine/runtime/process.h"
#include "tests/integration/test_host.h"
#include "tools/cluster.h"

namespace ferry::testing {
namespace {

using nlohmann::json;
using std::chrono::seconds;

constexpr int kPort = 7395;  // not the default 7000, nor other tests' ports

struct CliResult {
  int exit_code = -1;
  std::string out, err;
};

// Lines of a command's output, as a set (what exists now).
std::set<std::string> linesOf(LocalCommandRunner& r, const std::vector<std::string>& argv) {
  ProcessResult p = r.run(argv, {});
  EXPECT_TRUE(p.ok()) << p.err;
  std::set<std::string> out;
  for (const auto& l : splitFields(p.out, '\n')) {
    if (!l.empty()) out.insert(l);
  }
  return out;
}

// Names of this machine's network namespaces, links and its main routes.
struct NetworkSnapshot {
  std::set<std::string> netns, links, routes;
  bool operator==(const NetworkSnapshot&) const = default;
};

NetworkSnapshot snapshot(LocalCommandRunner& r) {
  NetworkSnapshot s;
  for (const auto& l : linesOf(r, {"ip", "netns", "list"})) s.netns.insert(l.substr(0, l.find(' ')));
  for (const auto& l : linesOf(r, {"ip", "-o", "link", "show"})) {
    std::string name = splitFields(l, ' ').at(1);  // "7: NAME: <...>" / "NAME@if2:"
    s.links.insert(name.substr(0, name.find_first_of("@:")));
  }
  s.routes = linesOf(r, {"ip", "-4", "route", "show", "table", "main"});
  return s;
}

// What `after` has that `before` had not, one line each.
std::string added(const NetworkSnapshot& before, const NetworkSnapshot& after) {
  std::string out;
  auto diff = [&](const char* what, const std::set<std::string>& b, const std::set<std::string>& a) {
    for (const auto& x : a) {
      if (!b.count(x)) out += std::string("\n  ") + what + " " + x;
    }
  };
  diff("netns", before.netns, after.netns);
  diff("link", before.links, after.links);
  diff("route", before.routes, after.routes);
  return out;
}

// One line there and back on a new TCP connection: what came back ("" none).
std::string echoOnce(const std::string& ip, int port, const std::string& line) {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  timeval tv{3, 0};
  ::setsockopt(s.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  ::setsockopt(s.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(port));
  ::inet_pton(AF_INET, ip.c_str(), &a.sin_addr);
  if (::connect(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) return "";
  if (::write(s.get(), line.data(), line.size()) != static_cast<ssize_t>(line.size())) return "";
  std::string got;
  char c;
  while (got.size() < line.size()) {
    ssize_t r = ::read(s.get(), &c, 1);
    if (r < 0 && errno == EINTR) continue;  // a timed socket call is never restarted
    if (r != 1) break;
    got += c;
  }
  return got;
}

class ClusterNetworkTest : public ::testing::Test {
 protected:
  void SetUp() override {
    FERRY_REQUIRE_PREREQUISITES();
    dir_ = std::make_unique<TempDir>("/var/tmp", "ferry-cluster-net-test-");
    ::chmod(dir_->path().c_str(), 0711);
    before_ = snapshot(runner_);
    // The containers' range: one this machine does not route (the test
    // networks use 10.213 and 10.214, the cluster's links 10.212).
    cidr_ = cluster::freeSubnet(runner_, "10.215", ::getpid() % 256) + ".0/24";
  }

  void TearDown() override {
    // Whatever a failed test left up, its network included.
    if (dir_ && pathExists(dir() / "cluster.json")) {
      bestEffort("taking the test cluster down", [&] { cluster::down(dir()); });
    }
    dir_.reset();
  }

  const fs::path& dir() const { return dir_->path(); }

  CliResult ferry(std::vector<std::string> args) {
    std::vector<std::string> argv = {FERRY_BIN};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessResult p = runner_.run(argv, {.timeout = seconds(180)});
    return {p.exit_code, p.out, p.err};
  }

  // The CLI against the cluster up in dir().
  CliResult onCluster(std::vector<std::string> args) {
    std::vector<std::string> argv = {"--coordinator", state_.coordinator_endpoint, "--keys",
                                     state_.keys_dir.string(), "--timeout", "120"};
    argv.insert(argv.end(), args.begin(), args.end());
    return ferry(argv);
  }

  CliResult up(std::vector<std::string> extra = {}) {
    std::vector<std::string> args = {"cluster", "up",   "--network", cidr_, "--hosts", "2",
                                     "--dir",   dir(),  "--port",    std::to_string(kPort),
                                     "--bin-dir", fs::path(FERRY_AGENT_BIN).parent_path().string()};
    args.insert(args.end(), extra.begin(), extra.end());
    return ferry(args);
  }

  json container(const std::string& name) {
    CliResult r = onCluster({"--json", "ps"});
    EXPECT_EQ(r.exit_code, 0) << r.err;
    for (const auto& c : json::parse(r.out)) {
      if (c["name"] == name) return c;
    }
    return json();
  }

  // Whether `ip` is routed from here onto the cluster's bridge, via hostA:
  // asserted before every connection, so nothing goes off this machine.
  ::testing::AssertionResult routedHere(const std::string& ip) {
    std::string how = runner_.run({"ip", "-o", "route", "get", ip}, {}).out;
    if (how.find(" via " + state_.network.via + " dev " + state_.network.link.bridge + " ") ==
        std::string::npos) {
      return ::testing::AssertionFailure() << ip << " would leave by " << how;
    }
    return ::testing::AssertionSuccess();
  }

  std::unique_ptr<TempDir> dir_;
  LocalCommandRunner runner_;
  NetworkSnapshot before_;
  std::string cidr_;
  cluster::ClusterState state_;
};

TEST_F(ClusterNetworkTest, ThisMachineReachesAContainerBeforeAndAfterItMovesAndDownLeavesNothing) {
  CliResult u = up();
  ASSERT_EQ(u.exit_code, 0) << u.err << u.out;
  auto recorded = cluster::readState(dir());
  ASSERT_TRUE(recorded);
  state_ = *recorded;
  const cluster::ClusterNetwork& net = state_.network;
  ASSERT_EQ(net.cidr, cidr_);
  ASSERT_EQ(state_.hosts.size(), 2u);
  EXPECT_EQ(net.via, state_.hosts[0].address);
  // What up says: the containers' network and every host's address, each
  // host on the link in a namespace of its own.
  EXPECT_NE(u.out.find("cluster network " + cidr_), std::string::npos) << u.out;
  NetworkSnapshot running = snapshot(runner_);
  for (const auto& h : state_.hosts) {
    EXPECT_NE(u.out.find(h.name + " (" + h.address + ")"), std::string::npos) << u.out;
    EXPECT_TRUE(net.link.cidr().contains(parseIpv4(h.address))) << h.address;
    EXPECT_TRUE(running.netns.count(net.link.node(h.name).netns)) << h.name;
    EXPECT_EQ(h.launcher, cluster::launcher(net.link.node(h.name)));
  }
  EXPECT_TRUE(running.links.count(net.link.bridge));
  EXPECT_EQ(state_.coordinator_endpoint,
            "tcp://" + net.link.bridgeAddress() + ":" + std::to_string(kPort));

  // Right after up, a container gets an address: the agents' networks are ready.
  CliResult imp = onCluster({"image", "import", "counter", FERRY_TEST_IMAGE, "--all"});
  ASSERT_EQ(imp.exit_code, 0) << imp.err;
  // The coordinator learns of the image with each host's next heartbeat.
  waitFor([&] {
        json hosts = json::parse(onCluster({"--json", "hosts"}).out);
        for (const auto& h : hosts) {
          if (h["images"].empty()) return false;
        }
        return hosts.size() == 2;
      },
      seconds(20), "both hosts to report the image");
  CliResult run = onCluster({"run", "--host", "hostA", "--name", "echo", "counter",
                             "/usr/local/bin/apps", "echo", "7000"});
  ASSERT_EQ(run.exit_code, 0) << run.err << run.out;
  std::string ip = container("echo").value("ip", "");
  ASSERT_FALSE(ip.empty()) << container("echo").dump();
  EXPECT_TRUE(parseCidr(cidr_).contains(parseIpv4(ip))) << ip;
  ASSERT_TRUE(routedHere(ip));
  waitFor([&] { return echoOnce(ip, 7000, "hello\n") == "hello\n"; }, seconds(20),
          "the echo server on hostA to answer at " + ip);

  CliResult mig = onCluster({"migrate", "echo", "hostA", "hostB"});
  ASSERT_EQ(mig.exit_code, 0) << mig.err << mig.out;
  EXPECT_EQ(container("echo")["host"], "hostB");
  // It keeps its address. (Waited for: right after `migrate` returned,
  // `ps` once in five runs showed it on hostB with no address for a moment,
  // then with its own; the coordinator's listing, not the route here.)
  waitFor([&] { return container("echo")["ip"] == ip; }, seconds(10),
          "ps to show echo at " + ip + " on hostB");
  ASSERT_TRUE(routedHere(ip));
  waitFor([&] { return echoOnce(ip, 7000, "moved\n") == "moved\n"; }, seconds(20),
          "the echo server on hostB to answer at " + ip);

  CliResult d = ferry({"--json", "cluster", "down", "--dir", dir()});
  ASSERT_EQ(d.exit_code, 0) << d.err << d.out;
  EXPECT_EQ(json::parse(d.out)["problems"], json::array()) << d.out;
  EXPECT_EQ(json::parse(d.out)["containers_removed"], 1) << d.out;
  EXPECT_FALSE(pathExists(dir() / "cluster.json"));
  // No namespace (the hosts' and the container's), veth, bridge or route of
  // the cluster is left.
  NetworkSnapshot after = snapshot(runner_);
  EXPECT_EQ(added(before_, after), "");
  // (Never connect to it now: without the route, its address would go by
  // the default route, off this machine.)
  std::string how = runner_.run({"ip", "-o", "route", "get", ip}, {}).out;
  EXPECT_EQ(how.find(" dev " + net.link.bridge + " "), std::string::npos) << how;
}

TEST_F(ClusterNetworkTest, AnUpThatFailsHalfWayLeavesNoNetworkBehind) {
  // The agents exit at once (an option they do not know): up has made the
  // namespaces, the bridge and the route by then.
  CliResult u = up({"--agent-arg", "--no-such-option"});
  EXPECT_EQ(u.exit_code, 1) << u.err << u.out;
  EXPECT_NE(u.err.find("exited during startup"), std::string::npos) << u.err;
  EXPECT_FALSE(pathExists(dir() / "cluster.json"));
  EXPECT_EQ(added(before_, snapshot(runner_)), "");
}

TEST_F(ClusterNetworkTest, ARangeThisMachineRoutesIsRefusedBeforeAnythingIsMade) {
  // The machine's own routes, e.g. its loopback range.
  cidr_ = "127.0.0.0/16";
  CliResult u = up();
  EXPECT_EQ(u.exit_code, 1) << u.err << u.out;
  EXPECT_NE(u.err.find("--network 127.0.0.0/16 overlaps 127.0.0."), std::string::npos) << u.err;
  EXPECT_EQ(added(before_, snapshot(runner_)), "");
}

}  // namespace
}  // namespace ferry::testing
