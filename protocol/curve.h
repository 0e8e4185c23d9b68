// CurveZMQ keys and authentication. A server socket (the coordinator's
// ROUTER, an agent's data-plane ROUTER) encrypts with its key pair and
// admits only clients whose public keys it lists: a ZAP handler on the
// socket's ZeroMQ context checks each connecting client's key.
//
// Key files (from `ferry keys generate DIR`): NAME.key holds both keys in
// Z85 (mode 0600), NAME.pub the public key alone.
#pragma once

#include <atomic>
#include <filesystem>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <zmq.hpp>

namespace ferry::proto {

struct KeyPair {
  std::string public_key;  // Z85, 40 characters
  std::string secret_key;  // Z85, 40 characters
};

KeyPair generateKeyPair();
// Key files name their holder's role: client.* and client-NAME.* are a
// CLI's, coordinator.* the coordinator's, any other NAME.* host NAME's agent.
bool isClientKeyName(const std::string& name);
// Writes DIR/NAME.key (0600) and DIR/NAME.pub (0644), making DIR (0700) if
// missing. Refuses (Error kInvalidInput) if DIR is a symlink or either file
// exists, a symlink included; never writes through a link.
void writeKeyPair(const std::filesystem::path& dir, const std::string& name, const KeyPair& keys);
// Reads NAME.key. Throws Error kInvalidInput, saying what to run, for a
// malformed file, a symlink, anything but a regular file, one owned by
// neither the effective uid nor root, or one with group or other permission
// bits. Checks the file it opened (fstat), not the path.
KeyPair readKeyPair(const std::filesystem::path& key_file);
std::string readPublicKey(const std::filesystem::path& pub_file);

void makeCurveServer(zmq::socket_t& s, const KeyPair& server);
void makeCurveClient(zmq::socket_t& s, const KeyPair& client, const std::string& server_public);

// What a ZAP handler is asked about a connecting peer (RFC 27).
struct ZapRequest {
  std::string mechanism;   // "NULL" or "CURVE"
  std::string address;     // the peer's IP for tcp://; for ipc:// libzmq gives
                           // ":UID:GID:PID" (SO_PEERCRED) or ""
  std::string public_key;  // CURVE: the client's key (Z85); else ""
  std::string domain;      // the server socket's ZAP domain ("" unless set)
};
// The User-Id a peer is admitted under (every message from its connection
// carries it as "User-Id" metadata: peerUserId()), or nullopt to refuse it.
using ZapPolicy = std::function<std::optional<std::string>(const ZapRequest&)>;

// The "User-Id" its connection was admitted under, "" when no ZAP handler
// ran for it.
std::string peerUserId(zmq::message_t& frame);

// Answers ZAP requests for every server socket of `ctx` that asks (CURVE
// servers; NULL ones with a ZAP domain) from a thread of its own. Create it
// before binding the server socket; it stops on destruction. One per
// context.
class ZapAuthenticator {
 public:
  // Admits only the listed client public keys (Z85), each under its key as
  // User-Id.
  ZapAuthenticator(zmq::context_t& ctx, std::set<std::string> allowed);
  // Admits whom `policy` admits, under the User-Id it gives. `policy` runs on
  // the authenticator's thread.
  ZapAuthenticator(zmq::context_t& ctx, ZapPolicy policy);
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  uint64_t refused() const { return refused_; }

 private:
  void serve();

  zmq::socket_t sock_;
  ZapPolicy policy_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace ferry::proto
