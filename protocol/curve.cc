#include "protocol/curve.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <fstream>
#include <random>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"

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

// A secret key file must be a regular file that only its reader (or root)
// owns and only its owner may read or write: anyone else who could read it
// could be this host.
void checkSecretKeyFile(const fs::path& file, const struct stat& st) {
  if (!S_ISREG(st.st_mode)) throwInvalidInput(file.string() + " is not a regular file");
  uid_t me = ::geteuid();
  if (st.st_uid != me && st.st_uid != 0) {
    throwInvalidInput(file.string() + " is owned by uid " + std::to_string(st.st_uid) +
                      ", neither uid " + std::to_string(me) + " (who reads it) nor root: chown " +
                      std::to_string(me) + " " + file.string());
  }
  if ((st.st_mode & 077) != 0) {
    throwInvalidInput(file.string() + " is open to its group or others: chmod 600 " +
                      file.string());
  }
}

// Writes dir/name (refusing to replace anything there, a link included)
// with `mode`: to a temp name made O_EXCL | O_NOFOLLOW, then linked to its
// name (link(2) fails with EEXIST rather than follow or replace) and the temp
// name removed. A reader never sees a half-written key.
void writeNewFileAt(int dir_fd, const fs::path& dir, const std::string& name,
                    const std::string& content, mode_t mode) {
  std::string tmp = "." + name + ".tmp" + std::to_string(::getpid()) + "." +
                    std::to_string(std::random_device{}());
  UniqueFd fd(retryEintr([&] {
    return ::openat(dir_fd, tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                    mode);
  }));
  if (!fd) throwErrno("creating " + (dir / tmp).string());
  try {
    if (::fchmod(fd.get(), mode) != 0) throwErrno("chmod " + (dir / tmp).string());
    writeAll(fd.get(), content, (dir / tmp).string());
    if (::fsync(fd.get()) != 0) throwErrno("fsync " + (dir / tmp).string());
    if (::linkat(dir_fd, tmp.c_str(), dir_fd, name.c_str(), 0) != 0) {
      throwErrno("writing " + (dir / name).string());
    }
  } catch (...) {
    ::unlinkat(dir_fd, tmp.c_str(), 0);
    throw;
  }
  ::unlinkat(dir_fd, tmp.c_str(), 0);
}

}  // namespace

bool isClientKeyName(const std::string& name) {
  return name == "client" || name.rfind("client-", 0) == 0;
}

KeyPair generateKeyPair() {
  char pub[41], sec[41];
  if (zmq_curve_keypair(pub, sec) != 0) {
    throw Error(ErrorCategory::kPermanent, "zmq_curve_keypair failed (libzmq without CURVE?)");
  }
  return {pub, sec};
}

void writeKeyPair(const fs::path& dir, const std::string& name, const KeyPair& keys) {
  makeDirs(dir, 0700);
  // O_NOFOLLOW: a link planted as DIR would send the keys elsewhere.
  UniqueFd dir_fd(retryEintr(
      [&] { return ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC); }));
  if (!dir_fd) {
    if (errno == ELOOP || errno == ENOTDIR) {
      throwInvalidInput(dir.string() + " is a symlink or not a directory: keys go in a real one");
    }
    throwErrno("opening " + dir.string());
  }
  const std::string key = name + ".key", pub = name + ".pub";
  for (const auto& n : {key, pub}) {
    struct stat st;
    if (::fstatat(dir_fd.get(), n.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0) {
      throwInvalidInput((dir / n).string() +
                        " already exists; keys are never overwritten (remove it first)");
    }
  }
  writeNewFileAt(dir_fd.get(), dir, key, keys.public_key + "\n" + keys.secret_key + "\n", 0600);
  writeNewFileAt(dir_fd.get(), dir, pub, keys.public_key + "\n", 0644);
}

KeyPair readKeyPair(const fs::path& key_file) {
  // Open, then check what was opened: a stat of the path first could be
  // answered by another file than the one read. O_NONBLOCK so that a FIFO
  // planted there does not hang the open; fstat refuses it below.
  UniqueFd fd(retryEintr([&] {
    return ::open(key_file.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  }));
  if (!fd) {
    if (errno == ELOOP) {
      throwInvalidInput(key_file.string() +
                        " is a symlink: a secret key is read from the file itself");
    }
    throwErrno("cannot read key file " + key_file.string());
  }
  struct stat st;
  if (::fstat(fd.get(), &st) != 0) throwErrno("fstat " + key_file.string());
  checkSecretKeyFile(key_file, st);
  std::string text = readAll(fd.get(), key_file.string());
  KeyPair k;
  size_t nl = text.find('\n');
  if (nl != std::string::npos) {
    k.public_key = text.substr(0, nl);
    k.secret_key = text.substr(nl + 1, text.find('\n', nl + 1) - nl - 1);
  }
  if (!isZ85Key(k.public_key) || !isZ85Key(k.secret_key)) {
    throwInvalidInput(key_file.string() + " is not a ferry key file (two Z85 keys expected)");
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

std::string peerUserId(zmq::message_t& frame) {
  const char* v = zmq_msg_gets(frame.handle(), "User-Id");
  return v ? v : "";
}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& ctx, std::set<std::string> allowed)
    : ZapAuthenticator(ctx, [allowed = std::move(allowed)](
                                const ZapRequest& r) -> std::optional<std::string> {
        if (r.mechanism == "CURVE" && allowed.count(r.public_key)) return r.public_key;
        return std::nullopt;
      }) {}

ZapAuthenticator::ZapAuthenticator(zmq::context_t& ctx, ZapPolicy policy)
    : sock_(ctx, zmq::socket_type::rep), policy_(std::move(policy)) {
  sock_.set(zmq::sockopt::linger, 0);
  // The address libzmq asks (RFC 27). An earlier handler's socket in this
  // context, closed already, gives its name up only when libzmq's reaper
  // thread gets to it: a moment later (a coordinator made again in one
  // process met "Address already in use").
  for (int attempt = 0;; ++attempt) {
    try {
      sock_.bind("inproc://zeromq.zap.01");
      break;
    } catch (const zmq::error_t& e) {
      if (e.num() != EADDRINUSE || attempt >= 200) throw;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }
  thread_ = std::thread([this] { serve(); });
}

ZapAuthenticator::~ZapAuthenticator() {
  stop_ = true;
  thread_.join();
  // Gives the inproc name up now (a close alone leaves it to the reaper),
  // so that the next handler in this context binds it, and no handshake is
  // sent to this one meanwhile.
  try {
    sock_.unbind("inproc://zeromq.zap.01");
  } catch (const zmq::error_t&) {
  }
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
    std::optional<std::string> user;
    if (parts.size() >= 6 && parts[0] == "1.0") {
      ZapRequest req{.mechanism = parts[5], .address = parts[3], .domain = parts[2]};
      bool well_formed = true;
      if (req.mechanism == "CURVE") {
        well_formed = parts.size() >= 7 && parts[6].size() == 32;
        if (well_formed) {
          char z85[41];
          zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(parts[6].data()), 32);
          req.public_key = z85;
        }
      }
      try {
        if (well_formed) user = policy_(req);
      } catch (const std::exception&) {
        user.reset();  // a policy that fails admits no one
      }
    }
    bool ok = user.has_value();
    if (!ok) ++refused_;
    std::string id = parts.size() > 1 ? parts[1] : "";
    const std::string reply[] = {"1.0", id, ok ? "200" : "400", ok ? "OK" : "not allowed",
                                 user.value_or(""), ""};
    for (size_t i = 0; i < 6; ++i) {
      sock_.send(zmq::buffer(reply[i]), i < 5 ? zmq::send_flags::sndmore : zmq::send_flags::none);
    }
  }
}

}  // namespace ferry::proto
