#include "protocol/vouched_keys.h"

#include <array>

#include "common/error.h"

namespace ferry::proto {

namespace {

bool isZ85PublicKey(const std::string& k) {
  std::array<uint8_t, 32> raw;
  return k.size() == 40 && zmq_z85_decode(raw.data(), k.c_str()) != nullptr;
}

}  // namespace

// A stream's socket admits the key vouched for its domain, and only that.
StreamKeys::StreamKeys(zmq::context_t& ctx)
    : zap_(ctx, [this](const ZapRequest& r) -> std::optional<std::string> {
        if (r.public_key.empty() || r.public_key != vouchedFor(r.domain)) return std::nullopt;
        return r.public_key;
      }) {}

StreamKeys::~StreamKeys() = default;

StreamKeys::Vouch::~Vouch() { keys_.withdraw(domain_); }

std::unique_ptr<StreamKeys::Vouch> StreamKeys::vouch(const std::string& key) {
  if (!isZ85PublicKey(key)) {
    throw Error(ErrorCategory::kInvalidInput,
                key.empty() ? "the coordinator vouched for no sender key: with --keys, an agent "
                              "admits to a stream only the key the coordinator names for it "
                              "(is the coordinator older than this agent?)"
                            : "the sender key the coordinator vouched for is not a Z85 public key");
  }
  std::lock_guard lock(vouched_.mu);
  std::string domain = "ferry-stream-" + std::to_string(++vouched_.next);
  vouched_.keys[domain] = key;
  return std::unique_ptr<Vouch>(new Vouch(*this, domain));
}

std::string StreamKeys::vouchedFor(const std::string& domain) {
  std::lock_guard lock(vouched_.mu);
  auto it = vouched_.keys.find(domain);
  return it == vouched_.keys.end() ? "" : it->second;
}

void StreamKeys::withdraw(const std::string& domain) {
  std::lock_guard lock(vouched_.mu);
  vouched_.keys.erase(domain);
}

}  // namespace ferry::proto
