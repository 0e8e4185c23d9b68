// IPv4 addresses and CIDR ranges for the cluster network: strict parsing
// (a range with host bits set, a leading zero, an octet above 255 is an
// error that says what was meant), arithmetic, and the MAC a container
// address implies. Pure; no sockets.
#pragma once

#include <cstdint>
#include <string>

namespace ferry {

struct Ipv4 {
  uint32_t value = 0;  // host byte order
  bool operator==(const Ipv4&) const = default;
  auto operator<=>(const Ipv4&) const = default;
};

// "A.B.C.D"; throws (invalid input) naming `what` otherwise.
Ipv4 parseIpv4(const std::string& text, const std::string& what = "address");
std::string toString(Ipv4 ip);

struct Cidr {
  Ipv4 network;
  int prefix = 0;  // 0..32
  bool operator==(const Cidr&) const = default;

  uint32_t mask() const { return prefix == 0 ? 0 : ~uint32_t{0} << (32 - prefix); }
  uint64_t size() const { return uint64_t{1} << (32 - prefix); }
  bool contains(Ipv4 ip) const { return (ip.value & mask()) == network.value; }
  Ipv4 broadcast() const { return {network.value | ~mask()}; }
  // The addresses a container may have: all but the network's and the
  // broadcast address (both kept for ranges of 4 and more).
  Ipv4 firstHost() const { return {prefix >= 31 ? network.value : network.value + 1}; }
  Ipv4 lastHost() const { return {prefix >= 31 ? broadcast().value : broadcast().value - 1}; }
};

// "A.B.C.D/N"; host bits must be zero ("10.66.1.0/16: host bits set; did
// you mean 10.66.0.0/16?").
Cidr parseCidr(const std::string& text, const std::string& what = "network");
std::string toString(const Cidr& c);
bool overlaps(const Cidr& a, const Cidr& b);

// The MAC of the container that holds `ip`: locally administered, unicast,
// 02:66 then the address's four bytes -- unique on the cluster network as
// the address is, and it moves with it.
std::string macFor(Ipv4 ip);

// A published port: HOSTPORT on the address of the host the container
// runs on, forwarded to PORT in it.
struct PublishedPort {
  uint16_t host_port = 0;
  uint16_t port = 0;
  std::string protocol = "tcp";  // tcp | udp
  bool operator==(const PublishedPort&) const = default;
};

// "-p HOSTPORT:PORT[/tcp|udp]"; throws (invalid input) saying what is wrong.
PublishedPort parsePublish(const std::string& text);
std::string toString(const PublishedPort& p);

}  // namespace ferry
