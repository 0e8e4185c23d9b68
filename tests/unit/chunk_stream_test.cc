// The data plane's chunk stream over real ZeroMQ sockets on loopback.
#include "protocol/chunk_stream.h"

#include <capnp/message.h>

#include <future>
#include <random>
#include <thread>

#include <gtest/gtest.h>

#include "protocol/framing.h"
#include "protocol/stream.capnp.h"

namespace ferry::proto {
namespace {

using std::chrono::milliseconds;

std::string bytesOf(size_t n, unsigned seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

std::string drain(ChunkReceiver& r) {
  std::string out;
  char buf[70000];  // odd-sized reads: chunk boundaries fall inside them
  for (size_t n; (n = r.read(buf, sizeof buf)) > 0;) out.append(buf, n);
  return out;
}

Error errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return Error(ErrorCategory::kPermanent, "none");
}

StreamOptions fast(milliseconds timeout = milliseconds(5000)) {
  return {.chunk_bytes = 256 << 10, .window = 4, .timeout = timeout};
}

class ChunkStreamTest : public ::testing::Test {
 protected:
  zmq::context_t ctx_;
};

TEST_F(ChunkStreamTest, BytesArriveIntactInOrderAndTheVerdictReturns) {
  std::string payload = bytesOf(9 << 20, 1);  // many chunks, a partial last one
  payload += "tail";
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-1", "hostB", fast());
  auto sent = std::async(std::launch::async, [&] {
    ChunkSender tx(ctx_, rx.endpoint(), "tok-1", "test stream", fast());
    std::mt19937 rng(2);
    for (size_t pos = 0; pos < payload.size();) {
      size_t n = std::min<size_t>(payload.size() - pos, 1 + rng() % (600 << 10));
      tx.write(std::string_view(payload).substr(pos, n));
      pos += n;
    }
    tx.finish();
    return tx.bytesSent();
  });
  std::string got = drain(rx);
  rx.accept();
  EXPECT_EQ(sent.get(), payload.size());
  EXPECT_EQ(got.size(), payload.size());
  EXPECT_TRUE(got == payload) << "bytes differ";
  EXPECT_EQ(rx.label(), "test stream");
}

TEST_F(ChunkStreamTest, ASlowReaderHoldsTheSenderBackAndAStalledOneTimesItOut) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  ChunkSender tx(ctx_, rx.endpoint(), "t", "stall", fast(milliseconds(300)));
  std::thread opener([&] { rx.awaitOpen(); });
  opener.join();
  // The window is 4 chunks: the 5th cannot go until the reader takes one.
  std::string chunk(256 << 10, 'x');
  for (int i = 0; i < 4; ++i) tx.write(chunk);
  Error e = errorOf([&] { tx.write(chunk); tx.write(chunk); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("granted no credit"), std::string::npos) << e.what();
}

TEST_F(ChunkStreamTest, AWrongTokenIsRefusedAndCannotDisturbTheRealStream) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "right", "hostB", fast());
  // The receiver pumps (awaitOpen) until the right sender opens, which
  // happens only after the intruder has been refused.
  auto received = std::async(std::launch::async, [&] {
    rx.awaitOpen();
    std::string got = drain(rx);
    rx.accept();
    return got;
  });
  Error e = errorOf([&] {
    ChunkSender bad(ctx_, rx.endpoint(), "wrong", "intruder", fast());
    bad.write(std::string(1 << 20, 'x'));
  });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_NE(std::string(e.what()).find("stream token refused"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("hostB"), std::string::npos) << e.what();
  // Raw garbage from another stranger.
  zmq::socket_t junk(ctx_, zmq::socket_type::dealer);
  junk.set(zmq::sockopt::linger, 0);
  junk.connect(rx.endpoint());
  junk.send(zmq::str_buffer("not a capnp message!"), zmq::send_flags::none);
  ChunkSender tx(ctx_, rx.endpoint(), "right", "real", fast());
  tx.write("hello");
  tx.finish();
  EXPECT_EQ(received.get(), "hello");
}

TEST_F(ChunkStreamTest, TheReceiversRefusalReachesTheSenderWithItsCategory) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  auto sent = std::async(std::launch::async, [&] {
    ChunkSender tx(ctx_, rx.endpoint(), "t", "refused", fast());
    tx.write(bytesOf(1 << 20, 3));
    return errorOf([&] { tx.finish(); });
  });
  drain(rx);
  rx.reject(Error(ErrorCategory::kIncompatible, "arch: hostA is x86_64, hostB is aarch64"));
  Error e = sent.get();
  EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
  EXPECT_NE(std::string(e.what()).find("arch: hostA is x86_64"), std::string::npos) << e.what();
}

TEST_F(ChunkStreamTest, AnAbortOrASilentSenderEndsTheReader) {
  {
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
    auto reader = std::async(std::launch::async, [&] { return errorOf([&] { drain(rx); }); });
    {
      ChunkSender tx(ctx_, rx.endpoint(), "t", "aborted", fast());
      tx.write(std::string(300 << 10, 'a'));
      tx.abort("source container vanished");
    }
    Error e = reader.get();
    EXPECT_NE(std::string(e.what()).find("source container vanished"), std::string::npos) << e.what();
  }
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast(milliseconds(300)));
  zmq::socket_t silent(ctx_, zmq::socket_type::dealer);  // opens, then says nothing
  silent.set(zmq::sockopt::linger, 0);
  silent.connect(rx.endpoint());
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION);
  m.initOpen().setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("t"), 1));
  silent.send(encode(mb), zmq::send_flags::none);
  Error e = errorOf([&] { drain(rx); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("nothing from the sender"), std::string::npos) << e.what();
}

TEST_F(ChunkStreamTest, ADamagedChunkIsCaught) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(rx.endpoint());
  auto send = [&](auto fill) {
    capnp::MallocMessageBuilder mb;
    auto m = mb.initRoot<StreamMessage>();
    m.setVersion(STREAM_PROTOCOL_VERSION);
    fill(m);
    raw.send(encode(mb), zmq::send_flags::none);
  };
  send([](StreamMessage::Builder m) {
    m.initOpen().setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("t"), 1));
  });
  send([](StreamMessage::Builder m) {
    auto c = m.initChunk();
    c.setSeq(0);
    c.setData(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("abc"), 3));
    c.setXxh3(12345);  // not the checksum of "abc"
  });
  Error e = errorOf([&] { drain(rx); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_NE(std::string(e.what()).find("fails its checksum"), std::string::npos) << e.what();
}

TEST_F(ChunkStreamTest, EncryptedStreamsAdmitOnlyListedSenders) {
  KeyPair target = generateKeyPair(), source = generateKeyPair(), stranger = generateKeyPair();
  ZapAuthenticator zap(ctx_, {source.public_key});
  StreamOptions rx_opts = fast();
  rx_opts.own_keys = target;
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", rx_opts);
  auto got = std::async(std::launch::async, [&] {
    std::string s = drain(rx);
    rx.accept();
    return s;
  });
  // A stranger with the right token but an unlisted key is never heard.
  StreamOptions bad = fast(milliseconds(700));
  bad.own_keys = stranger;
  bad.peer_public_key = target.public_key;
  Error e = errorOf([&] {
    ChunkSender tx(ctx_, rx.endpoint(), "t", "stranger", bad);
    tx.write(std::string(1 << 20, 's'));
  });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
  StreamOptions good = fast();
  good.own_keys = source;
  good.peer_public_key = target.public_key;
  std::string payload = bytesOf(3 << 20, 9);
  ChunkSender tx(ctx_, rx.endpoint(), "t", "encrypted", good);
  tx.write(payload);
  tx.finish();
  EXPECT_TRUE(got.get() == payload);
  EXPECT_GE(zap.refused(), 1u);
}

TEST(Framing, GarbageFramesAreInvalidInputNotCrashes) {
  EXPECT_THROW(Decoded(zmq::message_t(std::string("short"))), Error);
  std::string words(64, '\xff');  // a whole number of words, nonsense pointers
  try {
    Decoded d{zmq::message_t(words.data(), words.size())};
    auto m = d.root<StreamMessage>();
    guard([&] { return m.getVersion() + m.getOpen().getLabel().size(); });
    ADD_FAILURE() << "garbage decoded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  }
}

}  // namespace
}  // namespace ferry::proto
