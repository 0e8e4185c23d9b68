// The data plane's chunk stream over real ZeroMQ sockets on loopback.
#include "protocol/chunk_stream.h"

#include <arpa/inet.h>
#include <capnp/message.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <future>
#include <random>
#include <thread>
#include <tuple>
#include <utility>

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
      return errorOf([&] {
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
    Error e = errorOf([&] { rx.awaitOpen(); });
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
  Error e = errorOf([&] { drain(rx); });
  EXPECT_TRUE(stranger.sending()) << "the timeout waited for the stranger to stop: " << e.what();
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("nothing from the sender within 2000 ms"), std::string::npos)
      << e.what();
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

// ---- post-copy tunnel -------------------------------------------------------
// The two local ends stand in for CRIU's page server and lazy-pages daemon,
// speaking their request format (24-byte page_server_iov records); the real
// pair is exercised end to end by the post-copy migration tests.

constexpr uint32_t kGet = 7, kClose = 0x1023;
constexpr size_t kPage = 4096;

struct Iov {
  uint32_t cmd, nr_pages;
  uint64_t vaddr, dst_id;
};
static_assert(sizeof(Iov) == 24);

int listenLoopback(uint16_t* port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 4) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ADD_FAILURE() << "listen: " << std::strerror(errno);
  }
  *port = ntohs(a.sin_port);
  return fd;
}

int connectLoopback(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = htons(port);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ADD_FAILURE() << "connect: " << std::strerror(errno);
  }
  return fd;
}

bool readFull(int fd, void* buf, size_t n) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    ssize_t got = ::read(fd, p, n);
    if (got <= 0) return false;
    p += got;
    n -= static_cast<size_t>(got);
  }
  return true;
}

void writeFull(int fd, const void* buf, size_t n) {
  auto* p = static_cast<const char*>(buf);
  while (n > 0) {
    ssize_t put = ::send(fd, p, n, MSG_NOSIGNAL);
    if (put <= 0) return;
    p += put;
    n -= static_cast<size_t>(put);
  }
}

// The pages of `vaddr`, as the page server would have them.
std::string pagesAt(uint64_t vaddr, uint32_t n) {
  return bytesOf(n * kPage, static_cast<unsigned>(vaddr / kPage));
}

// A page server: answers GET with the header and the pages, CLOSE with a
// status, then waits for the peer's end. `answer` false: reads, never answers.
void pageServer(int fd, bool answer) {
  Iov iov;
  while (readFull(fd, &iov, sizeof iov)) {
    if (!answer) continue;
    if (iov.cmd == kGet) {
      writeFull(fd, &iov, sizeof iov);
      std::string pages = pagesAt(iov.vaddr, iov.nr_pages);
      writeFull(fd, pages.data(), pages.size());
    } else if (iov.cmd == kClose) {
      int32_t status = 0;
      writeFull(fd, &status, sizeof status);
      char c;
      EXPECT_EQ(::read(fd, &c, 1), 0) << "the daemon's end did not reach the page server";
      break;
    }
  }
  ::close(fd);
}

// A daemon: asks for `asks` (pages each), checks every answer, closes.
// Returns the bytes of pages it received intact.
uint64_t lazyDaemon(int fd, const std::vector<uint32_t>& asks) {
  uint64_t got = 0;
  uint64_t vaddr = 0x7f0000000000;
  for (uint32_t n : asks) {
    Iov iov{kGet, n, vaddr, 1};
    writeFull(fd, &iov, sizeof iov);
    Iov head;
    std::string pages(n * kPage, '\0');
    if (!readFull(fd, &head, sizeof head) || !readFull(fd, pages.data(), pages.size())) break;
    EXPECT_EQ(head.vaddr, vaddr);
    if (pages == pagesAt(vaddr, n)) got += pages.size();
    vaddr += n * kPage;
  }
  Iov close{kClose, 0, 0, 0};
  writeFull(fd, &close, sizeof close);
  int32_t status = -1;
  EXPECT_TRUE(readFull(fd, &status, sizeof status));
  EXPECT_EQ(status, 0);
  ::close(fd);
  return got;
}

// The daemon's connection and the pump's end of it: [0] the daemon's. (The
// agent's pair is TCP on loopback, for CRIU's socket options; the tunnel
// works on any stream socket.)
struct DaemonPair {
  int fd[2] = {-1, -1};
  DaemonPair() { EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fd), 0); }
  ~DaemonPair() {
    for (int f : fd) if (f >= 0) ::close(f);
  }
};

// Whether the daemon's end saw anything (bytes or an EOF) within `ms`.
bool daemonHears(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  return ::poll(&p, 1, ms) == 1;
}

TEST_F(ChunkStreamTest, ATunnelCarriesPagesBothWaysAndTheVerdictFollowsIt) {
  uint16_t ps_port = 0;
  int ps_listener = listenLoopback(&ps_port);
  std::thread server([&] { pageServer(::accept(ps_listener, nullptr, nullptr), true); });
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-t", "hostB", fast());
  std::atomic<bool> told{false};
  std::atomic<uint64_t> progress{0};
  auto sent = std::async(std::launch::async, [&] {
    ChunkSender tx(ctx_, rx.endpoint(), "tok-t", "post-copy", fast());
    tx.write("the images");
    int local = connectLoopback(ps_port);
    TunnelStats st = tx.finishWithTunnel(
        local, [&] { told = true; }, [&](uint64_t n) { progress = n; });
    ::close(local);
    return st;
  });
  EXPECT_EQ(drain(rx), "the images");
  std::atomic<bool> restored{false}, stop{false};
  // Faults, then a background fetch growing to 4 MiB (larger than a chunk).
  std::vector<uint32_t> asks = {1, 1, 1, 16, 1, 32, 1024, 1, 1, 48};
  uint64_t want = 0;
  for (uint32_t n : asks) want += n * kPage;
  DaemonPair pair;
  int daemon_end = std::exchange(pair.fd[0], -1);
  auto daemon = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(milliseconds(100));
    restored = true;
    return lazyDaemon(daemon_end, asks);
  });
  TunnelStats at_target = rx.serveTunnel(pair.fd[1], restored, stop);
  EXPECT_EQ(daemon.get(), want) << "pages arrived damaged or not at all";
  rx.accept();
  TunnelStats at_source = sent.get();
  server.join();
  EXPECT_TRUE(told.load()) << "the sender never heard 'restored'";
  EXPECT_TRUE(at_target.completed);
  EXPECT_EQ(at_target.fault_requests, 6u);
  EXPECT_EQ(at_target.fault_pages, 6u);
  EXPECT_EQ(at_target.background_requests, 4u);
  EXPECT_EQ(at_target.background_pages, 16u + 32 + 1024 + 48);
  // Headers and the close's status ride along with the pages.
  EXPECT_EQ(at_target.bytes_in, want + asks.size() * sizeof(Iov) + 4);
  EXPECT_EQ(at_source.bytes_out, at_target.bytes_in);
  EXPECT_EQ(at_source.bytes_in, at_target.bytes_out);
  EXPECT_GT(progress.load(), 0u);
  ::close(ps_listener);
}

// A sender whose tunnel is expected to fail (silence within `timeout`):
// its error, and what it could tell of the copy there (verdictUnknown,
// copyCutShort).
std::future<std::tuple<Error, bool, bool>> failingSender(zmq::context_t& ctx, ChunkReceiver& rx,
                                                         const std::string& token,
                                                         uint16_t ps_port, milliseconds timeout) {
  return std::async(std::launch::async, [&ctx, &rx, token, ps_port, timeout]() {
    ChunkSender tx(ctx, rx.endpoint(), token, "post-copy", fast(timeout));
    int local = connectLoopback(ps_port);
    Error e = errorOf([&] { tx.finishWithTunnel(local, nullptr, nullptr); });
    ::close(local);
    return std::tuple<Error, bool, bool>{e, tx.verdictUnknown(), tx.copyCutShort()};
  });
}

// The target gives up, but leaves the daemon's connection as it is: the
// agent kills the container before the daemon may let go of its faults.
TEST_F(ChunkStreamTest, ASilentPageServerEndsTheTunnelAndTheSenderKnowsTheCopyThereIsIncomplete) {
  uint16_t ps_port = 0;
  int ps_listener = listenLoopback(&ps_port);
  std::thread server([&] { pageServer(::accept(ps_listener, nullptr, nullptr), false); });
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-s", "hostB", fast(milliseconds(800)));
  auto sent = failingSender(ctx_, rx, "tok-s", ps_port, milliseconds(2500));
  EXPECT_EQ(drain(rx), "");
  std::atomic<bool> restored{true}, stop{false};
  DaemonPair pair;
  Iov iov{kGet, 1, 0x1000, 1};
  writeFull(pair.fd[0], &iov, sizeof iov);
  Error e = errorOf([&] { rx.serveTunnel(pair.fd[1], restored, stop); });
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_NE(std::string(e.what()).find("during post-copy"), std::string::npos) << e.what();
  EXPECT_FALSE(daemonHears(pair.fd[0], 0)) << "the tunnel ended the daemon's connection itself";
  auto [sender_error, unknown, cut_short] = sent.get();
  EXPECT_EQ(sender_error.category(), ErrorCategory::kRetryable) << sender_error.what();
  // The target said `restored`, but the page server never ended in order:
  // its copy lacks pages and cannot have been accepted.
  EXPECT_FALSE(unknown);
  EXPECT_TRUE(cut_short);
  ::shutdown(ps_listener, SHUT_RDWR);
  server.join();
  ::close(ps_listener);
}

// Every page went and the page server ended in order, but no verdict came:
// the copy there may run, so the source cannot tell.
TEST_F(ChunkStreamTest, AVerdictLostAfterTheLastPageLeavesTheOutcomeUnknown) {
  uint16_t ps_port = 0;
  int ps_listener = listenLoopback(&ps_port);
  std::thread server([&] { pageServer(::accept(ps_listener, nullptr, nullptr), true); });
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-u", "hostB", fast());
  auto sent = failingSender(ctx_, rx, "tok-u", ps_port, milliseconds(1500));
  EXPECT_EQ(drain(rx), "");
  std::atomic<bool> restored{true}, stop{false};
  DaemonPair pair;
  int daemon_end = std::exchange(pair.fd[0], -1);
  auto daemon = std::async(std::launch::async, [&] { return lazyDaemon(daemon_end, {1, 16}); });
  rx.serveTunnel(pair.fd[1], restored, stop);
  EXPECT_EQ(daemon.get(), 17 * kPage);
  // No verdict: the receiver is gone as far as the sender can tell.
  auto [e, unknown, cut_short] = sent.get();
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
  EXPECT_TRUE(unknown);
  EXPECT_FALSE(cut_short);
  server.join();
  ::close(ps_listener);
}

// A page server that hangs halfway through an answer, while the source
// itself stays there (its keepalives come): the target gives up on the
// pages that do not move, not only on a silent link.
TEST_F(ChunkStreamTest, APageServerHangingMidAnswerEndsTheTunnelDespiteKeepalives) {
  uint16_t ps_port = 0;
  int ps_listener = listenLoopback(&ps_port);
  std::atomic<bool> release{false};
  std::thread server([&] {
    int fd = ::accept(ps_listener, nullptr, nullptr);
    Iov iov;
    if (readFull(fd, &iov, sizeof iov)) {
      writeFull(fd, &iov, sizeof iov);
      std::string half = pagesAt(iov.vaddr, iov.nr_pages).substr(0, iov.nr_pages * kPage / 2);
      writeFull(fd, half.data(), half.size());
    }
    while (!release) std::this_thread::sleep_for(milliseconds(10));
    ::close(fd);
  });
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-h", "hostB", fast(milliseconds(1000)));
  auto sent = failingSender(ctx_, rx, "tok-h", ps_port, milliseconds(1500));
  EXPECT_EQ(drain(rx), "");
  std::atomic<bool> restored{true}, stop{false};
  DaemonPair pair;
  Iov iov{kGet, 64, 0x7f0000000000, 1};
  writeFull(pair.fd[0], &iov, sizeof iov);
  auto t0 = std::chrono::steady_clock::now();
  Error e = errorOf([&] { rx.serveTunnel(pair.fd[1], restored, stop); });
  EXPECT_NE(std::string(e.what()).find("no page from the sender's page server"), std::string::npos)
      << e.what();
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  // Half an answer may wait there, but no end:
  char buf[4096];
  while (::recv(pair.fd[0], buf, sizeof buf, MSG_DONTWAIT) > 0) {
  }
  EXPECT_FALSE(daemonHears(pair.fd[0], 0)) << "the tunnel ended the daemon's connection itself";
  auto [sender_error, unknown, cut_short] = sent.get();
  EXPECT_TRUE(cut_short) << sender_error.what();
  EXPECT_FALSE(unknown);
  release = true;
  server.join();
  ::close(ps_listener);
}

// A page server that ends while the daemon still waits is a failure for
// the target, not an end it passes on to the daemon.
TEST_F(ChunkStreamTest, APageServerEndingBeforeTheDaemonIsAFailureNotAnEof) {
  uint16_t ps_port = 0;
  int ps_listener = listenLoopback(&ps_port);
  std::thread server([&] {
    int fd = ::accept(ps_listener, nullptr, nullptr);
    Iov iov;
    readFull(fd, &iov, sizeof iov);
    ::close(fd);  // the dump died with a request open
  });
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-e", "hostB", fast());
  auto sent = std::async(std::launch::async, [&] {
    ChunkSender tx(ctx_, rx.endpoint(), "tok-e", "post-copy", fast());
    int local = connectLoopback(ps_port);
    Error e = errorOf([&] { tx.finishWithTunnel(local, nullptr, nullptr); });
    ::close(local);
  });
  EXPECT_EQ(drain(rx), "");
  std::atomic<bool> restored{true}, stop{false};
  DaemonPair pair;
  Iov iov{kGet, 1, 0x1000, 1};
  writeFull(pair.fd[0], &iov, sizeof iov);
  Error e = errorOf([&] { rx.serveTunnel(pair.fd[1], restored, stop); });
  EXPECT_NE(std::string(e.what()).find("page server ended before every page"), std::string::npos)
      << e.what();
  EXPECT_FALSE(daemonHears(pair.fd[0], 0)) << "the page server's end reached the daemon";
  rx.reject(e);
  sent.get();
  server.join();
  ::close(ps_listener);
}

TEST_F(ChunkStreamTest, StoppingATunnelLeavesTheDaemonsConnectionToTheCaller) {
  ChunkReceiver rx(ctx_, "tcp://127.0.0.1:0", "tok-x", "hostB", fast());
  ChunkSender tx(ctx_, rx.endpoint(), "tok-x", "post-copy", fast());
  tx.write("x");
  auto ended = std::async(std::launch::async, [&] {
    // finish() would wait for a verdict: sending the end is enough here.
    try {
      tx.finish();
    } catch (const Error&) {
    }
  });
  EXPECT_EQ(drain(rx), "x");
  std::atomic<bool> restored{false}, stop{false};
  DaemonPair pair;
  auto stopper = std::async(std::launch::async, [&] {
    std::this_thread::sleep_for(milliseconds(300));
    stop = true;
  });
  Error e = errorOf([&] { rx.serveTunnel(pair.fd[1], restored, stop); });
  EXPECT_NE(std::string(e.what()).find("stopped"), std::string::npos) << e.what();
  EXPECT_FALSE(daemonHears(pair.fd[0], 0));
  rx.reject(Error(ErrorCategory::kPermanent, "stopped"));
  ended.get();
}

}  // namespace
}  // namespace ferry::proto
