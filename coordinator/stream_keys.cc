// The keys the coordinator vouches for to the agents' data plane: a stream
// it prepares on a host admits only the key named with it (the source
// agent's, or the key of the client that asked for an import), besides the
// stream's one-time token (protocol/vouched_keys.h).
#include "coordinator/coordinator.h"
#include "coordinator/peer_access.h"

namespace ferry::coord {

std::string Coordinator::publicKeyOf(const std::string& name) const {
  for (const auto& [key, host] : opts_.access.host_keys) {
    if (host == name) return key;
  }
  return "";
}

// The User-Id is what the coordinator's ZAP policy answered for the
// connection (peer_access.h): "client:NAME" for a CLI's key.
std::string Coordinator::requesterKey(const Request& r) const {
  if (!opts_.keys) return "";
  PeerIdentity who = PeerIdentity::fromUserId(r.user);
  if (who.kind == PeerIdentity::Kind::kClient) {
    for (const auto& [key, client] : opts_.access.client_keys) {
      if (client == who.name) return key;
    }
  }
  throw Error(ErrorCategory::kInvalidInput,
              "the coordinator cannot tell which client key sent this request (User-Id '" +
                  r.user + "'), so it cannot vouch for its stream; is its .pub in the "
                  "coordinator's --keys DIR?");
}

}  // namespace ferry::coord
