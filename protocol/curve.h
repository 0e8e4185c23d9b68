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
// Writes DIR/NAME.key (0600) and DIR/NAME.pub; refuses to overwrite.
void writeKeyPair(const std::filesystem::path& dir, const std::string& name, const KeyPair& keys);
// Reads NAME.key; throws Error kInvalidInput for a malformed file or one
// readable by others.
KeyPair readKeyPair(const std::filesystem::path& key_file);
std::string readPublicKey(const std::filesystem::path& pub_file);

void makeCurveServer(zmq::socket_t& s, const KeyPair& server);
void makeCurveClient(zmq::socket_t& s, const KeyPair& client, const std::string& server_public);

// Answers ZAP requests for every CURVE server socket of `ctx` from a thread
// of its own, admitting only the listed client public keys (Z85). Create it
// before binding the server socket; it stops on destruction. One per
// context.
class ZapAuthenticator {
 public:
  ZapAuthenticator(zmq::context_t& ctx, std::set<std::string> allowed);
  ~ZapAuthenticator();
  ZapAuthenticator(const ZapAuthenticator&) = delete;
  ZapAuthenticator& operator=(const ZapAuthenticator&) = delete;

  uint64_t refused() const { return refused_; }

 private:
  void serve();

  zmq::socket_t sock_;
  std::set<std::string> allowed_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t> refused_{0};
  std::thread thread_;
};

}  // namespace ferry::proto
