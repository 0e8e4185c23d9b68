#include "coordinator/peer_access.h"

#include <arpa/inet.h>

#include "common/error.h"
#include "common/names.h"

namespace ferry::coord {

namespace fs = std::filesystem;

namespace {

constexpr const char* kHostPrefix = "host:";
constexpr const char* kClientPrefix = "client:";
constexpr const char* kLocal = "local";

bool isIpAddress(const std::string& a) {
  in6_addr buf{};
  return ::inet_pton(AF_INET, a.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, a.c_str(), &buf) == 1;
}

// HOST:UID:GID:PID, the last three numbers.
bool isUnixPeer(const std::string& a) {
  size_t end = a.size();
  for (int field = 0; field < 3; ++field) {
    size_t colon = a.rfind(':', end - 1);
    if (colon == std::string::npos || colon + 1 == end ||
        a.find_first_not_of("0123456789", colon + 1) < end) {
      return false;
    }
    end = colon;
    if (end == 0) return false;
  }
  return true;
}

}  // namespace

PeerIdentity PeerIdentity::fromUserId(const std::string& u) {
  auto named = [&](const char* prefix, Kind k) -> std::optional<PeerIdentity> {
    size_t n = std::char_traits<char>::length(prefix);
    if (u.compare(0, n, prefix) != 0 || u.size() == n) return std::nullopt;
    return PeerIdentity{k, u.substr(n)};
  };
  if (auto h = named(kHostPrefix, Kind::kHost)) return *h;
  if (auto c = named(kClientPrefix, Kind::kClient)) return *c;
  if (u == kLocal) return {Kind::kLocal, ""};
  return {};
}

std::string PeerIdentity::userId() const {
  switch (kind) {
    case Kind::kHost: return kHostPrefix + name;
    case Kind::kClient: return kClientPrefix + name;
    case Kind::kLocal: return kLocal;
    case Kind::kNone: break;
  }
  return "";
}

std::string PeerIdentity::describe() const {
  switch (kind) {
    case Kind::kHost: return "host " + name + "'s agent";
    case Kind::kClient: return "client '" + name + "'";
    case Kind::kLocal: return "a local peer (unix socket)";
    case Kind::kNone: break;
  }
  return "an unidentified peer";
}

bool PeerIdentity::mayActAsHost(const std::string& host) const {
  return kind == Kind::kLocal || (kind == Kind::kHost && name == host);
}

std::optional<std::string> AccessPolicy::admit(const proto::ZapRequest& r) const {
  if (r.mechanism == "CURVE") {
    if (auto h = host_keys.find(r.public_key); h != host_keys.end()) {
      return PeerIdentity{PeerIdentity::Kind::kHost, h->second}.userId();
    }
    if (auto c = client_keys.find(r.public_key); c != client_keys.end()) {
      return PeerIdentity{PeerIdentity::Kind::kClient, c->second}.userId();
    }
    return std::nullopt;
  }
  if (r.mechanism != "NULL") return std::nullopt;
  // A NULL peer reached a socket without CURVE, which the coordinator has
  // only without keys. libzmq names a TCP peer by its IP address, a unix
  // socket's by its credentials, "localhost:UID:GID:PID" (SO_PEERCRED).
  if (isIpAddress(r.address)) {
    if (auto a = agent_addresses.find(r.address); a != agent_addresses.end()) {
      return PeerIdentity{PeerIdentity::Kind::kHost, a->second}.userId();
    }
    return std::nullopt;
  }
  if (isUnixPeer(r.address)) return std::string(kLocal);
  return std::nullopt;
}

void readKeyDirectory(const fs::path& dir, AccessPolicy& into) {
  std::map<std::string, std::string> file_of;  // key -> the file that named it
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".pub") continue;
    std::string stem = e.path().stem().string();
    if (stem == "coordinator") continue;
    std::string key = proto::readPublicKey(e.path());
    if (auto [it, fresh] = file_of.emplace(key, e.path().string()); !fresh) {
      throwInvalidInput(e.path().string() + " holds the same key as " + it->second +
                        ": a key admits one peer; remove one of them");
    }
    if (proto::isClientKeyName(stem)) {
      into.client_keys[key] = stem;
    } else {
      validateName(stem, "host name of key file " + e.path().string());
      into.host_keys[key] = stem;
    }
  }
}

void addAgentAddress(const std::string& spec, AccessPolicy& into) {
  size_t eq = spec.find('=');
  if (eq == std::string::npos) {
    throwInvalidInput("--agent-address takes NAME=ADDRESS (e.g. hostA=10.0.0.2), not '" + spec +
                      "'");
  }
  std::string name = spec.substr(0, eq), addr = spec.substr(eq + 1);
  validateName(name, "host name in --agent-address");
  if (!isIpAddress(addr)) {
    throwInvalidInput("--agent-address " + spec + ": '" + addr +
                      "' is not an IP address (the address the agent connects from)");
  }
  if (auto it = into.agent_addresses.find(addr); it != into.agent_addresses.end()) {
    throwInvalidInput("--agent-address: " + addr + " is given for both " + it->second + " and " +
                      name + "; without keys an address names one host");
  }
  into.agent_addresses[addr] = name;
}

bool isAgentReply(proto::Message::Which which) {
  switch (which) {
    case proto::Message::OK:
    case proto::Message::ERROR:
    case proto::Message::PROGRESS:
    case proto::Message::HOSTS:
    case proto::Message::CONTAINERS:
    case proto::Message::CONTAINER:
    case proto::Message::LOG_CHUNK:
    case proto::Message::MIGRATION:
    case proto::Message::HISTORY:
    case proto::Message::STREAM_TICKET:
    case proto::Message::PLACEMENT:
    case proto::Message::SECRETS:
    case proto::Message::PENDING:
      return true;
    default:
      return false;
  }
}

Sender senderOf(proto::Message::Which which) {
  if (isAgentReply(which)) return Sender::kAgent;
  switch (which) {
    case proto::Message::HELLO:
    case proto::Message::HEARTBEAT:
    case proto::Message::DRAIN_HOST:
      return Sender::kAgent;
    default:
      return Sender::kClient;
  }
}

}  // namespace ferry::coord
