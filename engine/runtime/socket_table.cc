#include "engine/runtime/socket_table.h"

#include <arpa/inet.h>

#include <array>
#include <cstring>
#include <sstream>

#include "common/error.h"
#include "common/fs.h"

namespace ferry {
namespace {

uint32_t hexWord(const std::string& s, size_t at) {
  return static_cast<uint32_t>(std::stoul(s.substr(at, 8), nullptr, 16));
}

// The kernel prints each 32-bit word of the address as it lies in memory,
// in the host's byte order: the bytes come back by storing the word again.
std::array<uint8_t, 16> addressBytes(const std::string& hex) {
  std::array<uint8_t, 16> b{};
  for (size_t w = 0; w * 8 < hex.size(); ++w) {
    uint32_t word = hexWord(hex, w * 8);
    std::memcpy(b.data() + w * 4, &word, 4);
  }
  return b;
}

}  // namespace

bool SocketEntry::unbound() const { return local == "0.0.0.0" || local == "::"; }

std::vector<SocketEntry> parseSocketTable(const std::string& text, const std::string& protocol) {
  const bool v6 = protocol.back() == '6';
  const size_t hex_len = v6 ? 32 : 8;
  std::vector<SocketEntry> out;
  std::istringstream in(text);
  std::string line;
  std::getline(in, line);  // the header
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t") == std::string::npos) continue;
    std::istringstream f(line);
    std::string slot, local, remote, state, queues, timer, retransmits;
    uint32_t uid = 0;
    f >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid;
    size_t colon = local.find(':');
    if (!f || colon != hex_len || local.size() != hex_len + 5 || remote.find(':') != hex_len ||
        remote.size() != hex_len + 5 || state.size() != 2) {
      throw Error(ErrorCategory::kPermanent, "cannot read a line of /proc/net/" + protocol + ": '" + line + "'");
    }
    SocketEntry e;
    e.protocol = protocol;
    e.uid = uid;
    auto printed = [&](const std::string& hex_addr) {
      std::array<uint8_t, 16> b = addressBytes(hex_addr.substr(0, hex_len));
      char text_addr[INET6_ADDRSTRLEN] = {};
      ::inet_ntop(v6 ? AF_INET6 : AF_INET, b.data(), text_addr, sizeof text_addr);
      return std::string(text_addr);
    };
    try {
      e.local = printed(local);
      e.port = static_cast<uint16_t>(std::stoul(local.substr(colon + 1), nullptr, 16));
      e.remote = printed(remote);
      e.remote_port = static_cast<uint16_t>(std::stoul(remote.substr(hex_len + 1), nullptr, 16));
      e.state = static_cast<int>(std::stoul(state, nullptr, 16));
    } catch (const std::logic_error&) {
      throw Error(ErrorCategory::kPermanent, "cannot read a line of /proc/net/" + protocol + ": '" + line + "'");
    }
    out.push_back(e);
  }
  return out;
}

std::vector<SocketEntry> readSockets(pid_t pid) {
  std::vector<SocketEntry> out;
  for (const char* p : {"tcp", "udp", "tcp6", "udp6"}) {
    fs::path table = fs::path("/proc") / std::to_string(pid) / "net" / p;
    std::error_code ec;
    if (!fs::exists(table, ec)) continue;  // no IPv6 in this kernel
    std::vector<SocketEntry> some = parseSocketTable(readFile(table), p);
    out.insert(out.end(), some.begin(), some.end());
  }
  return out;
}

std::optional<std::string> whyNotKept(const SocketEntry& s, Ipv4 own) {
  if (s.unbound()) return std::nullopt;
  std::string v4 = s.local;
  if (s.protocol.back() == '6') {
    if (s.local == "::1" || s.local.rfind("fe80:", 0) == 0) return std::nullopt;
    if (s.local.rfind("::ffff:", 0) != 0 || s.local.find('.') == std::string::npos) {
      v4.clear();
    } else {
      v4 = s.local.substr(7);
    }
  }
  if (!v4.empty()) {
    Ipv4 a = parseIpv4(v4);
    if (a == own || (a.value >> 24) == 127) return std::nullopt;
  }
  std::string what = s.protocol.substr(0, 3) == "tcp"
                         ? (s.listening() ? "a listening TCP socket" : "a TCP connection")
                         : "a UDP socket";
  return what + " on " + s.local + " port " + std::to_string(s.port) +
         ", an address that is not its own (" + toString(own) +
         ") and that the target will not have";
}

}  // namespace ferry
