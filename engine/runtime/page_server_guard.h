// Post-copy's source: CRIU's page server listens on 127.0.0.1 for the
// agent and serves the container's memory to whichever connection comes
// first. An nftables rule keeps the ports it listens on to root's sockets
// (the agent's): a connection opened by a local process of any other user
// is reset (its SYN; nothing else on the port is touched, so a port the
// kernel hands out again meanwhile carries other traffic as usual). The table
// (inet ferry_page_server: a set of ports, and one rule in an output
// chain) is per network namespace and stays once made: an empty set
// guards nothing, and a port leaves it after kPageServerGuardTimeout.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

#include "engine/runtime/process.h"

namespace ferry {

inline constexpr const char* kPageServerGuardTable = "ferry_page_server";
// A port leaves the set after this even when its guard never ended (its
// agent was killed): the guard is needed only until the agent connected
// (CRIU closes its listening socket once it accepted one connection:
// util.c run_tcp_server), within the 2 minutes runc has for the dump.
inline constexpr std::chrono::seconds kPageServerGuardTimeout{300};

// Makes the table, its set and its rule, in one transaction that keeps the
// ports already guarded (another agent in this namespace may hold some).
// Returns "" once it is in place, else why not (nft's own words).
std::string installPageServerGuard(CommandRunner& runner);

// Whether the guard is in place in this network namespace.
bool pageServerGuardInstalled(CommandRunner& runner);

// Guards one port while it lives; makes the table again first when it is
// gone (a firewall reload). Throws Error kPermanent, with nft's words and
// what to do, when the port cannot be guarded.
class PageServerPortGuard {
 public:
  PageServerPortGuard(CommandRunner& runner, uint16_t port);
  // Takes the port out of the set (best effort: a port left in it only
  // keeps other users out of it).
  ~PageServerPortGuard();
  PageServerPortGuard(const PageServerPortGuard&) = delete;
  PageServerPortGuard& operator=(const PageServerPortGuard&) = delete;

 private:
  CommandRunner& runner_;
  uint16_t port_;
};

}  // namespace ferry
