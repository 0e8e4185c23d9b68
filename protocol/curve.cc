#include "protocol/curve.h"

#include <sys/stat.h>

#include <array>
#include <fstream>

#include "common/error.h"

namespace ferry::proto {

namespace fs = std::filesystem;

namespace {

bool isZ85Key(const std::string& k) {
  if (k.size() != 40) return false;
  std::array<uint8_t, 32> raw;
  return zmq_z85_decode(raw.data(), k.c_str()) != nullptr;
}

std::string firstLine(const fs::path& file) {
  std::ifstream in(file);
  std::string line;
  if (!in || !std::getline(in, line)) {
    throw Error(ErrorCategory::kInvalidInput, "cannot read key file " + file.string());
  }
  return line;
}

}  // namespace

KeyPair generateKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    throw Error(ErrorCategory::kPermanent, "zmq_curve_keypair failed (libzmq without CURVE?)");
  }
  return {pub, sec};
}

void writeKeyPair(const fs::path& dir, const std::string& name, const KeyPair& keys) {
  fs::create_directories(dir);
  fs::path key = dir / (name + ".key"), pub = dir / (name + ".pub");
  if (fs::exists(key) || fs::exists(pub)) {
    throw Error(ErrorCategory::kInvalidInput,
                "keys for " + name + " already exist in " + dir.string() + " (remove them first)");
  }
  mode_t old = ::umask(077);
  {
    std::ofstream out(key);
    out << keys.public_key << "\n" << keys.secret_key << "\n";
    if (!out) {
      ::umask(old);
      throw Error(ErrorCategory::kPermanent, "cannot write " + key.string());
    }
  }
  ::umask(old);
  std::ofstream(pub) << keys.public_key << "\n";
}

KeyPair readKeyPair(const fs::path& key_file) {
  struct stat st;
  if (::stat(key_file.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    throw Error(ErrorCategory::kInvalidInput,
                key_file.string() + " is readable by others: chmod 600 it");
  }
  std::ifstream in(key_file);
  KeyPair k;
  if (!std::getline(in, k.public_key) || !std::getline(in, k.secret_key) ||
      !isZ85Key(k.public_key) || !isZ85Key(k.secret_key)) {
    throw Error(ErrorCategory::kInvalidInput,
                key_file.string() + " is not a ferry key file (two Z85 keys expected)");
  }
  return k;
}

std::string readPublicKey(const fs::path& pub_file) {
  std::string k = firstLine(pub_file);
  if (!isZ85Key(k)) {
    throw Error(ErrorCategory::kInvalidInput, pub_file.string() + " is not a Z85 public key");
  }
  return k;
}

void makeCurveServer(zmq::socket_t& s, const KeyPair& server) {
  s.set(zmq::sockopt::curve_server, true);
  s.set(zmq::sockopt::curve_secretkey, server.secret_key);
  s.set(zmq::sockopt::zap_domain, "ferry");
}

void makeCurveClient(zmq::socket_t& s, const KeyPair& client, const std::string& server_public) {
  s.set(zmq::sockopt::curve_serverkey, server_public);
  s.set(zmq::sockopt::curve_publickey, client.public_key);
  s.set(zmq::sockopt::curve_secretkey, client.secret_key);
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& ctx, std::set<std::string> allowed)
    : sock_(ctx, zmq::socket_type::rep), allowed_(std::move(allowed)) {
  sock_.set(zmq::sockopt::linger, 0);
  sock_.bind("inproc://zeromq.zap.01");  // the address libzmq asks (RFC 27)
  thread_ = std::thread([this] { serve(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_ = true;
  thread_.join();
}

// RFC 27: request = version, id, domain, address, identity, mechanism,
// credentials...; reply = version, id, status code, status text, user id,
// metadata.
void ZapAuthenticator::serve() {
  while (!stop_) {
    zmq::pollitem_t item{sock_.handle(), 0, ZMQ_POLLIN, 0};
    if (zmq::poll(&item, 1, std::chrono::milliseconds(100)) <= 0) continue;
    std::vector<std::string> parts;
    zmq::message_t part;
    do {
      if (!sock_.recv(part, zmq::recv_flags::dontwait)) break;
      parts.emplace_back(static_cast<const char*>(part.data()), part.size());
    } while (part.more());
    bool ok = false;
    std::string user;
    if (parts.size() >= 7 && parts[0] == "1.0" && parts[5] == "CURVE" && parts[6].size() == 32) {
      char z85[41];
      zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(parts[6].data()), 32);
      user = z85;
      ok = allowed_.count(user) > 0;
    }
    if (!ok) ++refused_;
    std::string id = parts.size() > 1 ? parts[1] : "";
    const std::string reply[] = {"1.0", id, ok ? "200" : "400", ok ? "OK" : "key not allowed", user, ""};
    for (size_t i = 0; i < 6; ++i) {
      sock_.send(zmq::buffer(reply[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

}  // namespace ferry::proto
