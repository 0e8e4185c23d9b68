// The agent's command handling over an in-memory engine: each request
// message in, the reply the coordinator (and so the CLI) gets out. No root,
// no runc, no sockets: handle() runs here and its worker's part in place.
#include "agent/commands.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <memory>

#include "engine/spec/run_args.h"
#include "protocol/capnp_text.h"
#include "protocol/convert/run_args_proto.h"
#include "protocol/framing.h"
#include "tests/support/fake_engine.h"

namespace ferry::agent {
namespace {

using ::testing::HasSubstr;
using namespace std::chrono_literals;

constexpr uint64_t kId = 7;

class AgentCommandsTest : public ::testing::Test {
 protected:
  AgentCommandsTest() {
    opts_.name = "hostA";
    opts_.data_address = "127.0.0.1";
    // A transfer that does not end within this is refused: short, so the
    // refusal's test is quick; nothing in these tests waits it out otherwise.
    opts_.busy_wait = 50ms;
  }

  // Carries out `request` to its end as the agent would, its worker's part
  // in place; returns the reply, decoded.
  std::unique_ptr<proto::Decoded> call(const proto::Fill& request) {
    proto::Fill reply;
    try {
      zmq::message_t frame = proto::buildMessage(kId, request);
      proto::Decoded in(frame);
      Handled h = commands_.handle(kId, in.root<proto::Message>());
      if (h.work) {
        reply = replyOf(h.work, opts_.name);
      } else {
        EXPECT_TRUE(h.reply.has_value()) << "a command with neither a reply nor work";
        reply = *h.reply;
      }
    } catch (const Error& e) {
      reply = errorReply(e, opts_.name);
    }
    replies_.push_back(proto::buildMessage(kId, reply));
    return std::make_unique<proto::Decoded>(replies_.back());
  }
  // The reply's error; fails the test when the reply is not one.
  static Error errorOf(proto::Decoded& reply) {
    auto m = reply.root<proto::Message>();
    EXPECT_EQ(m.which(), proto::Message::ERROR);
    if (m.which() != proto::Message::ERROR) return Error(ErrorCategory::kPermanent, "no error");
    return proto::errorFrom(m.getError());
  }
  static bool isOk(proto::Decoded& reply) {
    return reply.root<proto::Message>().which() == proto::Message::OK;
  }

  proto::Fill runRequest(const std::string& name) {
    return [name](proto::Message::Builder m) {
      RunArgs args;
      args.name = name;
      args.image = "counter";
      proto::fillRunSpec(m.initStartContainer(), args);
    };
  }
  static proto::Fill stopRequest(const std::string& name) {
    return [name](proto::Message::Builder m) { m.setStopContainer(name); };
  }
  static proto::Fill removeRequest(const std::string& name) {
    return [name](proto::Message::Builder m) { m.setRemoveContainer(name); };
  }
  static proto::Fill sendRequest(const std::string& name) {
    return [name](proto::Message::Builder m) {
      auto s = m.initSendCheckpoint();
      s.setContainer(name);
      s.setEndpoint("tcp://127.0.0.1:1");
    };
  }

  AgentOptions opts_;
  test::FakeEngine engine_{"hostA"};
  zmq::context_t ctx_;
  BusyContainers busy_{"hostA"};
  Commands commands_{opts_, engine_, ctx_, busy_, [](uint64_t, proto::Fill) {}};
  std::vector<zmq::message_t> replies_;  // the frames the decoded replies read
};

TEST_F(AgentCommandsTest, RunRepliesWithTheRunningContainer) {
  auto reply = call(runRequest("web"));
  auto m = reply->root<proto::Message>();
  ASSERT_EQ(m.which(), proto::Message::CONTAINER);
  EXPECT_EQ(proto::text(m.getContainer().getName()), "web");
  EXPECT_EQ(proto::text(m.getContainer().getHost()), "hostA");
  EXPECT_EQ(proto::text(m.getContainer().getStatus()), "running");
  EXPECT_TRUE(engine_.has("web"));
}

TEST_F(AgentCommandsTest, StopRepliesWithTheExitedContainer) {
  engine_.add("web", ContainerStatus::kRunning);
  auto reply = call(stopRequest("web"));
  auto m = reply->root<proto::Message>();
  ASSERT_EQ(m.which(), proto::Message::CONTAINER);
  EXPECT_EQ(proto::text(m.getContainer().getStatus()), "exited");
  EXPECT_EQ(m.getContainer().getExitCode(), 0);
}

TEST_F(AgentCommandsTest, UnknownContainerIsTheErrorTheCliShows) {
  for (auto request : {stopRequest("ghost"), removeRequest("ghost")}) {
    auto reply = call(request);
    Error e = errorOf(*reply);
    EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
    EXPECT_THAT(e.what(), HasSubstr("no container 'ghost' on host hostA"));
  }
  auto inspect = call([](proto::Message::Builder m) { m.setInspectContainer("ghost"); });
  EXPECT_THAT(errorOf(*inspect).what(), HasSubstr("no container 'ghost' on host hostA"));
}

TEST_F(AgentCommandsTest, RemoveRefusesARunningContainerAndRemovesAnExitedOne) {
  engine_.add("web", ContainerStatus::kRunning);
  Error e = errorOf(*call(removeRequest("web")));
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_THAT(e.what(), HasSubstr("stop it first"));
  EXPECT_TRUE(engine_.has("web"));

  engine_.add("old", ContainerStatus::kExited);
  EXPECT_TRUE(isOk(*call(removeRequest("old"))));
  EXPECT_FALSE(engine_.has("old"));
}

TEST_F(AgentCommandsTest, LogsReplyCarriesTheLinesAfterTheOffsetAndWhereToGoOn) {
  engine_.add("web", ContainerStatus::kRunning);
  engine_.setLogs("web", {{"t1", "stdout", "one"}, {"t2", "stderr", "two"}});
  auto readFrom = [&](uint64_t offset, uint64_t mark) {
    return call([&](proto::Message::Builder m) {
      auto q = m.initReadLogsFrom();
      q.setContainer("web");
      q.setOffset(offset);
      q.setMark(mark);
    });
  };
  auto reply = readFrom(1, 1);  // the fake counts lines
  auto m = reply->root<proto::Message>();
  ASSERT_EQ(m.which(), proto::Message::LOG_CHUNK) << errorOf(*reply).what();
  auto c = m.getLogChunk();
  ASSERT_EQ(c.getLines().size(), 1u);
  EXPECT_EQ(proto::text(c.getLines()[0]), "two");
  EXPECT_EQ(c.getNextOffset(), 2u);
  EXPECT_FALSE(c.getRestarted());
  EXPECT_FALSE(c.getEnded());

  // Past the end: from the start again, and said so; an exited container's
  // log has ended.
  engine_.add("web", ContainerStatus::kExited);
  engine_.setLogs("web", {{"t1", "stdout", "one"}, {"t2", "stderr", "two"}});
  reply = readFrom(9, 9);
  c = reply->root<proto::Message>().getLogChunk();
  EXPECT_EQ(c.getLines().size(), 2u);
  EXPECT_TRUE(c.getRestarted());
  EXPECT_TRUE(c.getEnded());

  Error e = errorOf(*call([](proto::Message::Builder m) {
    m.initReadLogsFrom().setContainer("ghost");
  }));
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
}

TEST_F(AgentCommandsTest, FailingEngineOperationBecomesAnErrorWithItsCategory) {
  engine_.failNext("run", Error(ErrorCategory::kRetryable, "runc create: cgroup busy"));
  Error e = errorOf(*call(runRequest("web")));
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_THAT(e.what(), HasSubstr("runc create: cgroup busy"));
  EXPECT_THAT(e.what(), HasSubstr("hostA"));  // which host failed

  engine_.failNext("stop", Error(ErrorCategory::kIncompatible, "cgroup v1"));
  engine_.add("db", ContainerStatus::kRunning);
  EXPECT_EQ(errorOf(*call(stopRequest("db"))).category(), ErrorCategory::kIncompatible);
}

TEST_F(AgentCommandsTest, BusyContainerRefusesASecondTransfer) {
  engine_.add("web", ContainerStatus::kRunning);
  // The first send claims the container; its worker (which would stream)
  // is not run here, so the claim stays.
  zmq::message_t frame = proto::buildMessage(kId, sendRequest("web"));
  proto::Decoded first(frame);
  Handled h = commands_.handle(kId, first.root<proto::Message>());
  ASSERT_TRUE(h.work);

  Error e = errorOf(*call(sendRequest("web")));
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_THAT(e.what(), HasSubstr("already in progress"));
  // The first send's work dropped unrun (a full worker pool) ends its
  // claim: a new transfer may start.
  h = {};
  Handled other = commands_.handle(kId, first.root<proto::Message>());
  EXPECT_TRUE(other.work) << "the claim ended with the dropped work";
}

TEST_F(AgentCommandsTest, RemoveDuringATransferIsRefusedAsRetryable) {
  engine_.add("web", ContainerStatus::kExited);
  busy_.markBusy("web");  // as a receive in progress does
  Error e = errorOf(*call(removeRequest("web")));
  EXPECT_EQ(e.category(), ErrorCategory::kRetryable);
  EXPECT_TRUE(engine_.has("web"));
  EXPECT_EQ(engine_.calls("remove"), 0);
}

TEST_F(AgentCommandsTest, CommitRemovesOnlyAFrozenCopy) {
  engine_.add("web", ContainerStatus::kRunning);
  auto commit = [](proto::Message::Builder m) { m.setCommitSource("web"); };
  Error e = errorOf(*call(commit));
  EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
  EXPECT_THAT(e.what(), HasSubstr("not frozen by the migration"));
  EXPECT_TRUE(engine_.has("web"));

  engine_.add("web", ContainerStatus::kPaused);
  EXPECT_TRUE(isOk(*call(commit)));
  EXPECT_FALSE(engine_.has("web"));
  EXPECT_TRUE(isOk(*call(commit))) << "commit of what is gone is idempotent";
}

TEST_F(AgentCommandsTest, RollbackResumesTheFrozenCopy) {
  engine_.add("web", ContainerStatus::kPaused);
  EXPECT_TRUE(isOk(*call([](proto::Message::Builder m) { m.setRollbackSource("web"); })));
  EXPECT_EQ(engine_.inspect("web").status, ContainerStatus::kRunning);

  Error e = errorOf(*call([](proto::Message::Builder m) { m.setRollbackSource("gone"); }));
  EXPECT_EQ(e.category(), ErrorCategory::kPermanent);
  EXPECT_THAT(e.what(), HasSubstr("no frozen copy to resume"));
}

TEST_F(AgentCommandsTest, DiscardRemovesOnlyWhatThisMigrationRestored) {
  engine_.add("web", ContainerStatus::kRunning, "hostB:migration 7");
  auto discard = [](uint64_t migration) {
    return [migration](proto::Message::Builder m) {
      auto d = m.initDiscardTarget();
      d.setContainer("web");
      d.setMigration(migration);
    };
  };
  EXPECT_TRUE(isOk(*call(discard(17))));
  EXPECT_TRUE(engine_.has("web")) << "migration 17 did not restore it";
  EXPECT_TRUE(isOk(*call(discard(7))));
  EXPECT_FALSE(engine_.has("web"));
}

TEST_F(AgentCommandsTest, SecretsAreStoredAndListedByName) {
  auto create = [](proto::Message::Builder m) {
    auto s = m.initSecret();
    s.setOp(proto::Message::Secret::Op::CREATE);
    s.setName("db-pass");
    s.setValue(capnp::Data::Reader(reinterpret_cast<const kj::byte*>("hunter2"), 7));
  };
  EXPECT_TRUE(isOk(*call(create)));
  EXPECT_EQ(errorOf(*call(create)).category(), ErrorCategory::kInvalidInput)
      << "a second create without replace is refused";

  auto reply = call([](proto::Message::Builder m) {
    m.initSecret().setOp(proto::Message::Secret::Op::LIST);
  });
  auto m = reply->root<proto::Message>();
  ASSERT_EQ(m.which(), proto::Message::SECRETS);
  ASSERT_EQ(m.getSecrets().size(), 1u);
  EXPECT_EQ(proto::text(m.getSecrets()[0].getName()), "db-pass");
  EXPECT_EQ(m.getSecrets()[0].getBytes(), 7u);
}

TEST_F(AgentCommandsTest, WhatIsNotACommandIsRefusedAsInvalidInput) {
  Error e = errorOf(*call([](proto::Message::Builder m) { m.setDrainHost("hostA"); }));
  EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
  EXPECT_THAT(e.what(), HasSubstr("not a command an agent carries out"));
}

// Where a stream goes is read from the wire: only tcp://HOST:PORT, which is
// what every receiver binds. Found by fuzz_agent_commands: an export to
// "inproc://..." connected to this process's own inproc sockets (the ZAP
// handler is inproc://zeromq.zap.01) or, to a name nobody bound, left a
// connection pending for good -- file descriptors, one export at a time,
// until the agent had none.
TEST_F(AgentCommandsTest, AStreamEndpointThatIsNotTcpIsRefusedBeforeAnythingIsClaimed) {
  engine_.add("web", ContainerStatus::kRunning);
  for (std::string endpoint : {"inproc://zeromq.zap.01", "inproc://nobody", "ipc:///run/x.sock",
                               "tcp://127.0.0.1:1;127.0.0.2:2", "", "tcp://127.0.0.1"}) {
    SCOPED_TRACE(endpoint);
    auto exportTo = [&](proto::Message::Builder m) {
      auto e = m.initExportCheckpoint();
      e.setContainer("web");
      e.setEndpoint(endpoint);
    };
    auto sendTo = [&](proto::Message::Builder m) {
      auto s = m.initSendCheckpoint();
      s.setContainer("web");
      s.setEndpoint(endpoint);
    };
    auto imageTo = [&](proto::Message::Builder m) {
      auto s = m.initSendImage();
      s.setImage("counter");
      s.setEndpoint(endpoint);
    };
    for (const proto::Fill& request : {proto::Fill(exportTo), proto::Fill(sendTo),
                                       proto::Fill(imageTo)}) {
      zmq::message_t frame = proto::buildMessage(kId, request);
      proto::Decoded in(frame);
      try {
        commands_.handle(kId, in.root<proto::Message>());
        ADD_FAILURE() << "accepted";
      } catch (const Error& e) {
        EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
        EXPECT_THAT(e.what(), HasSubstr("tcp://"));
      }
    }
  }
  // Nothing was claimed: a transfer to a real receiver's ticket may start.
  zmq::message_t frame = proto::buildMessage(kId, sendRequest("web"));
  proto::Decoded good(frame);
  EXPECT_TRUE(commands_.handle(kId, good.root<proto::Message>()).work);
}

// With keys, a stream is bound only for a key the coordinator vouched for:
// a prepare that names none (or a malformed one) is refused at once, saying
// why, and leaves no mark on the container.
TEST_F(AgentCommandsTest, WithKeysAPrepareThatVouchesForNoKeyIsRefused) {
  AgentOptions keyed = opts_;
  keyed.keys = proto::generateKeyPair();
  zmq::context_t ctx;
  BusyContainers busy{"hostA"};
  Commands commands{keyed, engine_, ctx, busy, [](uint64_t, proto::Fill) {}};
  for (std::string key : {"", "not a key"}) {
    zmq::message_t frame = proto::buildMessage(kId, [&](proto::Message::Builder m) {
      auto p = m.initPrepareReceive();
      p.setContainer("web");
      p.setSenderKey(key);
    });
    proto::Decoded in(frame);
    try {
      commands.handle(kId, in.root<proto::Message>());
      ADD_FAILURE() << "a stream was bound for sender key '" << key << "'";
    } catch (const Error& e) {
      EXPECT_EQ(e.category(), ErrorCategory::kInvalidInput);
      EXPECT_THAT(e.what(), HasSubstr(key.empty() ? "vouched for no sender key"
                                                  : "is not a Z85 public key"));
    }
    EXPECT_NO_THROW(busy.awaitIdle("web", 0ms));
  }
}

}  // namespace
}  // namespace ferry::agent
