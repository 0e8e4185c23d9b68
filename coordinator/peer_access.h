// Who may say what to the coordinator (issue 14, holes 2 and 7). A peer is
// named once, when its connection is admitted, by the coordinator's ZAP
// policy; every message it sends carries that name (its ZAP User-Id), and the
// coordinator believes nothing else about who sent it -- not the routing id
// a peer picks, not the name a hello states.
//
//   - With keys (`--keys DIR`): NAME.pub admits host NAME's agent,
//     client.pub and client-*.pub admit CLIs (ferry keys generate names
//     them so); coordinator.pub is the coordinator's own.
//   - Without keys, over ipc://: whoever can open the socket file, which
//     admits root (and the `ferry` group, when it exists) only: trusted as
//     agent and CLI alike.
//   - Without keys, over tcp://: only agents, each from the address it was
//     given (`--agent-address NAME=ADDRESS`); no CLI.
//
// An agent may send its hello, heartbeats, its own drain and its answers,
// each for its own name only; a CLI the requests. Pure: no sockets here.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

#include "protocol/control.capnp.h"
#include "protocol/curve.h"

namespace ferry::coord {

struct PeerIdentity {
  enum class Kind { kNone, kHost, kClient, kLocal };
  Kind kind = Kind::kNone;
  std::string name;  // the host's or the client's

  // From a User-Id this file's policy gave ("" or anything else: kNone).
  static PeerIdentity fromUserId(const std::string& user_id);
  std::string userId() const;
  // How messages and logs name it: "host hostA's key", "client 'client'", ...
  std::string describe() const;
  // May send what host `host`'s agent sends.
  bool mayActAsHost(const std::string& host) const;
  bool mayActAsSomeHost() const { return kind == Kind::kHost || kind == Kind::kLocal; }
  bool mayUseCli() const { return kind == Kind::kClient || kind == Kind::kLocal; }
};

struct AccessPolicy {
  std::map<std::string, std::string> host_keys;        // Z85 -> host name
  std::map<std::string, std::string> client_keys;      // Z85 -> client name
  std::map<std::string, std::string> agent_addresses;  // IP -> host name (no keys)

  // The ZAP decision: the User-Id to admit a peer under, or nullopt.
  std::optional<std::string> admit(const proto::ZapRequest& r) const;
};

// The public keys of a key directory by role (see above). Throws Error
// kInvalidInput for a key in two files (it would be two peers at once).
void readKeyDirectory(const std::filesystem::path& dir, AccessPolicy& into);
// "NAME=ADDRESS" (an IPv4 or IPv6 address) into `into`; throws Error
// kInvalidInput saying what is wrong (a bad name or address, an address
// given twice).
void addAgentAddress(const std::string& spec, AccessPolicy& into);

enum class Sender { kAgent, kClient };
// Who sends a message of this kind: an agent (hello, heartbeat, drainHost
// and every reply) or a CLI (every other request).
Sender senderOf(proto::Message::Which which);
bool isAgentReply(proto::Message::Which which);

}  // namespace ferry::coord
