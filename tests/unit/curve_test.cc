// CurveZMQ with an allow-list, over real sockets on loopback.
#include "protocol/curve.h"

#include <sys/stat.h>
#include <unistd.h>

#include <functional>
#include <thread>

#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "protocol/framing.h"

namespace ferry::proto {
namespace {

using std::chrono::milliseconds;

// Sends "hello" from a client with `client` keys (trusting `server_pub`) and
// reports whether the server received it within the wait.
// A message that should arrive gets 5 s (a loaded CI machine); one that
// must not is given 700 ms to show up anyway.
bool reaches(zmq::context_t& ctx, const std::string& endpoint, const KeyPair& client,
             const std::string& server_pub, zmq::socket_t& server, milliseconds wait) {
  zmq::socket_t c(ctx, zmq::socket_type::dealer);
  applySocketLimits(c);
  makeCurveClient(c, client, server_pub);
  c.connect(endpoint);
  c.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  zmq::pollitem_t item{server.handle(), 0, ZMQ_POLLIN, 0};
  if (zmq::poll(&item, 1, wait) <= 0) return false;
  zmq::message_t id, msg;
  (void)server.recv(id);
  (void)server.recv(msg);
  return msg.to_string() == "hello";
}

// Whether `pred` holds within `timeout` (asked every 10 ms).
bool holdsWithin(milliseconds timeout, const std::function<bool()>& pred) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(10));
  }
  return true;
}

TEST(Curve, OnlyListedClientsWithTheRightServerKeyGetThrough) {
  KeyPair server = generateKeyPair(), agent = generateKeyPair(), stranger = generateKeyPair();
  zmq::context_t ctx;
  ZapAuthenticator zap(ctx, {agent.public_key});
  zmq::socket_t s(ctx, zmq::socket_type::router);
  applySocketLimits(s);
  makeCurveServer(s, server);
  s.bind("tcp://127.0.0.1:0");
  std::string endpoint = s.get(zmq::sockopt::last_endpoint);

  EXPECT_TRUE(reaches(ctx, endpoint, agent, server.public_key, s, milliseconds(5000)));
  {
    // The stranger's socket stays open until its refusal is counted: the
    // ZAP handler is asked only once its handshake got that far, which a
    // loaded machine may not reach within the 700 ms (failed once so).
    zmq::socket_t c(ctx, zmq::socket_type::dealer);
    applySocketLimits(c);
    makeCurveClient(c, stranger, server.public_key);
    c.connect(endpoint);
    c.send(zmq::str_buffer("hello"), zmq::send_flags::none);
    zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
    EXPECT_EQ(zmq::poll(&item, 1, milliseconds(700)), 0) << "an unlisted key got in";
    EXPECT_TRUE(holdsWithin(milliseconds(10000), [&] { return zap.refused() >= 1; }))
        << "the stranger's key was never refused by the ZAP handler";
  }
  // A client trusting the wrong server key never completes the handshake.
  EXPECT_FALSE(reaches(ctx, endpoint, agent, stranger.public_key, s, milliseconds(700)));
  // A client without CURVE at all is not heard either.
  zmq::socket_t plain(ctx, zmq::socket_type::dealer);
  plain.set(zmq::sockopt::linger, 0);
  plain.connect(endpoint);
  plain.send(zmq::str_buffer("hello"), zmq::send_flags::none);
  zmq::pollitem_t item{s.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&item, 1, milliseconds(500)), 0);
}

TEST(Curve, KeyFilesRoundTripPrivatelyAndRefuseToBeOverwritten) {
  TempDir t;
  KeyPair k = generateKeyPair();
  writeKeyPair(t.path(), "coordinator", k);
  struct stat st;
  ASSERT_EQ(::stat((t.path() / "coordinator.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 077, 0u) << "secret key readable by others";
  KeyPair back = readKeyPair(t.path() / "coordinator.key");
  EXPECT_EQ(back.public_key, k.public_key);
  EXPECT_EQ(back.secret_key, k.secret_key);
  EXPECT_EQ(readPublicKey(t.path() / "coordinator.pub"), k.public_key);
  EXPECT_THROW(writeKeyPair(t.path(), "coordinator", generateKeyPair()), Error);
  ASSERT_EQ(::chmod((t.path() / "coordinator.key").c_str(), 0644), 0);
  EXPECT_THROW(readKeyPair(t.path() / "coordinator.key"), Error);
  writeFileAtomic(t.path() / "bad.pub", "not a key\n");
  EXPECT_THROW(readPublicKey(t.path() / "bad.pub"), Error);
}

// What a refusal says, for checking that it names the fix.
std::string refusal(const std::filesystem::path& key_file) {
  try {
    readKeyPair(key_file);
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << e.what();
    return e.what();
  }
  ADD_FAILURE() << key_file << " was read";
  return "";
}

TEST(Curve, ASecretKeyOpenToOthersIsRefusedWithTheChmodToRun) {
  TempDir t;
  writeKeyPair(t.path(), "hostA", generateKeyPair());
  for (mode_t m : {0644, 0640, 0604, 0660}) {
    ASSERT_EQ(::chmod((t.path() / "hostA.key").c_str(), m), 0);
    EXPECT_NE(refusal(t.path() / "hostA.key").find("chmod 600"), std::string::npos);
  }
}

TEST(Curve, ASecretKeyOwnedBySomeoneElseIsRefusedWithTheChownToRun) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to chown a file to another uid";
  TempDir t;
  writeKeyPair(t.path(), "hostA", generateKeyPair());
  std::filesystem::path key = t.path() / "hostA.key";
  ASSERT_EQ(::chown(key.c_str(), 12345, 12345), 0);
  ASSERT_EQ(::chmod(key.c_str(), 0600), 0);  // the mode alone would pass
  std::string why = refusal(key);
  EXPECT_NE(why.find("owned by uid 12345"), std::string::npos) << why;
  EXPECT_NE(why.find("chown 0 "), std::string::npos) << why;
}

TEST(Curve, ASecretKeyBehindASymlinkOrNotAFileIsRefused) {
  TempDir t;
  KeyPair k = generateKeyPair();
  writeKeyPair(t.path(), "hostA", k);
  EXPECT_EQ(readKeyPair(t.path() / "hostA.key").secret_key, k.secret_key);  // the file itself
  ASSERT_EQ(::symlink((t.path() / "hostA.key").c_str(), (t.path() / "link.key").c_str()), 0);
  EXPECT_NE(refusal(t.path() / "link.key").find("symlink"), std::string::npos);
  std::filesystem::create_directory(t.path() / "dir.key");
  ::chmod((t.path() / "dir.key").c_str(), 0700);
  EXPECT_NE(refusal(t.path() / "dir.key").find("not a regular file"), std::string::npos);
  // A FIFO neither hangs the reader nor passes.
  ASSERT_EQ(::mkfifo((t.path() / "fifo.key").c_str(), 0600), 0);
  EXPECT_NE(refusal(t.path() / "fifo.key").find("not a regular file"), std::string::npos);
}

TEST(Curve, KeysAreNeverWrittenThroughASymlink) {
  TempDir t;
  std::filesystem::path elsewhere = t.path() / "elsewhere";
  std::filesystem::create_directory(elsewhere);
  std::filesystem::create_directory(t.path() / "keys");
  // A dangling link where NAME.key or NAME.pub goes: writing through it
  // would create its target.
  ASSERT_EQ(::symlink((elsewhere / "stolen").c_str(), (t.path() / "keys" / "hostA.key").c_str()),
            0);
  EXPECT_THROW(writeKeyPair(t.path() / "keys", "hostA", generateKeyPair()), Error);
  ASSERT_EQ(
      ::symlink((elsewhere / "stolen.pub").c_str(), (t.path() / "keys" / "hostB.pub").c_str()), 0);
  EXPECT_THROW(writeKeyPair(t.path() / "keys", "hostB", generateKeyPair()), Error);
  EXPECT_FALSE(pathExists(t.path() / "keys" / "hostB.key")) << "half a key pair was written";
  // A link as the directory.
  ASSERT_EQ(::symlink(elsewhere.c_str(), (t.path() / "linkdir").c_str()), 0);
  EXPECT_THROW(writeKeyPair(t.path() / "linkdir", "hostC", generateKeyPair()), Error);
  EXPECT_TRUE(std::filesystem::is_empty(elsewhere)) << "a key went through a link";
  // Nothing but the links and no temp files are left behind.
  size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(t.path() / "keys")) ++n;
  EXPECT_EQ(n, 2u);
  // A new directory is private.
  writeKeyPair(t.path() / "new", "hostD", generateKeyPair());
  struct stat st;
  ASSERT_EQ(::stat((t.path() / "new").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0700u);
}

}  // namespace
}  // namespace ferry::proto
