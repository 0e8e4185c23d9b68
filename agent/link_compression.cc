#include "agent/link_compression.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>

#include <algorithm>
#include <array>
#include <cstdio>
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
    return {0, false, "none (the target, " + host +
                   ", is an address of this machine: no wire to save, and compressing would "
                   "only add downtime)"};
  }
  return {kRemoteLinkLevel, true,
          "the target, " + (host.empty() ? endpoint : host) + ", is not on this machine"};
}

std::string formatRate(double bytes_per_s) {
  char buf[32];
  if (bytes_per_s >= 1e9) {
    std::snprintf(buf, sizeof buf, "%.1f GB/s", bytes_per_s / 1e9);
  } else if (bytes_per_s >= 1e6) {
    std::snprintf(buf, sizeof buf, "%.0f MB/s", bytes_per_s / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.0f kB/s", bytes_per_s / 1e3);
  }
  return buf;
}

namespace {

// "zstd level 1 on 1012 of 1024 records (...)" or "none (...)".
std::string adaptiveSentence(const CompressionChoice& choice, const RecordCompression::Figures& f) {
  std::string level = "zstd level " + std::to_string(f.level);
  std::string link = choice.reason + "; its link carried " + formatRate(f.link_bytes_per_s) +
                     " raw (measured before the stream" +
                     (choice.probe.empty() ? "" : ", with " + choice.probe) + ")";
  if (f.records == 0) return "none (" + link + "; nothing went as data)";
  std::string data;
  if (f.bytes_per_cpu_s > 0) {
    double compressed = std::min(f.threads * f.bytes_per_cpu_s,
                                 f.ratio > 0 ? f.link_bytes_per_s / f.ratio : 0.0);
    auto percent = static_cast<unsigned>(f.ratio * 100 + 0.5);
    data = "; " + level + " made this data " + std::to_string(percent) + " % of its size at " +
           formatRate(f.bytes_per_cpu_s) + " per core, " + std::to_string(f.threads) +
           " threads: compressed, the stream moves " + formatRate(compressed) + " of data, raw " +
           formatRate(f.link_bytes_per_s) + "; compressed where that is at least " +
           std::to_string(static_cast<int>(RecordCompression::kMargin * 100 - 100 + 0.5)) +
           " % faster";
  }
  std::string records = std::to_string(f.records) + " records";
  if (f.compressed_records == f.records) return level + " on all " + records + " (" + link + data + ")";
  if (f.compressed_records == 0) return "none (" + link + data + ")";
  return level + " on " + std::to_string(f.compressed_records) + " of " + records +
         ", the rest raw (" + link + data + "; records are compressed to learn the data, and "
         "one in " + std::to_string(RecordCompression::kSampleEvery) + " while it goes raw)";
}

}  // namespace

CompressionChoice askedCompression(int level) {
  if (level <= 0) return {0, false, "none (as asked)"};
  return {level, false, "zstd level " + std::to_string(level) + " (as asked)"};
}

std::string compressionReport(const CompressionChoice& choice, uint64_t data_bytes,
                              uint64_t wire_bytes, const RecordCompression::Figures* adaptive) {
  if (choice.measure && adaptive) {
    std::string s = adaptiveSentence(choice, *adaptive);
    if (adaptive->compressed_records == 0 || data_bytes == 0) return s;
    auto percent = static_cast<unsigned>(
        static_cast<double>(wire_bytes) * 100.0 / static_cast<double>(data_bytes) + 0.5);
    return s + "; measured: " + formatBytes(data_bytes) + " of data went as " +
           formatBytes(wire_bytes) + " (" + std::to_string(percent) + " %)";
  }
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
