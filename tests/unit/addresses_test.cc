#include "coordinator/addresses.h"

#include <gtest/gtest.h>

#include <functional>

#include "common/error.h"
#include "tests/support/error_of.h"

namespace ferry::coord {
namespace {

using test::errorOf;

Ipv4 ip(const char* s) { return parseIpv4(s); }

TEST(Addresses, TheNextFreeAddressAfterTheLastOneGivenWrappingAround) {
  Cidr net = parseCidr("10.66.0.0/29");  // hosts .1 to .6
  std::map<Ipv4, std::string> used;
  EXPECT_EQ(toString(pickAddress(net, used, std::nullopt, Ipv4{})), "10.66.0.1");
  used[ip("10.66.0.1")] = "a";
  used[ip("10.66.0.2")] = "b";
  EXPECT_EQ(toString(pickAddress(net, used, std::nullopt, ip("10.66.0.1"))), "10.66.0.3");
  // .4 was given last and since released: not again at once.
  EXPECT_EQ(toString(pickAddress(net, used, std::nullopt, ip("10.66.0.4"))), "10.66.0.5");
  EXPECT_EQ(toString(pickAddress(net, used, std::nullopt, ip("10.66.0.6"))), "10.66.0.3");
  for (const char* taken : {"10.66.0.3", "10.66.0.4", "10.66.0.5", "10.66.0.6"}) used[ip(taken)] = taken;
  std::string e = errorOf([&] { pickAddress(net, used, std::nullopt, Ipv4{}); });
  EXPECT_NE(e.find("every address of the cluster network 10.66.0.0/29 is in use"), std::string::npos) << e;
  EXPECT_NE(e.find("--network none"), std::string::npos) << e;
}

TEST(Addresses, AnAskedAddressIsGivenWhenFreeAndRefusedSayingWhyOtherwise) {
  Cidr net = parseCidr("10.66.0.0/24");
  std::map<Ipv4, std::string> used{{ip("10.66.0.9"), "web"}};
  EXPECT_EQ(toString(pickAddress(net, used, ip("10.66.0.200"), Ipv4{})), "10.66.0.200");
  EXPECT_NE(errorOf([&] { pickAddress(net, used, ip("10.66.0.9"), Ipv4{}); }).find("in use by container web"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { pickAddress(net, used, ip("10.67.0.9"), Ipv4{}); })
                .find("--ip 10.67.0.9 is not on the cluster network 10.66.0.0/24"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { pickAddress(net, used, ip("10.66.0.0"), Ipv4{}); }).find("network address"),
            std::string::npos);
  EXPECT_NE(errorOf([&] { pickAddress(net, used, ip("10.66.0.255"), Ipv4{}); }).find("broadcast"),
            std::string::npos);
}

TEST(Addresses, AHostPortIsPublishedOncePerHostAndProtocol) {
  ContainerRow web{"web", "hostA", "img", "running", 0};
  web.ports = {"8080:80/tcp"};
  std::vector<ContainerRow> on_a{web};
  EXPECT_NO_THROW(checkPortsFree("hostA", {"8080:80/udp", "8081:80/tcp"}, on_a));
  EXPECT_NO_THROW(checkPortsFree("hostA", {"8080:80/tcp"}, on_a, "web"));  // itself
  std::string e = errorOf([&] { checkPortsFree("hostA", {"9090:90/tcp", "8080:81/tcp"}, on_a); });
  EXPECT_NE(e.find("host port 8080/tcp on hostA is published by container web"), std::string::npos) << e;
}

TEST(Addresses, AnAddressIsPlacedWhereItsContainerRuns) {
  ContainerRow a{"web", "hostA", "img", "paused", 0}, b{"web", "hostB", "img", "running", 0},
      c{"db", "hostA", "img", "exited", 0}, none{"batch", "hostB", "img", "running", 0};
  a.ip = b.ip = "10.66.0.5";
  c.ip = "10.66.0.6";
  auto placed = addressPlacement({a, b, c, none});
  ASSERT_EQ(placed.size(), 2u);
  EXPECT_EQ(placed[ip("10.66.0.5")], "hostB");  // mid-migration: the running copy
  EXPECT_EQ(placed[ip("10.66.0.6")], "hostA");
  EXPECT_EQ(addressPlacement({b, a})[ip("10.66.0.5")], "hostB");
}

TEST(Addresses, AHostsAddressIsItsDataEndpointsHost) {
  EXPECT_EQ(endpointAddress("tcp://10.213.4.2:7001"), "10.213.4.2");
  EXPECT_EQ(endpointAddress("tcp://127.0.0.2"), "127.0.0.2");
  EXPECT_EQ(endpointAddress("ipc:///run/x.sock"), "");
}

}  // namespace
}  // namespace ferry::coord
