// Post-copy's guard of CRIU's page server, with real nftables and real
// sockets: while a port is guarded, a process of another user cannot
// connect to it on 127.0.0.1 and root can; unguarded, anyone can again.
#include "engine/runtime/page_server_guard.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "common/fd.h"

namespace ferry {
namespace {

// Connects to 127.0.0.1:port from a child running as `uid`: 0 when it
// connected, else its errno.
int connectAs(uid_t uid, uint16_t port) {
  pid_t pid = ::fork();
  if (pid == 0) {
    if (uid != 0 && (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0)) {
      ::_exit(200);
    }
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = ::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    ::_exit(rc == 0 ? 0 : errno);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

// A connection `uid` opened before the port was guarded still carries bytes
// both ways after: only new connections are refused (the port may be handed
// out again while in the set). 0 when it did, else the child's failure.
// `listener` must have nothing else queued: its next connection is the child's.
int establishedConnectionLivesOn(CommandRunner& runner, uid_t uid, int listener, uint16_t port) {
  const timeval bound{5, 0};  // neither side waits for ever
  ::setsockopt(listener, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
  int go[2];
  if (::pipe(go) != 0) return 254;
  pid_t pid = ::fork();
  if (pid == 0) {
    ::close(go[1]);
    if (::setresgid(uid, uid, uid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(200);
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) ::_exit(201);
    char c;
    if (::read(go[0], &c, 1) != 1) ::_exit(202);  // the port is guarded now
    if (::write(s, "x", 1) != 1) ::_exit(203);
    if (::read(s, &c, 1) != 1 || c != 'y') ::_exit(204);
    ::_exit(0);
  }
  ::close(go[0]);
  UniqueFd conn(::accept(listener, nullptr, nullptr));
  int result = 255;
  if (conn.get() >= 0) {
    ::setsockopt(conn.get(), SOL_SOCKET, SO_RCVTIMEO, &bound, sizeof bound);
    PageServerPortGuard guard(runner, port);
    char c = 0;
    if (::write(go[1], "g", 1) == 1 && ::read(conn.get(), &c, 1) == 1 && c == 'x' &&
        ::write(conn.get(), "y", 1) == 1) {
      result = 0;
    }
  }
  ::close(go[1]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  if (result != 0) return result;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 255;
}

// The guard's rule, as nft lists it: how many times it is there.
int rulesInChain(CommandRunner& runner) {
  ProcessResult r = runner.run(
      {"nft", std::string("list chain inet ") + kPageServerGuardTable + " output"}, {});
  int n = 0;
  for (size_t at = 0; (at = r.out.find("reject with tcp reset", at)) != std::string::npos; ++at) ++n;
  return n;
}

TEST(PageServerGuard, OnlyRootConnectsToAGuardedPort) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root (nftables, another uid)";
  LocalCommandRunner runner;
  ASSERT_EQ(installPageServerGuard(runner), "");
  ASSERT_TRUE(pageServerGuardInstalled(runner));
  uint16_t port = 0;
  UniqueFd listener = boundLoopbackSocket(&port, 16, "the test's page server");
  const uid_t nobody = 65534;
  ASSERT_EQ(connectAs(nobody, port), 0) << "unguarded, anyone connects";
  {
    PageServerPortGuard guard(runner, port);
    EXPECT_EQ(connectAs(nobody, port), ECONNREFUSED) << "another user connected to a guarded port";
    EXPECT_EQ(connectAs(0, port), 0) << "root (the agent) could not connect";
    // An agent starting beside it makes the guard again: the port stays
    // guarded, and the rule is there once.
    ASSERT_EQ(installPageServerGuard(runner), "");
    EXPECT_EQ(connectAs(nobody, port), ECONNREFUSED) << "a second install dropped the port";
    EXPECT_EQ(rulesInChain(runner), 1);
  }
  EXPECT_EQ(connectAs(nobody, port), 0) << "the port stayed guarded after its guard ended";
  {
    uint16_t fresh_port = 0;  // nothing queued on it yet
    UniqueFd fresh = boundLoopbackSocket(&fresh_port, 4, "the test's second server");
    EXPECT_EQ(establishedConnectionLivesOn(runner, nobody, fresh.get(), fresh_port), 0)
        << "a connection made before the guard was cut by it";
  }
  // A guard whose agent was killed never ends: its port leaves the set by
  // itself (the element has a timeout).
  ProcessResult added = runner.run(
      {"nft", "add element inet " + std::string(kPageServerGuardTable) + " ports { " +
                  std::to_string(port) + " timeout 1s }"},
      {});
  ASSERT_TRUE(added.ok()) << added.err;
  EXPECT_EQ(connectAs(nobody, port), ECONNREFUSED);
  // It goes within a few seconds of its 1 s (nftables expires elements as
  // it runs its garbage collection): polled, not slept.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  int got = ECONNREFUSED;
  while (got != 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    got = connectAs(nobody, port);
  }
  EXPECT_EQ(got, 0) << "an element outlived its timeout by 10 s";
}

}  // namespace
}  // namespace ferry
