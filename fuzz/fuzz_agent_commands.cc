// Every control message through the agent's real command handlers
// (agent/commands.h: what Agent::serve runs for each frame from the
// coordinator), frames decoded as the agent decodes them. An input is up to
// 16 frames (fuzz_support.h); each one's reply, work and background are
// carried out in place, in order, as the agent's workers would.
//
// The engine is tests/support/fake_engine.h's in-memory one (wrapped below):
// starting containers under runc and checkpointing them with CRIU cannot be
// done thousands of times a second inside a fuzzer, and its state would
// outlive an input. It keeps the real engine's promises that the commands
// rely on, so the handlers' own checks and state (busy marks, claims,
// secrets, volumes) are what is fuzzed. Streams are real: prepareReceive and
// prepareImport bind real receivers (on 127.0.0.1), which time out (5 ms)
// since no sender comes.
//
// A command that connects to an endpoint it was given (sendCheckpoint,
// exportCheckpoint, sendImage) has its work run only when the endpoint is a
// numeric 127.x.y.z address: the fuzzer must never make this machine
// connect elsewhere (the agent itself refuses anything but tcp://). Its
// quick part (checks, claims) always runs.
#include <cstddef>
#include <cstdint>
#include <regex>
#include <string>

#include "agent/commands.h"
#include "common/fs.h"
#include "fuzz/fuzz_support.h"
#include "protocol/framing.h"
#include "tests/support/fake_engine.h"

namespace {

using namespace ferry;

// FakeEngine with a state root of its own (image import stages files there)
// and every container ready (--sdnotify=container would otherwise wait 120 s
// for a READY=1 the fake never sends).
class FuzzEngine final : public AgentEngine {
 public:
  FuzzEngine(test::FakeEngine& fake, const fs::path& root) : fake_(fake), cfg_(fake.config()) {
    cfg_.root = root;
  }
  const EngineConfig& config() const override { return cfg_; }
  const HostInfo& hostInfo() override { return fake_.hostInfo(); }
  ContainerInfo run(const ContainerSpec& spec) override { return ready(fake_.run(spec)); }
  ContainerInfo stop(const std::string& name, std::chrono::milliseconds t,
                     std::optional<int> sig) override {
    return fake_.stop(name, t, sig);
  }
  void resume(const std::string& name) override { fake_.resume(name); }
  void remove(const std::string& name, bool force) override { fake_.remove(name, force); }
  ContainerInfo inspect(const std::string& name) override { return ready(fake_.inspect(name)); }
  std::vector<ContainerInfo> list() override { return fake_.list(); }
  LogChunk logsFrom(const std::string& name, LogPosition from) override {
    return fake_.logsFrom(name, from);
  }
  uint64_t memoryBytes(const std::string& name) const override { return fake_.memoryBytes(name); }
  uint64_t cpuUsec(const std::string& name) const override { return fake_.cpuUsec(name); }
  uint64_t filesBytes(const std::string& name, uint64_t enough) override {
    return fake_.filesBytes(name, enough);
  }
  std::vector<ImageRecord> listImages() override { return fake_.listImages(); }
  ImageRecord resolveImage(const std::string& ref) override { return fake_.resolveImage(ref); }
  std::optional<fs::path> imageSourceFile(const std::string& id) override {
    return fake_.imageSourceFile(id);
  }
  ImageRecord importImage(const std::string& name, const fs::path& file) override {
    return fake_.importImage(name, file);
  }
  void removeVolume(const std::string& name) override { fake_.removeVolume(name); }
  std::vector<SecretInfo> listSecrets() override { return fake_.listSecrets(); }
  void putSecret(const std::string& name, const std::string& value, bool replace) override {
    fake_.putSecret(name, value, replace);
  }
  void removeSecret(const std::string& name) override { fake_.removeSecret(name); }
  std::map<std::string, std::vector<std::string>> secretUsers() const override {
    return fake_.secretUsers();
  }
  PrecopyRound precopy(const std::string& name, BundleWriter& out) override {
    return fake_.precopy(name, out);
  }
  CheckpointResult exportCheckpoint(const std::string& name, BundleWriter& out,
                                    const CheckpointOptions& o) override {
    return fake_.exportCheckpoint(name, out, o);
  }
  RestoreResult importCheckpoint(ByteSource& in, const RestoreOptions& o,
                                 const BundleLimits& l) override {
    return fake_.importCheckpoint(in, o, l);
  }

 private:
  static ContainerInfo ready(ContainerInfo c) {
    c.ready = true;
    return c;
  }
  test::FakeEngine& fake_;
  EngineConfig cfg_;
};

bool safeEndpoint(const std::string& e) {
  static const std::regex ok(R"(tcp://127\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}:[0-9]{1,5})");
  return std::regex_match(e, ok);
}

// Whether the work of command `m` may run here (see the top).
bool mayRun(proto::Message::Reader m) {
  switch (m.which()) {
    case proto::Message::SEND_CHECKPOINT:
      return safeEndpoint(m.getSendCheckpoint().getEndpoint().cStr());
    case proto::Message::EXPORT_CHECKPOINT:
      return safeEndpoint(m.getExportCheckpoint().getEndpoint().cStr());
    case proto::Message::SEND_IMAGE:
      return safeEndpoint(m.getSendImage().getEndpoint().cStr());
    default:
      return true;
  }
}

// A reply as the agent sends it: built into a frame (and dropped).
void send(uint64_t id, const proto::Fill& fill) { (void)proto::buildMessage(id, fill); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::quietLogs();
  static zmq::context_t ctx;
  TempDir root(fuzz::scratchDir(), "agent-");
  test::FakeEngine fake("hostA");
  fake.add("web", ContainerStatus::kRunning);
  fake.add("frozen", ContainerStatus::kPaused);
  fake.add("done", ContainerStatus::kExited);
  fake.add("moved", ContainerStatus::kRunning, "hostB:migration 7");
  fake.setLogs("web", {{"2026-01-01T00:00:00.000000000Z", "stdout", "one"},
                       {"2026-01-01T00:00:01.000000000Z", "stderr", "two"}});
  fake.putSecret("token", "s3cret", false);
  FuzzEngine engine(fake, root.path());

  agent::AgentOptions opts;
  opts.name = "hostA";
  opts.data_address = "127.0.0.1";
  opts.stream_timeout = std::chrono::milliseconds(5);
  opts.busy_wait = std::chrono::milliseconds(5);
  agent::BusyContainers busy(opts.name);
  agent::Commands commands(opts, engine, ctx, busy, send);

  for (const fuzz::Frame& f : fuzz::splitFrames(data, size, 16)) {
    std::unique_ptr<proto::Decoded> frame;
    try {
      frame = std::make_unique<proto::Decoded>(zmq::message_t(f.bytes.data(), f.bytes.size()));
    } catch (const Error&) {
      continue;  // the agent drops a frame that is not a message
    }
    uint64_t id = 0;
    try {
      auto m = frame->root<proto::Message>();
      id = proto::guard([&] { return m.getId(); });
      agent::Handled h = proto::guard([&] { return commands.handle(id, m); });
      bool may_run = proto::guard([&] { return mayRun(m); });
      if (h.reply) send(id, *h.reply);
      if (h.work && may_run) send(id, agent::replyOf(h.work, opts.name));
      if (h.background) h.background();
    } catch (const Error& e) {
      send(id, agent::errorReply(e, opts.name));
    }
  }
  return 0;
}
