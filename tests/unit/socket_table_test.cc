#include "engine/runtime/socket_table.h"

#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/error.h"
#include "common/fs.h"
#include "tests/support/error_of.h"

namespace ferry {
namespace {

using test::errorOf;

// Lines as Linux 6.x prints them (x86: each word in little-endian order).
const char* kTcp =
    "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
    "   0: 00000000:1B58 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1\n"
    "   1: 0500420A:1B58 010011AC:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1\n"
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

TEST(SocketTable, FindsThisProcesssOwnListeningSocket) {
  int s = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(s, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(s, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
  bool found = false;
  for (const auto& e : readSockets(::getpid())) {
    if (e.protocol == "tcp" && e.local == "127.0.0.1" && e.port == ntohs(a.sin_port) && e.listening())
      found = true;
  }
  ::close(s);
  EXPECT_TRUE(found);
}

}  // namespace
}  // namespace ferry
