// CurveZMQ with an allow-list, over real sockets on loopback.
#include "protocol/curve.h"

#include <sys/stat.h>

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
  EXPECT_FALSE(reaches(ctx, endpoint, stranger, server.public_key, s, milliseconds(700)))
      << "an unlisted key got in";
  EXPECT_GE(zap.refused(), 1u);
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

}  // namespace
}  // namespace ferry::proto
