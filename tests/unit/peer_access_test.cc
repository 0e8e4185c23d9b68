// Who may say what to the coordinator (coordinator/peer_access.h), and what
// a heartbeat may carry (coordinator/heartbeat.h): pure, no sockets.
#include "coordinator/peer_access.h"

#include <capnp/message.h>
#include <gtest/gtest.h>

#include "common/error.h"
#include "common/fs.h"
#include "coordinator/heartbeat.h"
#include "coordinator/host_registry.h"

namespace ferry::coord {
namespace {

using Kind = PeerIdentity::Kind;

const std::string kHostAKey(40, 'a'), kClientKey(40, 'c'), kStrangerKey(40, 's');

AccessPolicy policy() {
  AccessPolicy p;
  p.host_keys[kHostAKey] = "hostA";
  p.client_keys[kClientKey] = "client";
  p.agent_addresses["127.0.0.2"] = "hostA";
  return p;
}

TEST(PeerAccess, AKeyIsAdmittedAsTheHostOrClientItsFileNamesAndNoOtherIs) {
  AccessPolicy p = policy();
  EXPECT_EQ(p.admit({"CURVE", "10.0.0.9", kHostAKey}), "host:hostA");
  EXPECT_EQ(p.admit({"CURVE", "10.0.0.9", kClientKey}), "client:client");
  EXPECT_EQ(p.admit({"CURVE", "127.0.0.2", kStrangerKey}), std::nullopt);
  EXPECT_EQ(p.admit({"PLAIN", "127.0.0.2", ""}), std::nullopt);
}

TEST(PeerAccess, WithoutKeysTcpAdmitsOnlyToldAgentAddressesAndTheUnixSocketIsLocal) {
  AccessPolicy p = policy();
  EXPECT_EQ(p.admit({"NULL", "127.0.0.2", ""}), "host:hostA");
  EXPECT_EQ(p.admit({"NULL", "127.0.0.3", ""}), std::nullopt);
  EXPECT_EQ(p.admit({"NULL", "::1", ""}), std::nullopt);
  // libzmq's name of a unix socket peer: its credentials.
  EXPECT_EQ(p.admit({"NULL", "localhost:0:0:4242", ""}), "local");
  EXPECT_EQ(p.admit({"NULL", "fe80::1%eth0", ""}), std::nullopt);
  EXPECT_EQ(p.admit({"NULL", "garbage", ""}), std::nullopt);
}

TEST(PeerAccess, AHostActsForItsOwnNameOnlyAClientNeverAndLocalPeersForAny) {
  PeerIdentity a = PeerIdentity::fromUserId("host:hostA");
  EXPECT_EQ(a.kind, Kind::kHost);
  EXPECT_TRUE(a.mayActAsHost("hostA"));
  EXPECT_FALSE(a.mayActAsHost("hostB"));
  EXPECT_FALSE(a.mayUseCli());
  PeerIdentity c = PeerIdentity::fromUserId("client:client");
  EXPECT_FALSE(c.mayActAsHost("hostA"));
  EXPECT_FALSE(c.mayActAsSomeHost());
  EXPECT_TRUE(c.mayUseCli());
  PeerIdentity l = PeerIdentity::fromUserId("local");
  EXPECT_TRUE(l.mayActAsHost("hostB"));
  EXPECT_TRUE(l.mayUseCli());
  for (const char* u : {"", "host:", "hostA", "client", "root"}) {
    PeerIdentity n = PeerIdentity::fromUserId(u);
    EXPECT_EQ(n.kind, Kind::kNone) << u;
    EXPECT_FALSE(n.mayUseCli()) << u;
    EXPECT_FALSE(n.mayActAsSomeHost()) << u;
  }
  EXPECT_EQ(senderOf(proto::Message::HELLO), Sender::kAgent);
  EXPECT_EQ(senderOf(proto::Message::HEARTBEAT), Sender::kAgent);
  EXPECT_EQ(senderOf(proto::Message::DRAIN_HOST), Sender::kAgent);
  EXPECT_EQ(senderOf(proto::Message::CONTAINER), Sender::kAgent);
  EXPECT_EQ(senderOf(proto::Message::SECRET), Sender::kClient);
  EXPECT_EQ(senderOf(proto::Message::LIST_HOSTS), Sender::kClient);
}

TEST(PeerAccess, AKeyDirectoryNamesRolesByFileAndRefusesAKeyTwice) {
  TempDir dir;
  for (const char* n : {"coordinator", "hostA", "client", "client-alice"}) {
    proto::writeKeyPair(dir.path() / "k", n, proto::generateKeyPair());
  }
  AccessPolicy p;
  readKeyDirectory(dir.path() / "k", p);
  ASSERT_EQ(p.host_keys.size(), 1u);
  EXPECT_EQ(p.host_keys.begin()->second, "hostA");
  std::set<std::string> clients;
  for (const auto& [k, n] : p.client_keys) clients.insert(n);
  EXPECT_EQ(clients, (std::set<std::string>{"client", "client-alice"}));
  writeFileAtomic(dir.path() / "k" / "hostB.pub", readFile(dir.path() / "k" / "hostA.pub"));
  AccessPolicy again;
  EXPECT_THROW(readKeyDirectory(dir.path() / "k", again), Error);
}

TEST(PeerAccess, AgentAddressesAreNameEqualsAnIpAndOneHostPerAddress) {
  AccessPolicy p;
  addAgentAddress("hostA=127.0.0.2", p);
  EXPECT_EQ(p.agent_addresses.at("127.0.0.2"), "hostA");
  EXPECT_THROW(addAgentAddress("hostB=127.0.0.2", p), Error);
  EXPECT_THROW(addAgentAddress("hostC", p), Error);
  EXPECT_THROW(addAgentAddress("hostC=example.org", p), Error);
  EXPECT_THROW(addAgentAddress("bad/name=127.0.0.4", p), Error);
}

// A heartbeat of `n` containers named PREFIX0, PREFIX1, ...
HeartbeatReport heartbeatOf(size_t n, const std::string& prefix, capnp::MallocMessageBuilder& mb) {
  auto hb = mb.initRoot<proto::Message>().initHeartbeat();
  hb.setName("hostA");
  auto list = hb.initContainers(static_cast<unsigned>(n));
  for (size_t i = 0; i < n; ++i) {
    list[static_cast<unsigned>(i)].setName(prefix + std::to_string(i));
    list[static_cast<unsigned>(i)].setStatus("running");
  }
  return readHeartbeat("hostA", mb.getRoot<proto::Message>().getHeartbeat().asReader());
}

TEST(Heartbeat, WhatOneCarriesIsBoundedAndBadNamesAreLeftOutSayingSo) {
  capnp::MallocMessageBuilder big;
  HeartbeatReport r = heartbeatOf(kMaxReportedContainers + 50, "c", big);
  EXPECT_EQ(r.containers.size(), kMaxReportedContainers);
  ASSERT_FALSE(r.refused.empty());
  EXPECT_NE(r.refused[0].find("kept the first 4096"), std::string::npos) << r.refused[0];

  capnp::MallocMessageBuilder mb;
  auto hb = mb.initRoot<proto::Message>().initHeartbeat();
  auto list = hb.initContainers(4);
  list[0].setName("web");
  list[1].setName(std::string(300, 'x'));  // past a name's 63 characters
  list[2].setName("web");                  // again
  list[3].setName("db");
  list[3].setNotifyStatus(std::string(10000, 's'));
  HeartbeatReport b = readHeartbeat("hostA", mb.getRoot<proto::Message>().getHeartbeat().asReader());
  ASSERT_EQ(b.containers.size(), 2u);
  EXPECT_EQ(b.containers[0].name, "web");
  EXPECT_EQ(b.containers[1].name, "db");
  EXPECT_EQ(b.extras.at("db").notify_status.size(), kMaxReportedText);
  ASSERT_EQ(b.refused.size(), 1u);
  EXPECT_NE(b.refused[0].find("2 containers"), std::string::npos) << b.refused[0];
}

// The audit's flood: heartbeats naming ever-new containers grew the
// coordinator by 43 MB a run. What a host reports replaces what it
// reported before: a container no heartbeat names any more is forgotten.
TEST(Heartbeat, AFloodOfEverNewNamesKeepsOnlyTheLastReport) {
  HostRegistry reg;
  reg.add("hostA", 0);
  for (int round = 0; round < 200; ++round) {
    capnp::MallocMessageBuilder mb;
    reg.report("hostA", heartbeatOf(100, "r" + std::to_string(round) + "-", mb));
  }
  EXPECT_EQ(reg.containersKnown(), 100u);
  EXPECT_FALSE(reg.extras("hostA", "r0-1").has_value());
  EXPECT_TRUE(reg.extras("hostA", "r199-1").has_value());
  // A host never registered keeps nothing.
  capnp::MallocMessageBuilder mb;
  reg.report("ghost", heartbeatOf(100, "g", mb));
  EXPECT_EQ(reg.containersKnown(), 100u);
}

}  // namespace
}  // namespace ferry::coord
