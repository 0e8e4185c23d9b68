// A migration's transfer with real bytes across a ZeroMQ socket: hostA's
// engine streams a frozen container's checkpoint to hostB's, which restores
// it as it arrives. Each host on its own loopback address.
#include <future>
#include <regex>

#include <gtest/gtest.h>

#include "agent/commands.h"
#include "agent/link_compression.h"
#include "agent/transfer.h"
#include "common/error.h"
#include "common/fs.h"
#include "common/units.h"
#include "protocol/capnp_text.h"
#include "protocol/framing.h"
#include "protocol/stream.capnp.h"
#include "test_host.h"

namespace ferry::testing {
namespace {

using std::chrono::seconds;
using TransferIntegration = TwoHostTest;

TEST_F(TransferIntegration, TheContainerGoesOnOnTheTargetAndTheSourceWaitsFrozenForTheCommit) {
  runCounterOnA("mig", 5);
  zmq::context_t ctx;
  proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-1", "hostB");
  auto restored = std::async(std::launch::async, [&] { return agent::receiveCheckpoint(b(), rx); });

  agent::SendResult sent = agent::sendCheckpoint(a(), "mig", ctx, rx.endpoint(), "token-1");
  RestoreResult r = restored.get();
  EXPECT_EQ(r.container.status, ContainerStatus::kRunning);
  EXPECT_GT(sent.checkpoint.bundle_bytes, sent.checkpoint.memory_bytes);
  EXPECT_EQ(sent.compression,
            "none (the target, 127.0.0.3, is an address of this machine: no wire to save, and "
            "compressing would only add downtime)");
  // The source is frozen, not gone, until the commit.
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kPaused);
  unsigned long last = counterValues(a(), "mig").back();
  waitFor([&] { return valuesAfter(counterValues(b(), "mig"), last).size() >= 3; }, seconds(20),
          "mig to count on hostB");
  EXPECT_EQ(valuesAfter(counterValues(b(), "mig"), last).front(), last + 1) << "the counter did not go on";
  EXPECT_EQ(readFile(b().volumes().path("data") / "marker"), "volume content from before the run\n");

  a().remove("mig", true);  // commit
  EXPECT_TRUE(a().list().empty());
  EXPECT_FALSE(runcHasContainers(a().config()));
}

// A compressed stream (asked for here: every target of this machine's tests
// is local, so none would be chosen) says what compression achieved, from
// the bytes that really went.
TEST_F(TransferIntegration, ACompressedStreamSaysWhatItAchieved) {
  runCounterOnA("mig", 3);
  zmq::context_t ctx;
  proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-5", "hostB");
  auto restored = std::async(std::launch::async, [&] { return agent::receiveCheckpoint(b(), rx); });
  agent::TransferOptions opts;
  opts.level = agent::kRemoteLinkLevel;
  agent::SendResult sent = agent::sendCheckpoint(a(), "mig", ctx, rx.endpoint(), "token-5", opts);
  EXPECT_EQ(restored.get().container.status, ContainerStatus::kRunning);
  std::smatch m;
  ASSERT_TRUE(std::regex_match(sent.compression, m,
                               std::regex(R"(zstd level 1 \(as asked\); measured: (.+) of data )"
                                          R"(went as (.+) \(([0-9]+) %\))")))
      << sent.compression;
  EXPECT_EQ(m[2].str(), formatBytes(sent.wire_bytes));
  // CRIU's pages of a small counter are mostly zeros: well under half.
  EXPECT_LT(std::stoi(m[3].str()), 50) << sent.compression;
  a().remove("mig", true);
}

// Fault: the target refuses (a container of that name already runs there).
// Promise: the sender sees the target's reason, and the source container is
// resumed with its counter unbroken; nothing new on the target.
TEST_F(TransferIntegration, ARefusingTargetLeavesTheSourceRunningUnbroken) {
  runCounterOnA("mig", 3);
  b().volumes().ensure("other");
  b().run(counterSpec("mig", "other"));
  zmq::context_t ctx;
  proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-2", "hostB");
  auto restored = std::async(std::launch::async, [&] {
    try {
      agent::receiveCheckpoint(b(), rx);
    } catch (const Error&) {
      return true;
    }
    return false;
  });
  try {
    agent::sendCheckpoint(a(), "mig", ctx, rx.endpoint(), "token-2");
    FAIL() << "the transfer succeeded";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("already exists"), std::string::npos) << msg;
    EXPECT_NE(msg.find("hostB"), std::string::npos) << msg;
    EXPECT_NE(msg.find("it runs on here again"), std::string::npos) << msg;
  }
  EXPECT_TRUE(restored.get()) << "the target did not fail";
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kRunning);
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10),
          "the source to count on after the refusal");
  std::vector<unsigned long> v = counterValues(a(), "mig");
  for (size_t i = 1; i < v.size(); ++i) ASSERT_EQ(v[i], v[i - 1] + 1) << "counter broke at " << i;
  ASSERT_EQ(b().list().size(), 1u);  // only its own
}

// Fault: the target goes away mid-stream (its receiver is destroyed after
// the first bytes). Promise: the sender times out, the source runs on.
TEST_F(TransferIntegration, ATargetThatVanishesMidStreamLeavesTheSourceRunning) {
  runCounterOnA("mig", 3);
  zmq::context_t ctx;
  agent::TransferOptions opts;
  opts.stream.timeout = std::chrono::milliseconds(1500);
  opts.stream.window = 1;
  opts.stream.chunk_bytes = 4096;  // the sender is mid-stream when the target goes
  std::string endpoint;
  std::promise<std::string> bound;
  auto target = std::async(std::launch::async, [&] {
    proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-3", "hostB", opts.stream);
    bound.set_value(rx.endpoint());
    char buf[1024];
    rx.read(buf, sizeof buf);  // takes a little, then vanishes
  });
  endpoint = bound.get_future().get();
  // The promise: the sender gives up when the stream's timeout passes with
  // no credit (a retryable timeout naming it), not on some other error.
  try {
    agent::sendCheckpoint(a(), "mig", ctx, endpoint, "token-3", opts);
    ADD_FAILURE() << "sending to a vanished target succeeded";
  } catch (const Error& e) {
    EXPECT_EQ(e.category(), ErrorCategory::kRetryable) << e.what();
    EXPECT_NE(std::string(e.what()).find("granted no credit within 1500 ms"), std::string::npos)
        << e.what();
  }
  target.get();
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kRunning);
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10),
          "the source to count on");
  EXPECT_TRUE(b().list().empty());
}

// Fault: the target takes every byte and then goes silent, so whether it
// restored the container is unknown. Promise: the source stays frozen (two
// copies must never run) and says so; the coordinator resolves it.
TEST_F(TransferIntegration, ATargetSilentAfterTheLastByteLeavesTheSourceFrozen) {
  runCounterOnA("mig", 3);
  zmq::context_t ctx;
  agent::TransferOptions opts;
  opts.stream.timeout = std::chrono::milliseconds(1500);
  std::promise<std::string> bound;
  auto target = std::async(std::launch::async, [&] {
    proto::ChunkReceiver rx(ctx, "tcp://127.0.0.3:0", "token-4", "hostB", opts.stream);
    bound.set_value(rx.endpoint());
    std::vector<char> buf(1 << 20);
    while (rx.read(buf.data(), buf.size()) > 0) {
    }
    // Every byte checked out; no verdict is ever sent.
  });
  std::string endpoint = bound.get_future().get();
  try {
    agent::sendCheckpoint(a(), "mig", ctx, endpoint, "token-4", opts);
    FAIL() << "the transfer succeeded without a verdict";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("stays frozen here"), std::string::npos) << e.what();
  }
  target.get();
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kPaused);
  a().resume("mig");  // what the coordinator's rollback does once the target is known empty
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10), "the source to count on");
}

// hostB's agent, as far as a migration's target goes: its command
// handling (agent/commands.h) over hostB's real engine, given the
// coordinator's prepareReceive directly instead of over the control socket.
// Its own ZeroMQ context, as the agent process has.
class TargetAgent {
 public:
  TargetAgent(Engine& engine, std::optional<proto::KeyPair> keys) : engine_(engine) {
    opts_.name = "hostB";
    opts_.data_address = "127.0.0.3";
    opts_.keys = std::move(keys);
    opts_.stream_timeout = std::chrono::milliseconds(10000);
    commands_.emplace(opts_, engine_, ctx_, busy_, [](uint64_t, proto::Fill) {});
  }
  ~TargetAgent() {
    if (outcome_.valid()) outcome_.wait();
  }

  struct Ticket {
    std::string endpoint, server_key;
  };
  // What the coordinator asks of the target: a stream for `container` with
  // `token`, from the agent whose key is `sender_key`. Its receiving and
  // restoring go on in the background (see outcome()).
  Ticket prepare(const std::string& container, const std::string& token,
                 const std::string& sender_key = "") {
    zmq::message_t request = proto::buildMessage(1, [&](proto::Message::Builder m) {
      auto p = m.initPrepareReceive();
      p.setMigration(42);
      p.setContainer(container);
      p.setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>(token.data()), token.size()));
      p.setSenderKey(sender_key);
    });
    proto::Decoded in(request);
    agent::Handled h = commands_->handle(1, in.root<proto::Message>());
    zmq::message_t reply = proto::buildMessage(1, *h.reply);
    proto::Decoded out(reply);
    auto t = out.root<proto::Message>().getStreamTicket();
    outcome_ = std::async(std::launch::async, h.background);
    return {proto::text(t.getEndpoint()), proto::text(t.getServerKey())};
  }
  // Waits for the background part of the last prepare to end.
  void awaitOutcome() { outcome_.get(); }
  agent::BusyContainers& busy() { return busy_; }

 private:
  Engine& engine_;
  agent::AgentOptions opts_;
  zmq::context_t ctx_;
  agent::BusyContainers busy_{"hostB"};
  std::optional<agent::Commands> commands_;
  std::future<void> outcome_;
};

// Fault: a stranger -- a CURVE key the coordinator never vouched for --
// holds a valid token and the target's endpoint and key. Promise: the
// target's ZAP handler refuses its handshake (it learns of the refusal, and
// never hears from the receiver), and the stream stays free for the source
// agent the coordinator named, which migrates the container.
TEST_F(TransferIntegration, AStrangersKeyIsRefusedByTheTargetEvenWithAValidToken) {
  runCounterOnA("mig", 3);
  proto::KeyPair target_keys = proto::generateKeyPair(), source_keys = proto::generateKeyPair();
  TargetAgent target(b(), target_keys);
  TargetAgent::Ticket t = target.prepare("mig", "token-7", source_keys.public_key);
  ASSERT_EQ(t.server_key, target_keys.public_key);

  zmq::context_t stranger_ctx;
  zmq::socket_t stranger(stranger_ctx, zmq::socket_type::dealer);
  stranger.set(zmq::sockopt::linger, 0);
  proto::makeCurveClient(stranger, proto::generateKeyPair(), t.server_key);
  ASSERT_EQ(zmq_socket_monitor(stranger.handle(), "inproc://stranger-events",
                               ZMQ_EVENT_HANDSHAKE_FAILED_AUTH | ZMQ_EVENT_HANDSHAKE_SUCCEEDED),
            0);
  zmq::socket_t events(stranger_ctx, zmq::socket_type::pair);
  events.set(zmq::sockopt::linger, 0);
  events.connect("inproc://stranger-events");
  stranger.connect(t.endpoint);
  {
    capnp::MallocMessageBuilder mb;
    auto m = mb.initRoot<proto::StreamMessage>();
    m.setVersion(proto::STREAM_PROTOCOL_VERSION);
    m.initOpen().setToken(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("token-7"), 7));
    stranger.send(proto::encode(mb), zmq::send_flags::dontwait);
  }
  // The first handshake's outcome, as the stranger's socket reports it
  // (libzmq retries a refused handshake; the first one says it all).
  zmq::message_t event, address;
  zmq::pollitem_t item{events.handle(), 0, ZMQ_POLLIN, 0};
  ASSERT_GT(zmq::poll(&item, 1, std::chrono::milliseconds(20000)), 0)
      << "no handshake with the target within 20 s";
  ASSERT_TRUE(events.recv(event));
  ASSERT_TRUE(events.recv(address));
  uint16_t kind;
  uint32_t status;
  std::memcpy(&kind, event.data(), 2);
  std::memcpy(&status, static_cast<const char*>(event.data()) + 2, 4);
  EXPECT_EQ(kind, ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) << "the stranger's key was admitted";
  EXPECT_EQ(status, 400u) << "ZAP's status code for a refused key";
  zmq::pollitem_t heard{stranger.handle(), 0, ZMQ_POLLIN, 0};
  EXPECT_EQ(zmq::poll(&heard, 1, std::chrono::milliseconds(1000)), 0)
      << "the receiver answered the stranger (its open was taken)";
  zmq_socket_monitor(stranger.handle(), nullptr, 0);

  // The same token from the key the coordinator vouched for: the stream.
  zmq::context_t source_ctx;
  agent::TransferOptions opts;
  opts.stream.own_keys = source_keys;
  opts.stream.peer_public_key = t.server_key;
  agent::sendCheckpoint(a(), "mig", source_ctx, t.endpoint, "token-7", opts);
  target.awaitOutcome();
  EXPECT_EQ(b().inspect("mig").status, ContainerStatus::kRunning);
  a().remove("mig", true);  // commit
}

// Fault: the stream prepared for one container carries another's bundle
// (a confused or hostile source). Promise: the target refuses it by name,
// removes its staging, restores nothing, and frees the prepared container's
// mark; the source's container runs on there.
TEST_F(TransferIntegration, ABundleOfAnotherContainerIsRefusedByTheTarget) {
  runCounterOnA("mig", 3);
  TargetAgent target(b(), std::nullopt);
  TargetAgent::Ticket t = target.prepare("other", "token-8");
  zmq::context_t source_ctx;
  try {
    agent::sendCheckpoint(a(), "mig", source_ctx, t.endpoint, "token-8");
    FAIL() << "hostB restored a bundle of mig on a stream prepared for other";
  } catch (const Error& e) {
    std::string msg = e.what();
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput) << msg;
    EXPECT_NE(msg.find("prepared for container 'other'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("bundle of 'mig'"), std::string::npos) << msg;
    EXPECT_NE(msg.find("it runs on here again"), std::string::npos) << msg;
  }
  target.awaitOutcome();
  EXPECT_NO_THROW(target.busy().awaitIdle("other", std::chrono::milliseconds(0)));
  EXPECT_TRUE(b().list().empty());
  EXPECT_FALSE(runcHasContainers(b().config()));
  waitFor([&] { return fs::is_empty(b().config().root / "staging"); }, seconds(10),
          "hostB's staging to be removed");
  EXPECT_EQ(a().inspect("mig").status, ContainerStatus::kRunning);
  unsigned long before = counterValues(a(), "mig").back();
  waitFor([&] { return counterValues(a(), "mig").back() > before + 2; }, seconds(10),
          "the source to count on");
}

}  // namespace
}  // namespace ferry::testing
