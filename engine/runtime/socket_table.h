// The sockets of a network namespace, as /proc/PID/net/{tcp,udp,tcp6,udp6}
// list them, and whether a migration can keep them: the container's
// namespace is remade on the target with loopback and eth0 holding its one
// address (and the link-local address its MAC implies), so a socket bound to
// any other address could not be restored there. Parsing is pure; only
// readSockets() touches /proc.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "common/ipv4.h"

namespace ferry {

struct SocketEntry {
  std::string protocol;  // tcp | udp | tcp6 | udp6
  std::string local;     // the bound address, printed ("10.66.0.5", "::1")
  uint16_t port = 0;
  std::string remote;  // the peer's address, printed ("0.0.0.0" when none)
  uint16_t remote_port = 0;
  int state = 0;  // the kernel's TCP state (10 listening, 1 established)
  uint32_t uid = 0;  // the socket's owner
  bool listening() const { return state == 10; }
  bool unbound() const;  // bound to no address (any: 0.0.0.0 or ::)
};

// One /proc/net table's text (`protocol` as above). Throws Error
// (permanent) on a line it cannot read.
std::vector<SocketEntry> parseSocketTable(const std::string& text, const std::string& protocol);

// Every TCP and UDP socket of `pid`'s network namespace.
std::vector<SocketEntry> readSockets(pid_t pid);

// Why `s` could not be restored in a namespace where `own` is the only
// address besides loopback (nullopt: it can): any address, loopback,
// `own`, its IPv4-mapped form and IPv6 link-local ones are kept.
std::optional<std::string> whyNotKept(const SocketEntry& s, Ipv4 own);

}  // namespace ferry
