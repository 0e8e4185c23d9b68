// Control-plane request/reply over real ZeroMQ sockets on loopback.
#include "protocol/rpc.h"

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <future>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

namespace ferry::proto {
namespace {

using std::chrono::milliseconds;

// Serves until `stop`: ping -> ok; listHosts -> two progress messages then
// hosts; stop -> an error with its category; anything else -> error.
void serve(RpcServer& s, std::atomic<bool>& stop) {
  while (!stop) {
    auto r = s.next(milliseconds(50));
    if (!r) continue;
    switch (r->msg.which()) {
      case Message::PING:
        s.reply(*r, [](Message::Builder m) { m.setOk(); });
        break;
      case Message::LIST_HOSTS:
        for (int i = 1; i <= 2; ++i) {
          s.sendTo(r->peer, r->id, [&](Message::Builder m) {
            auto p = m.initProgress();
            p.setPhase("transfer");
            p.setBytesDone(static_cast<uint64_t>(i) * 100);
          });
        }
        s.reply(*r, [](Message::Builder m) {
          auto hosts = m.initHosts(1);
          hosts[0].setName("hostA");
          hosts[0].setUp(true);
        });
        break;
      case Message::STOP:
        s.replyError(*r, Error(ErrorCategory::kInvalidInput, "no container 'x'"), "hostA");
        break;
      default:
        s.replyError(*r, Error(ErrorCategory::kInvalidInput, "not a request"), "coordinator");
    }
  }
}

class RpcTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<RpcServer>(ctx_, "tcp://127.0.0.1:0");
    thread_ = std::thread([this] { serve(*server_, stop_); });
  }
  void TearDown() override {
    stop_ = true;
    thread_.join();
  }
  zmq::context_t ctx_;
  std::unique_ptr<RpcServer> server_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

TEST_F(RpcTest, RequestsGetTheirRepliesWithProgressFirst) {
  RpcClient c(ctx_, server_->endpoint());
  auto ok = c.call([](Message::Builder m) { m.setPing(); }, milliseconds(5000));
  EXPECT_TRUE(ok->root<Message>().isOk());
  std::vector<uint64_t> seen;
  auto hosts = c.call([](Message::Builder m) { m.setListHosts(); }, milliseconds(5000),
                      [&](Progress::Reader p) { seen.push_back(p.getBytesDone()); });
  EXPECT_EQ(seen, (std::vector<uint64_t>{100, 200}));
  auto list = hosts->root<Message>().getHosts();
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(std::string(list[0].getName().cStr()), "hostA");
}

TEST_F(RpcTest, ErrorRepliesKeepTheirCategoryAndHost) {
  RpcClient c(ctx_, server_->endpoint());
  try {
    c.call([](Message::Builder m) { m.setStop("x"); }, milliseconds(5000));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_EQ(std::string(e.what()), "hostA: no container 'x'");
  }
}

TEST_F(RpcTest, GarbageIsCountedAndAnsweredNeverFatal) {
  zmq::socket_t raw(ctx_, zmq::socket_type::dealer);
  raw.set(zmq::sockopt::linger, 0);
  raw.connect(server_->endpoint());
  raw.send(zmq::str_buffer("garbage!"), zmq::send_flags::none);  // one word of nonsense
  raw.send(zmq::str_buffer("odd"), zmq::send_flags::none);       // not even a word
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (server_->malformed() < 2 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(milliseconds(10));  // polling a counter, with a deadline
  }
  EXPECT_EQ(server_->malformed(), 2u) << "garbage frames not seen as malformed";
  // And the server still answers.
  RpcClient c(ctx_, server_->endpoint());
  EXPECT_TRUE(c.call([](Message::Builder m) { m.setPing(); }, milliseconds(5000))->root<Message>().isOk());
}

TEST(Rpc, NoServerIsARetryableTimeoutThatSaysWhere) {
  zmq::context_t ctx;
  RpcClient c(ctx, "tcp://127.0.0.1:1");  // nothing listens on port 1
  try {
    c.call([](Message::Builder m) { m.setPing(); }, milliseconds(300));
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
    EXPECT_NE(std::string(e.what()).find("no answer from tcp://127.0.0.1:1"), std::string::npos);
  }
}

// libzmq 4.3's unix-socket listener asserts on accept4's EMFILE and aborts
// the process (a CI run lost its coordinator so, to a TCP flood under a low
// fd limit as the CLI connected); connection_limit.cc's accept4 reports it
// as ENFILE, which libzmq waits out. Without that, this test dies with
// "Too many open files (src/ipc_listener.cpp:...)".
TEST(RpcServerFds, AUnixClientArrivingWhileNoFdIsFreeWaitsInsteadOfAbortingTheServer) {
  std::string path = "/tmp/ferry-rpc-emfile-" + std::to_string(::getpid()) + ".sock";
  zmq::context_t ctx;
  RpcServer server(ctx, "ipc://" + path);
  std::atomic<bool> stop{false};
  std::thread serving([&] { serve(server, stop); });
  int client = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  ASSERT_GE(client, 0);
  rlimit before{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &before), 0);
  size_t open_now = 0;
  for (auto& e : std::filesystem::directory_iterator("/proc/self/fd")) {
    (void)e;
    ++open_now;
  }
  rlimit low = before;
  low.rlim_cur = open_now + 8;
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> filler;
  for (int fd; (fd = ::dup(0)) >= 0;) filler.push_back(fd);
  ASSERT_EQ(errno, EMFILE);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
  ASSERT_EQ(::connect(client, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << std::strerror(errno);
  std::this_thread::sleep_for(milliseconds(300));  // the server's accept meets EMFILE meanwhile
  for (int fd : filler) ::close(fd);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &before), 0);
  // Alive, and answering.
  RpcClient c(ctx, "ipc://" + path);
  auto ok = c.call([](Message::Builder m) { m.setPing(); }, milliseconds(5000));
  EXPECT_TRUE(ok->root<Message>().isOk());
  ::close(client);
  stop = true;
  serving.join();
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace ferry::proto
