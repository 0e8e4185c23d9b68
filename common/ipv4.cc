#include "common/ipv4.h"

#include <cstdio>

#include "common/error.h"

namespace ferry {

namespace {

// One decimal octet at text[i..]: 0..255, no sign, no leading zero.
bool octet(const std::string& text, size_t& i, uint32_t& out) {
  size_t start = i;
  uint32_t v = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 3) {
    v = v * 10 + static_cast<uint32_t>(text[i] - '0');
    ++i;
  }
  if (i == start || v > 255 || (i - start > 1 && text[start] == '0')) return false;
  out = v;
  return true;
}

bool parseAt(const std::string& text, size_t& i, Ipv4& out) {
  uint32_t v = 0;
  for (int k = 0; k < 4; ++k) {
    uint32_t o = 0;
    if (k > 0 && (i >= text.size() || text[i++] != '.')) return false;
    if (!octet(text, i, o)) return false;
    v = (v << 8) | o;
  }
  out.value = v;
  return true;
}

uint16_t portNumber(const std::string& text, const std::string& arg) {
  bool digits = !text.empty() && text.size() <= 5 && text[0] != '0';
  for (char c : text) digits = digits && c >= '0' && c <= '9';
  unsigned long v = digits ? std::stoul(text) : 0;
  if (v < 1 || v > 65535) {
    throwInvalidInput("-p " + arg + ": '" + text + "' is not a port (1-65535)");
  }
  return static_cast<uint16_t>(v);
}

}  // namespace

Ipv4 parseIpv4(const std::string& text, const std::string& what) {
  size_t i = 0;
  Ipv4 ip;
  if (!parseAt(text, i, ip) || i != text.size()) {
    throwInvalidInput(what + " '" + text + "': expected an IPv4 address A.B.C.D");
  }
  return ip;
}

std::string toString(Ipv4 ip) {
  uint32_t v = ip.value;
  return std::to_string(v >> 24) + "." + std::to_string((v >> 16) & 255) + "." +
         std::to_string((v >> 8) & 255) + "." + std::to_string(v & 255);
}

Cidr parseCidr(const std::string& text, const std::string& what) {
  auto bad = [&] {
    throwInvalidInput(what + " '" + text + "': expected an IPv4 range A.B.C.D/N (N from 0 to 32)");
  };
  size_t i = 0;
  Ipv4 ip;
  if (!parseAt(text, i, ip) || i >= text.size() || text[i++] != '/') bad();
  size_t start = i;
  int prefix = 0;
  while (i < text.size() && text[i] >= '0' && text[i] <= '9' && i - start < 2) {
    prefix = prefix * 10 + (text[i++] - '0');
  }
  if (i == start || i != text.size() || prefix > 32 || (i - start > 1 && text[start] == '0')) bad();
  Cidr c{ip, prefix};
  if ((ip.value & c.mask()) != ip.value) {
    Cidr meant{{ip.value & c.mask()}, prefix};
    throwInvalidInput(what + " '" + text + "': host bits set; did you mean " + toString(meant) + "?");
  }
  return c;
}

std::string toString(const Cidr& c) { return toString(c.network) + "/" + std::to_string(c.prefix); }

bool overlaps(const Cidr& a, const Cidr& b) {
  int p = a.prefix < b.prefix ? a.prefix : b.prefix;
  uint32_t m = p == 0 ? 0 : ~uint32_t{0} << (32 - p);
  return (a.network.value & m) == (b.network.value & m);
}

std::string macFor(Ipv4 ip) {
  char buf[18];
  uint32_t v = ip.value;
  std::snprintf(buf, sizeof buf, "02:66:%02x:%02x:%02x:%02x", v >> 24, (v >> 16) & 255,
                (v >> 8) & 255, v & 255);
  return buf;
}

PublishedPort parsePublish(const std::string& text) {
  PublishedPort p;
  std::string ports = text;
  if (auto slash = text.find('/'); slash != std::string::npos) {
    p.protocol = text.substr(slash + 1);
    ports = text.substr(0, slash);
    if (p.protocol != "tcp" && p.protocol != "udp") {
      throwInvalidInput("-p " + text + ": protocol '" + p.protocol + "' is not tcp or udp");
    }
  }
  auto colon = ports.find(':');
  if (colon == std::string::npos) {
    throwInvalidInput("-p " + text + ": expected HOSTPORT:PORT[/tcp|udp], e.g. 8080:80");
  }
  p.host_port = portNumber(ports.substr(0, colon), text);
  p.port = portNumber(ports.substr(colon + 1), text);
  return p;
}

std::string toString(const PublishedPort& p) {
  return std::to_string(p.host_port) + ":" + std::to_string(p.port) + "/" + p.protocol;
}

}  // namespace ferry
