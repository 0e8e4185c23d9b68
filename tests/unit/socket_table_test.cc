#include "engine/runtime/socket_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"
#include "tests/support/error_of.h"

namespace ferry {
namespace {

using test::errorOf;

// Lines as Linux 6.x prints them (x86: each word in little-endian order).
const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 0500420A:1B58 010011AC:C350 01 00000000:00000000 00:00000000 00000000  1234        0 2 1\n"
    "   2: 0100007F:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 3 1\n"
    "   3: 0900420A:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4 1\n";
const char* kUdp6 =
    "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"
    "    0: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n"
    "    1: 0000000000000000FFFF00000500420A:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n"
    "    2: 000080FE00000000FF6602001900FEFF:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n"
    "    3: 0000B80D000000000000000001000000:0035 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1 2 0 0\n";

TEST(SocketTable, ReadsAddressesPortsAndStates) {
  auto t = parseSocketTable(kTcp, "tcp");
  ASSERT_EQ(t.size(), 4u);
  EXPECT_EQ(t[0].local, "0.0.0.0");
  EXPECT_EQ(t[0].port, 7000);
  EXPECT_TRUE(t[0].listening());
  EXPECT_TRUE(t[0].unbound());
  EXPECT_EQ(t[1].local, "10.66.0.5");
  EXPECT_EQ(t[1].state, 1);
  EXPECT_EQ(t[1].remote, "172.17.0.1");
  EXPECT_EQ(t[1].remote_port, 50000);
  EXPECT_EQ(t[1].uid, 1234u);
  EXPECT_EQ(t[0].uid, 0u);
  EXPECT_EQ(t[0].remote, "0.0.0.0");
  EXPECT_EQ(t[2].local, "127.0.0.1");
  auto u = parseSocketTable(kUdp6, "udp6");
  ASSERT_EQ(u.size(), 4u);
  EXPECT_EQ(u[0].local, "::1");
  EXPECT_EQ(u[0].port, 53);
  EXPECT_EQ(u[1].local, "::ffff:10.66.0.5");
  EXPECT_EQ(u[2].local.rfind("fe80::", 0), 0u) << u[2].local;
  EXPECT_EQ(u[3].local, "db8::1");
}

TEST(SocketTable, KeepsItsOwnAddressLoopbackAndAnyAndNamesWhatItCannotKeep) {
  Ipv4 own = parseIpv4("10.66.0.5");
  auto t = parseSocketTable(kTcp, "tcp");
  for (int i : {0, 1, 2}) EXPECT_FALSE(whyNotKept(t[i], own)) << t[i].local;
  auto why = whyNotKept(t[3], own);
  ASSERT_TRUE(why);
  EXPECT_EQ(*why, "a listening TCP socket on 10.66.0.9 port 80, an address that is not its own "
                  "(10.66.0.5) and that the target will not have");
  auto u = parseSocketTable(kUdp6, "udp6");
  for (int i : {0, 1, 2}) EXPECT_FALSE(whyNotKept(u[i], own)) << u[i].local;
  ASSERT_TRUE(whyNotKept(u[3], own));
  EXPECT_NE(whyNotKept(u[3], own)->find("a UDP socket on db8::1 port 53"), std::string::npos);
}

TEST(SocketTable, ALineItCannotReadIsAnErrorNotASocketLessNamespace) {
  std::string bad = std::string(kTcp) + "   4: 0100007F 00000000:0000 0A\n";
  EXPECT_NE(errorOf([&] { parseSocketTable(bad, "tcp"); }).find("cannot read a line of /proc/net/tcp"),
            std::string::npos);
}

// A TCP socket listening on 127.0.0.1 (a free port), and that port.
std::pair<UniqueFd, uint16_t> loopbackListener() {
  UniqueFd s(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (!s || ::bind(s.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      ::listen(s.get(), 1) != 0) {
    throwErrno("a loopback listener");
  }
  socklen_t len = sizeof a;
  ::getsockname(s.get(), reinterpret_cast<sockaddr*>(&a), &len);
  return {std::move(s), ntohs(a.sin_port)};
}

TEST(SocketTable, FindsThisProcesssOwnListeningSocket) {
  auto [s, port] = loopbackListener();
  bool found = false;
  for (const auto& e : readSockets(::getpid())) {
    if (e.protocol == "tcp" && e.local == "127.0.0.1" && e.port == port && e.listening()) found = true;
  }
  EXPECT_TRUE(found);
}

// Both ends of a loopback connection, with their owner: how the agent tells
// CRIU's page-server connection (root's) from another process's.
TEST(SocketTable, FindsBothEndsOfALoopbackConnectionAndTheirOwner) {
  auto [l, port] = loopbackListener();
  UniqueFd c(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  to.sin_port = htons(port);
  ASSERT_EQ(::connect(c.get(), reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
  sockaddr_in from{};
  socklen_t len = sizeof from;
  ::getsockname(c.get(), reinterpret_cast<sockaddr*>(&from), &len);
  int found = 0;
  for (const auto& e : readSockets(::getpid())) {
    if (e.protocol != "tcp" || e.state != 1) continue;
    if (e.port == ntohs(from.sin_port) && e.remote_port == port && e.remote == "127.0.0.1") {
      EXPECT_EQ(e.uid, ::getuid());
      ++found;
    }
  }
  EXPECT_EQ(found, 1);
}

}  // namespace
}  // namespace ferry
