// The daemons under systemd (Type=notify), on a local cluster: the test is
// the service manager's end of sd_notify(3) -- a datagram socket named by
// NOTIFY_SOCKET -- and checks what arrives there: READY=1 once serving,
// WATCHDOG=1 at half the WatchdogSec interval while the loop turns, and
// STOPPING=1 on SIGTERM. The agent's containers must not see its socket:
// runc, given NOTIFY_SOCKET, would wait for each container's own READY=1.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <gtest/gtest.h>

#include "tests/integration/cluster_fixture.h"

namespace ferry::testing {
namespace {

using std::chrono::milliseconds;
using std::chrono::seconds;

// The service manager's socket: what the daemon sent, one datagram each.
class NotifySocket {
 public:
  explicit NotifySocket(const fs::path& path) : path_(path) {
    fd_ = UniqueFd(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    if (::bind(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("binding " + path.string() + ": " + std::strerror(errno));
    }
  }
  std::string env() const { return "NOTIFY_SOCKET=" + path_.string(); }

  // The next datagram within `timeout`, or "" when none came.
  std::string next(milliseconds timeout) {
    pollfd p{fd_.get(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) != 1) return "";
    char buf[4096];
    ssize_t n = ::recv(fd_.get(), buf, sizeof buf, 0);
    return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
  }

  // Datagrams until one holds `what` (returned), or "" after `timeout`;
  // every one read is kept in seen().
  std::string until(const std::string& what, milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string d = next(std::chrono::duration_cast<milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (d.empty()) continue;
      seen_.push_back(d);
      if (d.find(what) != std::string::npos) return d;
    }
    return "";
  }
  // How many WATCHDOG=1 arrive within `window`.
  int watchdogsWithin(milliseconds window) {
    int n = 0;
    auto deadline = std::chrono::steady_clock::now() + window;
    while (std::chrono::steady_clock::now() < deadline) {
      std::string d = next(std::chrono::duration_cast<milliseconds>(
          deadline - std::chrono::steady_clock::now()));
      if (d == "WATCHDOG=1") ++n;
      if (!d.empty()) seen_.push_back(d);
    }
    return n;
  }
  std::string seen() const {
    std::string all;
    for (const auto& d : seen_) all += "[" + d + "] ";
    return all;
  }

 private:
  fs::path path_;
  UniqueFd fd_;
  std::vector<std::string> seen_;
};

class Service : public ClusterMigration {};

TEST_F(Service, TheAgentSaysReadyPetsItsWatchdogAndItsContainersStartWithoutItsSocket) {
  NotifySocket sd(fs::path(dir_) / "notify-agent.sock");
  ::kill(host("hostA").pid, SIGTERM);
  waitFor([&] { return !processAlive(host("hostA").pid); }, seconds(30), "hostA's agent to exit");
  // WatchdogSec=0.4s: a WATCHDOG=1 every 200 ms.
  Child agent = startAgent("hostA", {}, {}, {sd.env(), "WATCHDOG_USEC=400000"});
  std::string ready = sd.until("READY=1", seconds(20));
  ASSERT_NE(ready, "") << "no READY=1; got " << sd.seen();
  EXPECT_NE(ready.find("STATUS=serving"), std::string::npos) << ready;
  int pets = sd.watchdogsWithin(milliseconds(4000));
  EXPECT_GE(pets, 8) << sd.seen();   // 20 due; a loaded 2-core machine may miss some
  EXPECT_LE(pets, 24) << sd.seen();  // not on every turn of the 50 ms loop (80)

  // A container starts and counts: runc did not wait for a READY=1 of its
  // own, which it would with the agent's NOTIFY_SOCKET in its environment.
  CliResult r = ferry({"run", "--host", "hostA", "--name", "quiet", "counter",
                       "/usr/local/bin/counter", "--interval-ms", "50"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  expectCountingOn("hostA", "quiet");

  agent.kill(SIGTERM);
  std::string stopping = sd.until("STOPPING=1", seconds(20));
  EXPECT_NE(stopping, "") << sd.seen();
  auto status = agent.waitFor(seconds(30));
  ASSERT_TRUE(status.has_value()) << "the agent did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  // Stopped, not drained: the container runs on.
  expectCountingOn("hostA", "quiet");
  extra_agents_.push_back(startAgent("hostA", {}));  // the rest of the test's hosts as before
}

TEST_F(Service, TheCoordinatorSaysReadyOnceServingAndPetsItsWatchdog) {
  NotifySocket sd(fs::path(dir_) / "notify-coordinator.sock");
  ::kill(state_.coordinator_pid, SIGTERM);
  waitFor([&] { return !processAlive(state_.coordinator_pid); }, seconds(30),
          "the coordinator to exit");
  restartCoordinator({}, {sd.env(), "WATCHDOG_USEC=400000"});
  std::string ready = sd.until("READY=1", seconds(20));
  ASSERT_NE(ready, "") << "no READY=1; got " << sd.seen();
  EXPECT_NE(ready.find("STATUS=serving on " + state_.coordinator_endpoint), std::string::npos)
      << ready;
  // Ready means serving: the CLI is answered at once.
  CliResult hosts = ferry({"--json", "hosts"});
  EXPECT_EQ(hosts.exit_code, 0) << hosts.err;
  int pets = sd.watchdogsWithin(milliseconds(4000));
  EXPECT_GE(pets, 8) << sd.seen();
  EXPECT_LE(pets, 24) << sd.seen();
  extra_coordinator_->kill(SIGTERM);
  EXPECT_NE(sd.until("STOPPING=1", seconds(20)), "") << sd.seen();
  auto status = extra_coordinator_->waitFor(seconds(30));
  ASSERT_TRUE(status.has_value()) << "the coordinator did not exit on SIGTERM";
  EXPECT_TRUE(WIFEXITED(*status) && WEXITSTATUS(*status) == 0) << *status;
  restartCoordinator();  // for the fixture's teardown
}

}  // namespace
}  // namespace ferry::testing
