// The data plane's chunk stream over real ZeroMQ sockets on loopback.
#include "protocol/chunk_stream.h"

#include <arpa/inet.h>
#include <capnp/message.h>
#include <capnp/orphan.h>
#include <capnp/serialize.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <future>
#include <functional>
#include <random>
#include <thread>
#include <tuple>
#include <utility>

#include <gtest/gtest.h>

#include "tests/support/error_of.h"

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
  Error e = test::thrownError([&] { tx.write(chunk); tx.write(chunk); });
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
  Error e = test::thrownError([&] {
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
    return test::thrownError([&] { tx.finish(); });
  });
  drain(rx);
  rx.reject(Error(ErrorCategory::kIncompatible, "arch: hostA is x86_64, hostB is aarch64"));
  Error e = sent.get();
  EXPECT_EQ(e.category(), ErrorCategory::kIncompatible);
  EXPECT_NE(std::string(e.what()).find("arch: hostA is x86_64"), std::string::npos) << e.what();
}

// A receiver that fails mid-stream (a full disk) rejects and closes its
// socket at once. The refusal must still reach the sender, which is
// waiting for credit, not leave it to report silence. Repeated: dropping
// it is a race of the close against ZeroMQ's I/O thread.
TEST_F(ChunkStreamTest, ARefusalSentRightBeforeTheCloseStillArrives) {
  for (int i = 0; i < 20; ++i) {
    auto rx = std::make_unique<ChunkReceiver>(ctx_, "tcp://127.0.0.1:0", "t", "hostB",
                                              fast(milliseconds(3000)));
    auto sent = std::async(std::launch::async, [&, endpoint = rx->endpoint()] {
      ChunkSender tx(ctx_, endpoint, "t", "refused mid-stream", fast(milliseconds(3000)));
      return test::thrownError([&] {
        for (;;) tx.write(bytesOf(256 << 10, 4));
      });
    });
    char buf[4096];
    ASSERT_GT(rx->read(buf, sizeof buf), 0u);
    rx->reject(Error(ErrorCategory::kRetryable, "writing: No space left on device"));
    rx.reset();
    Error e = sent.get();
    ASSERT_NE(std::string(e.what()).find("No space left on device"), std::string::npos)
        << "attempt " << i << ": " << e.what();
  }
}

TEST_F(ChunkStreamTest, AnAbortOrASilentSenderEndsTheReader) {
  {
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
    auto reader = std::async(std::launch::async, [&] { return test::thrownError([&] { drain(rx); }); });
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
  Error e = test::thrownError([&] { drain(rx); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("nothing from the sender"), std::string::npos) << e.what();
}

// Sends one StreamMessage from a raw DEALER (a peer that does not follow
// the protocol: a stranger, or a sender that opens and falls silent).
void sendRaw(zmq::socket_t& s, const std::function<void(StreamMessage::Builder)>& fill) {
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION);
  fill(m);
  s.send(encode(mb), zmq::send_flags::none);
}

capnp::Data::Reader dataOf(std::string_view s) {
  return capnp::Data::Reader(reinterpret_cast<const kj::byte*>(s.data()), s.size());
}

// A stranger that sends a frame every 100 ms for at most `frames` frames
// (far longer than the receivers' timeouts here): wrong-token opens,
// plausible chunks and garbage, from its own connection.
class Stranger {
 public:
  Stranger(zmq::context_t& ctx, const std::string& endpoint, int frames)
      : sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(endpoint);
    thread_ = std::thread([this, frames] {
      for (int i = 0; i < frames && !stop_; ++i) {
        switch (i % 3) {
          case 0: sendRaw(sock_, [](StreamMessage::Builder m) { m.initOpen().setToken(dataOf("x")); }); break;
          case 1:
            sendRaw(sock_, [](StreamMessage::Builder m) {
              auto c = m.initChunk();
              c.setSeq(0);
              c.setData(dataOf("abc"));
              c.setXxh3(XXH3_64bits("abc", 3));
            });
            break;
          default: sock_.send(zmq::str_buffer("garbage"), zmq::send_flags::none);
        }
        std::this_thread::sleep_for(milliseconds(100));
      }
      sending_ = false;
    });
  }
  ~Stranger() {
    stop_ = true;
    thread_.join();
  }
  bool sending() const { return sending_; }

 private:
  zmq::socket_t sock_;
  std::atomic<bool> stop_{false}, sending_{true};
  std::thread thread_;
};

// Fault: a stranger keeps sending to a receiver (before and after the real
// sender opened the stream). Promise: the receiver's timeout runs from the
// last frame of its sender alone -- it fires while the stranger is still
// sending (its 150 frames would last 15 s; the timeout is 2 s), so a
// stranger cannot hold the receiver, its worker and the container's mark.
TEST_F(ChunkStreamTest, AStrangersFramesDoNotKeepAStreamAlive) {
  {  // No sender opened: the stranger's opens and chunks are refused or dropped.
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast(milliseconds(2000)));
    Stranger stranger(ctx_, rx.endpoint(), 150);
    Error e = test::thrownError([&] { rx.awaitOpen(); });
    EXPECT_TRUE(stranger.sending()) << "the timeout waited for the stranger to stop: " << e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
    EXPECT_NE(std::string(e.what()).find("nothing from the sender within 2000 ms"),
              std::string::npos)
        << e.what();
  }
  // The sender opened with the token, then fell silent.
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast(milliseconds(2000)));
  zmq::socket_t silent(ctx_, zmq::socket_type::dealer);
  silent.set(zmq::sockopt::linger, 0);
  silent.connect(rx.endpoint());
  sendRaw(silent, [](StreamMessage::Builder m) { m.initOpen().setToken(dataOf("t")); });
  rx.awaitOpen();
  Stranger stranger(ctx_, rx.endpoint(), 150);
  Error e = test::thrownError([&] { drain(rx); });
  EXPECT_TRUE(stranger.sending()) << "the timeout waited for the stranger to stop: " << e.what();
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("nothing from the sender within 2000 ms"), std::string::npos)
      << e.what();
}

// A sender written by hand: opens the stream to `rx` with token "t", then
// send() sends whatever message it fills in.
class RawSender {
 public:
  RawSender(zmq::context_t& ctx, ChunkReceiver& rx) : sock_(ctx, zmq::socket_type::dealer) {
    sock_.set(zmq::sockopt::linger, 0);
    sock_.connect(rx.endpoint());
    send([](StreamMessage::Builder m) {
      m.initOpen().setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("t"), 1));
    });
  }
  void send(const std::function<void(StreamMessage::Builder)>& fill) {
    capnp::MallocMessageBuilder mb;
    auto m = mb.initRoot<StreamMessage>();
    m.setVersion(STREAM_PROTOCOL_VERSION);
    fill(m);
    sock_.send(encode(mb), zmq::send_flags::none);
  }

 private:
  zmq::socket_t sock_;
};

TEST_F(ChunkStreamTest, ADamagedChunkIsCaught) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  RawSender raw(ctx_, rx);
  raw.send([](StreamMessage::Builder m) {
    auto c = m.initChunk();
    c.setSeq(0);
    c.setData(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("abc"), 3));
    c.setXxh3(12345);  // not the checksum of "abc"
  });
  Error e = test::thrownError([&] { drain(rx); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_NE(std::string(e.what()).find("fails its checksum"), std::string::npos) << e.what();
}

// Stream protocol 5: the end's checksum is over the chunks' checksums, in
// order. A sender whose chunks are each intact but whose end was computed
// over them in another order is refused; the right order is taken.
TEST_F(ChunkStreamTest, TheEndsChecksumIsOverTheChunksChecksumsInOrder) {
  const std::string parts[2] = {"first", "second"};
  auto endOver = [&](std::initializer_list<int> order) {
    XXH3_state_t* st = XXH3_createState();
    XXH3_64bits_reset(st);
    for (int i : order) addChunkHash(st, XXH3_64bits(parts[i].data(), parts[i].size()));
    uint64_t v = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return v;
  };
  auto run = [&](uint64_t end_xxh3) -> std::string {
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
    RawSender raw(ctx_, rx);
    for (uint64_t i = 0; i < 2; ++i) {
      raw.send([&](StreamMessage::Builder m) {
        auto c = m.initChunk();
        c.setSeq(i);
        c.setData(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(parts[i].data()),
                                      parts[i].size()));
        c.setXxh3(XXH3_64bits(parts[i].data(), parts[i].size()));
      });
    }
    raw.send([&](StreamMessage::Builder m) {
      auto e = m.initEnd();
      e.setChunks(2);
      e.setBytes(parts[0].size() + parts[1].size());
      e.setXxh3(end_xxh3);
    });
    return drain(rx);
  };
  // The wire format, pinned apart from addChunkHash: the two chunk hashes
  // as 16 little-endian bytes, hashed at once.
  unsigned char le[16];
  for (int c = 0; c < 2; ++c) {
    uint64_t h = XXH3_64bits(parts[c].data(), parts[c].size());
    for (int i = 0; i < 8; ++i) le[8 * c + i] = static_cast<unsigned char>(h >> (8 * i));
  }
  EXPECT_EQ(endOver({0, 1}), XXH3_64bits(le, sizeof le));
  EXPECT_EQ(run(endOver({0, 1})), "firstsecond");
  Error e = test::thrownError([&] { run(endOver({1, 0})); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_NE(std::string(e.what()).find("does not match"), std::string::npos) << e.what();
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
  Error e = test::thrownError([&] {
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

// The link probe: what a sender measures before the stream's bytes, dropped
// by the receiver, which grants each probe's credit back.
TEST_F(ChunkStreamTest, ALinkProbeMeasuresAndTheStreamThenCarriesItsBytesIntact) {
  std::string payload = bytesOf(3 << 20, 7);
  StreamOptions opts{.timeout = milliseconds(5000)};  // the agents' chunk (1 MiB) and window (8)
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "p", "hostB", opts);
  auto received = std::async(std::launch::async, [&] {
    std::string got = drain(rx);
    rx.accept();
    return got;
  });
  ChunkSender tx(ctx_, rx.endpoint(), "p", "probed", opts);
  LinkProbe probe = tx.probeLink();
  // Probes of a chunk each, sent for kProbeSendFor or until 32 MiB went:
  // whole chunks, and either the cap or (nearly) the time was reached.
  EXPECT_GE(probe.bytes, uint64_t{2} << 20) << "a single probe measures nothing steady";
  EXPECT_EQ(probe.bytes % opts.chunk_bytes, 0u);
  EXPECT_LE(probe.bytes, ChunkSender::kProbeMaxBytes + opts.chunk_bytes);
  EXPECT_TRUE(probe.bytes >= ChunkSender::kProbeMaxBytes || probe.us >= 150'000)
      << probe.bytes << " bytes in " << probe.us << " us";
  // The steady part leaves out the first probe's round trip: fewer bytes,
  // and a shorter time, than the whole.
  EXPECT_GT(probe.steady_bytes, 0u);
  EXPECT_LT(probe.steady_bytes, probe.bytes);
  EXPECT_GT(probe.steady_us, 0);
  EXPECT_LT(probe.steady_us, probe.us);
  EXPECT_GT(probe.bytesPerSecond(), 10e6) << "loopback carried under 10 MB/s?";
  tx.write(payload);
  tx.finish();
  EXPECT_EQ(tx.bytesSent(), payload.size()) << "probes are not stream bytes";
  std::string got = received.get();
  EXPECT_TRUE(got == payload) << "bytes differ after the probe";
}

TEST_F(ChunkStreamTest, AProbeAfterTheBytesOrLargerThanAChunkIsRefused) {
  {  // The sender will not probe once bytes went.
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "p", "hostB", fast());
    ChunkSender tx(ctx_, rx.endpoint(), "p", "late probe", fast());
    tx.write("x");
    Error e = test::thrownError([&] { tx.probeLink(); });
    EXPECT_NE(std::string(e.what()).find("a link probe after the stream's bytes"),
              std::string::npos)
        << e.what();
  }
  // A sender that breaks the rule: the receiver ends the stream.
  for (bool after_a_chunk : {false, true}) {
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "p", "hostB", fast());
    zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(rx.endpoint());
    sendRaw(raw, [](StreamMessage::Builder m) { m.initOpen().setToken(dataOf("p")); });
    if (after_a_chunk) {
      sendRaw(raw, [](StreamMessage::Builder m) {
        auto c = m.initChunk();
        c.setSeq(0);
        c.setData(dataOf("abc"));
        c.setXxh3(XXH3_64bits("abc", 3));
      });
    }
    std::string big((256 << 10) + (after_a_chunk ? 0 : 1), 'p');  // fast(): 256 KiB chunks
    sendRaw(raw, [&](StreamMessage::Builder m) { m.setProbe(dataOf(big)); });
    Error e = test::thrownError([&] {
      char buf[16];
      while (rx.read(buf, sizeof buf) > 0) {
      }
    });
    EXPECT_NE(std::string(e.what())
                  .find(after_a_chunk ? "a link probe after the stream's bytes"
                                      : "a link probe larger than a chunk"),
              std::string::npos)
        << e.what();
  }
  // Probes without end (they restart the receiver's wait each time) are
  // refused past what a sender may probe.
  {
    ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "p", "hostB", fast());
    zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
    raw.set(zmq::sockopt::linger, 0);
    raw.connect(rx.endpoint());
    sendRaw(raw, [](StreamMessage::Builder m) { m.initOpen().setToken(dataOf("p")); });
    std::string probe(256 << 10, 'p');
    for (uint64_t sent = 0; sent <= ChunkSender::kProbeMaxBytes + probe.size(); sent += probe.size()) {
      sendRaw(raw, [&](StreamMessage::Builder m) { m.setProbe(dataOf(probe)); });
    }
    Error e = test::thrownError([&] {
      char buf[16];
      while (rx.read(buf, sizeof buf) > 0) {
      }
    });
    EXPECT_NE(std::string(e.what()).find("link probes past 32 MiB"), std::string::npos)
        << e.what();
  }
}

// A sender with the right token on another protocol version (a rolling
// upgrade) is told so, not that its token is wrong.
TEST_F(ChunkStreamTest, AnotherProtocolVersionIsRefusedByName) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "v", "hostB", fast(milliseconds(500)));
  auto reader = std::async(std::launch::async, [&] { return test::thrownError([&] { drain(rx); }); });
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(rx.endpoint());
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION - 1);
  m.initOpen().setToken(dataOf("v"));
  raw.send(encode(mb), zmq::send_flags::none);
  zmq::pollitem_t item{raw.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_EQ(zmq::poll(&item, 1, milliseconds(5000)), 1) << "no answer";
  zmq::message_t reply;
  ASSERT_TRUE(raw.recv(reply, zmq::recv_flags::none));
  Decoded d(reply);
  auto r = d.root<StreamMessage>();
  ASSERT_TRUE(r.isDone() && r.getDone().isError());
  EXPECT_EQ(r.getDone().getError().getCategory(), ErrorKind::INCOMPATIBLE);
  std::string text = r.getDone().getError().getMessage().cStr();
  EXPECT_NE(text.find("the sender speaks stream protocol " +
                      std::to_string(STREAM_PROTOCOL_VERSION - 1) + ", this agent " +
                      std::to_string(STREAM_PROTOCOL_VERSION)),
            std::string::npos)
      << text;
  reader.get();  // the receiver itself times out: nobody opened the stream
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

// encode() writes the segments straight into the frame; the bytes must be
// those of Cap'n Proto's own flat array, with a chunk's bytes referenced
// from outside the message as with them copied in.
TEST(Framing, EncodeWritesCapnpsFlatArrayAlsoWithExternalData) {
  std::string bytes = bytesOf(64 << 10, 9);  // whole words, malloc-aligned
  for (bool external : {false, true}) {
    capnp::MallocMessageBuilder mb;
    auto m = mb.initRoot<StreamMessage>();
    m.setVersion(STREAM_PROTOCOL_VERSION);
    auto c = m.initChunk();
    c.setSeq(7);
    if (external) {
      c.adoptData(capnp::Orphanage::getForMessageContaining(m).referenceExternalData(
          dataOf(bytes)));
    } else {
      c.setData(dataOf(bytes));
    }
    zmq::message_t frame = encode(mb);
    auto flat = capnp::messageToFlatArray(mb);
    ASSERT_EQ(frame.size(), flat.asBytes().size()) << "external " << external;
    EXPECT_EQ(std::memcmp(frame.data(), flat.asBytes().begin(), frame.size()), 0)
        << "external " << external;
    Decoded d(frame);
    auto data = d.root<StreamMessage>().getChunk().getData();
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(data.begin()), data.size()), bytes);
  }
}

// A frame moved into Decoded is read where it lies when it is word-aligned
// (a chunk is not copied again) and copied first when it is not; both read
// the same message.
TEST(Framing, AMovedFrameIsReadInPlaceWhenAlignedAndCopiedWhenNot) {
  capnp::MallocMessageBuilder mb;
  auto m = mb.initRoot<StreamMessage>();
  m.setVersion(STREAM_PROTOCOL_VERSION);
  m.initChunk().setData(dataOf("some bytes of a chunk"));
  auto flat = capnp::messageToFlatArray(mb);
  const size_t size = flat.asBytes().size();
  // One buffer, the message at offset 0 (aligned) and at offset 1 (not).
  auto storage = kj::heapArray<capnp::word>(size / sizeof(capnp::word) + 2);
  char* base = reinterpret_cast<char*>(storage.begin());
  for (size_t offset : {size_t{0}, size_t{1}}) {
    char* at = base + offset;
    std::memcpy(at, flat.asBytes().begin(), size);
    // Zero-copy: the frame's data is that buffer (nothing to free).
    zmq::message_t frame(at, size, [](void*, void*) {}, nullptr);
    Decoded d(std::move(frame));
    auto data = d.root<StreamMessage>().getChunk().getData();
    EXPECT_EQ(std::string_view(reinterpret_cast<const char*>(data.begin()), data.size()),
              "some bytes of a chunk");
    const char* p = reinterpret_cast<const char*>(data.begin());
    const bool inside = p >= at && p < at + size;
    EXPECT_EQ(inside, offset == 0) << "offset " << offset;
  }
}

// A chunk of no bytes would read as the end of the stream: refused.
TEST_F(ChunkStreamTest, AnEmptyChunkIsRefused) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(rx.endpoint());
  sendRaw(raw, [](StreamMessage::Builder m) { m.initOpen().setToken(dataOf("t")); });
  sendRaw(raw, [](StreamMessage::Builder m) {
    auto c = m.initChunk();
    c.setSeq(0);
    c.setData(dataOf(""));
    c.setXxh3(XXH3_64bits("", 0));
  });
  Error e = test::thrownError([&] { drain(rx); });
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_NE(std::string(e.what()).find("an empty chunk"), std::string::npos) << e.what();
}

// Whole chunks go from the caller's buffer: aligned ones referenced into
// the frame, unaligned ones (or of an odd size) copied. Both arrive intact.
TEST_F(ChunkStreamTest, ChunksFromAlignedAndUnalignedBuffersArriveIntact) {
  const size_t chunk = 256 << 10;
  std::string backing = bytesOf(4 * chunk + 16, 5);
  std::string_view aligned(backing.data(), 2 * chunk);         // malloc-aligned
  std::string_view unaligned(backing.data() + 3, 2 * chunk);   // off by 3
  std::string_view odd(backing.data() + 8, chunk - 5);         // not whole words
  std::string expected = std::string(aligned) + std::string(unaligned) + std::string(odd);
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "t", "hostB", fast());
  auto sent = std::async(std::launch::async, [&] {
    ChunkSender tx(ctx_, rx.endpoint(), "t", "aligned", fast());
    tx.write(aligned);
    tx.write(unaligned);
    tx.write(odd);
    tx.finish();
  });
  std::string got = drain(rx);
  rx.accept();
  sent.get();
  EXPECT_EQ(got.size(), expected.size());
  EXPECT_TRUE(got == expected) << "bytes differ";
}

// A signal handled on a stream's thread (the agent's SIGTERM handler runs on
// whichever thread the kernel picks) interrupts its poll with EINTR: that
// must not end the wait, on either side. Found by fuzz_chunk_receiver, where
// libFuzzer's SIGALRM did it.
TEST_F(ChunkStreamTest, ASignalDoesNotEndTheReceiversOrTheSendersWait) {
  struct sigaction sa {}, old_sa {};
  sa.sa_handler = [](int) {};
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: poll fails with EINTR
  ASSERT_EQ(sigaction(SIGUSR1, &sa, &old_sa), 0);
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-sig", "hostB", fast());
  std::promise<pthread_t> sender_thread;
  std::atomic<bool> done{false};
  pthread_t reader = pthread_self();
  auto pester = std::async(std::launch::async, [&] {
    pthread_t sender = sender_thread.get_future().get();
    while (!done) {
      pthread_kill(reader, SIGUSR1);
      pthread_kill(sender, SIGUSR1);
      std::this_thread::sleep_for(milliseconds(10));
    }
  });
  auto sent = std::async(std::launch::async, [&] {
    sender_thread.set_value(pthread_self());
    std::this_thread::sleep_for(milliseconds(300));  // the reader waits, signalled, meanwhile
    ChunkSender tx(ctx_, rx.endpoint(), "tok-sig", "signalled", fast());
    tx.write("payload");
    tx.finish();  // waits for the verdict, signalled
  });
  std::string got;
  try {
    got = drain(rx);
    std::this_thread::sleep_for(milliseconds(300));  // the sender waits for the verdict
    rx.accept();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the reader failed: " << e.what();
  }
  try {
    sent.get();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "the sender failed: " << e.what();
  }
  done = true;
  pester.get();
  sigaction(SIGUSR1, &old_sa, nullptr);
  EXPECT_EQ(got, "payload");
}

}  // namespace
}  // namespace ferry::proto
