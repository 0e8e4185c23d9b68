#include "agent/link_compression.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <array>
#include <cstring>
#include <memory>
#include <optional>

#include "common/units.h"

namespace ferry::agent {

namespace {

// An address by value: IPv4 as such, IPv4-mapped IPv6 folded into IPv4.
struct Address {
  bool v4 = false;
  std::array<unsigned char, 16> bytes{};
  bool operator==(const Address&) const = default;
};

std::optional<Address> parseAddress(const std::string& text) {
  Address a;
  if (::inet_pton(AF_INET, text.c_str(), a.bytes.data()) == 1) {
    a.v4 = true;
    return a;
  }
  in6_addr six{};
  if (::inet_pton(AF_INET6, text.c_str(), &six) != 1) return std::nullopt;
  if (IN6_IS_ADDR_V4MAPPED(&six)) {
    a.v4 = true;
    std::memcpy(a.bytes.data(), six.s6_addr + 12, 4);
    return a;
  }
  std::memcpy(a.bytes.data(), six.s6_addr, 16);
  return a;
}

bool loopback(const Address& a) {
  if (a.v4) return a.bytes[0] == 127;
  static const Address kOne = [] {
    Address one;
    one.bytes[15] = 1;
    return one;
  }();
  return a == kOne;
}

bool unspecified(const Address& a) { return a == Address{.v4 = a.v4}; }

}  // namespace

std::string endpointHost(std::string_view endpoint) {
  constexpr std::string_view kTcp = "tcp://";
  if (!endpoint.starts_with(kTcp)) return {};
  endpoint.remove_prefix(kTcp.size());
  if (endpoint.starts_with('[')) {
    size_t close = endpoint.find(']');
    if (close == std::string_view::npos) return {};
    return std::string(endpoint.substr(1, close - 1));
  }
  size_t colon = endpoint.rfind(':');
  return std::string(endpoint.substr(0, colon));
}

bool isLoopbackAddress(const std::string& host) {
  if (host == "localhost") return true;
  auto a = parseAddress(host);
  return a && loopback(*a);
}

bool isLocalAddress(const std::string& host, const std::vector<std::string>& local_addresses) {
  if (isLoopbackAddress(host)) return true;
  auto a = parseAddress(host);
  if (!a) return false;
  if (unspecified(*a)) return true;
  for (const auto& l : local_addresses) {
    if (parseAddress(l) == a) return true;
  }
  return false;
}

CompressionChoice chooseCompression(const std::string& endpoint,
                                    const std::vector<std::string>& local_addresses) {
  std::string host = endpointHost(endpoint);
  if (isLocalAddress(host, local_addresses)) {
    return {0, "none (the target, " + host +
                   ", is an address of this machine: no wire to save, and compressing would "
                   "only add downtime)"};
  }
  return {kRemoteLinkLevel,
          "zstd level " + std::to_string(kRemoteLinkLevel) + " (the target, " +
              (host.empty() ? endpoint : host) +
              ", is not on this machine: over a network link slower than the compressor, about "
              "3 Gbit/s per core, compressing saves more time than it costs)"};
}

CompressionChoice askedCompression(int level) {
  if (level <= 0) return {0, "none (as asked)"};
  return {level, "zstd level " + std::to_string(level) + " (as asked)"};
}

std::string compressionReport(const CompressionChoice& choice, uint64_t data_bytes,
                              uint64_t wire_bytes) {
  if (choice.level <= 0 || data_bytes == 0) return choice.reason;
  auto percent = static_cast<unsigned>(
      static_cast<double>(wire_bytes) * 100.0 / static_cast<double>(data_bytes) + 0.5);
  return choice.reason + "; measured: " + formatBytes(data_bytes) + " of data went as " +
         formatBytes(wire_bytes) + " (" + std::to_string(percent) + " %)";
}

std::vector<std::string> localAddresses() {
  ifaddrs* list = nullptr;
  if (::getifaddrs(&list) != 0) return {};
  std::unique_ptr<ifaddrs, decltype(&::freeifaddrs)> owned(list, &::freeifaddrs);
  std::vector<std::string> out;
  for (ifaddrs* i = list; i != nullptr; i = i->ifa_next) {
    if (i->ifa_addr == nullptr) continue;
    char buf[INET6_ADDRSTRLEN] = {};
    const void* addr = nullptr;
    if (i->ifa_addr->sa_family == AF_INET) {
      addr = &reinterpret_cast<const sockaddr_in*>(i->ifa_addr)->sin_addr;
    } else if (i->ifa_addr->sa_family == AF_INET6) {
      addr = &reinterpret_cast<const sockaddr_in6*>(i->ifa_addr)->sin6_addr;
    } else {
      continue;
    }
    if (::inet_ntop(i->ifa_addr->sa_family, addr, buf, sizeof buf) != nullptr) out.push_back(buf);
  }
  return out;
}

}  // namespace ferry::agent
