// Control-plane request/reply over real ZeroMQ sockets on loopback.
#include "protocol/rpc.h"

#include <atomic>
#include <future>

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

}  // namespace
}  // namespace ferry::proto
