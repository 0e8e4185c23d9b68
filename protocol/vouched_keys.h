// The agent's data plane admits only keys the coordinator vouched for.
//
// With CurveZMQ, libzmq admits every client key to a CURVE server socket
// unless a ZAP handler answers for its context; the stream token alone
// would then keep a stranger out. A StreamKeys is that ZAP handler for an
// agent's context: each stream the coordinator prepares names the one key
// that may send it (the source agent's, or the CLI's that asked for an
// import), and only that key gets through the handshake of that stream's
// socket -- not of another stream's, and not once the stream is over.
//
// How: each vouch has a ZAP domain of its own, set on its receiver socket
// (StreamOptions::zap_domain); a ZAP request is admitted when its domain is
// vouched and its key is the one vouched there. Anything else -- a domain
// no longer vouched, another key, another mechanism -- is refused (400).
//
// Thread-safety: vouch() and the Vouch's destruction from any thread; the
// handler answers on a thread of its own. One ZAP handler per context: the
// context may have no other (ZapAuthenticator).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <zmq.hpp>

#include "protocol/curve.h"

namespace ferry::proto {

class StreamKeys {
 public:
  // Binds the context's ZAP endpoint (a ZapAuthenticator); stops on
  // destruction (after every Vouch it gave is gone).
  explicit StreamKeys(zmq::context_t& ctx);
  ~StreamKeys();
  StreamKeys(const StreamKeys&) = delete;
  StreamKeys& operator=(const StreamKeys&) = delete;

  // One key admitted to one stream for as long as this lives.
  class Vouch {
   public:
    ~Vouch();
    Vouch(const Vouch&) = delete;
    Vouch& operator=(const Vouch&) = delete;
    // The ZAP domain to set on the stream's receiver socket.
    const std::string& domain() const { return domain_; }

   private:
    friend class StreamKeys;
    Vouch(StreamKeys& keys, std::string domain) : keys_(keys), domain_(std::move(domain)) {}
    StreamKeys& keys_;
    std::string domain_;
  };
  // Admits `key` (Z85) to the stream whose socket takes the Vouch's domain.
  // Throws Error kInvalidInput when `key` is not a Z85 public key (an
  // empty one included: the coordinator named none).
  std::unique_ptr<Vouch> vouch(const std::string& key);

  // Handshakes refused so far.
  uint64_t refused() const { return zap_.refused(); }

 private:
  // The key vouched for `domain`, or "" when none is.
  std::string vouchedFor(const std::string& domain);
  void withdraw(const std::string& domain);

  struct Vouched {
    std::mutex mu;
    std::map<std::string, std::string> keys;  // domain -> key; only under mu
    uint64_t next = 0;                        // only under mu
  };
  Vouched vouched_;
  ZapAuthenticator zap_;  // last: it asks vouched_ until it stops
};

}  // namespace ferry::proto
