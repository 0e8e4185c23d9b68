// An AgentEngine in memory, for tests of the agent without root, runc or
// CRIU: containers and images are records in maps, and any operation can be
// scripted to fail once with a given Error. It keeps the real engine's
// promises that the agent relies on: the same error (category and text) for
// an unknown container, a running container refused by remove without
// force, a secret in use refused by removeSecret.
//
// Thread-safety: every call locks one mutex, so workers may call it
// concurrently as they call the real engine. Nothing blocks.
#pragma once

#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "engine/agent_engine.h"

namespace ferry::test {

class FakeEngine final : public AgentEngine {
 public:
  explicit FakeEngine(std::string host = "hostA") {
    cfg_.host_name = std::move(host);
    cfg_.root = "/nonexistent/fake-engine";
    host_info_.cpus = 4;
  }

  // Scripts the next call of `op` (the member's name: "run", "stop", ...)
  // to throw `e` instead of doing anything.
  void failNext(const std::string& op, Error e) {
    std::lock_guard<std::mutex> g(mu_);
    failures_.insert_or_assign(op, std::move(e));
  }
  // Puts a container here directly, as a restore or a migration leaves it.
  void add(const std::string& name, ContainerStatus status, const std::string& restored_from = "") {
    std::lock_guard<std::mutex> g(mu_);
    ContainerInfo c;
    c.record.spec.name = name;
    c.record.spec.image = "counter";
    c.record.restored_from = restored_from;
    c.status = status;
    c.ready = status == ContainerStatus::kRunning;
    containers_[name] = c;
  }
  void setLogs(const std::string& name, std::vector<LogLine> lines) {
    std::lock_guard<std::mutex> g(mu_);
    logs_[name] = std::move(lines);
  }
  bool has(const std::string& name) {
    std::lock_guard<std::mutex> g(mu_);
    return containers_.count(name) > 0;
  }
  // How often `op` was called (failed calls included).
  int calls(const std::string& op) {
    std::lock_guard<std::mutex> g(mu_);
    return calls_[op];
  }

  const EngineConfig& config() const override { return cfg_; }
  const HostInfo& hostInfo() override { return host_info_; }

  ContainerInfo run(const ContainerSpec& spec) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("run");
    if (containers_.count(spec.name)) {
      throw Error(ErrorCategory::kInvalidInput, "container '" + spec.name + "' already exists");
    }
    ContainerInfo c;
    c.record.spec = spec;
    c.status = ContainerStatus::kRunning;
    c.pid = 4242;
    c.ready = spec.sdnotify != "container";
    return containers_[spec.name] = c;
  }
  ContainerInfo stop(const std::string& name, std::chrono::milliseconds,
                     std::optional<int>) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("stop");
    ContainerInfo& c = get(name);
    c.status = ContainerStatus::kExited;
    c.pid = 0;
    c.exit_code = 0;
    return c;
  }
  void resume(const std::string& name) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("resume");
    get(name).status = ContainerStatus::kRunning;
  }
  void remove(const std::string& name, bool force) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("remove");
    ContainerInfo& c = get(name);
    bool live = c.status == ContainerStatus::kRunning || c.status == ContainerStatus::kPaused;
    if (live && !force) {
      throw Error(ErrorCategory::kInvalidInput,
                  "container is " + std::string(statusName(c.status)) +
                      "; stop it first or remove it with force (-f)");
    }
    containers_.erase(name);
  }
  ContainerInfo inspect(const std::string& name) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("inspect");
    return get(name);
  }
  std::vector<ContainerInfo> list() override {
    std::lock_guard<std::mutex> g(mu_);
    enter("list");
    std::vector<ContainerInfo> out;
    for (const auto& [name, c] : containers_) out.push_back(c);
    return out;
  }
  // An offset counts lines here (the agent passes positions through without
  // reading them); one past the end starts again, as a cut log does.
  LogChunk logsFrom(const std::string& name, LogPosition from) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("logsFrom");
    const ContainerInfo& c = get(name);
    const std::vector<LogLine>& lines = logs_[name];
    LogChunk out;
    if (from.offset > lines.size()) {
      from = {};
      out.restart = LogRestart::kFromStart;
    }
    out.lines.assign(lines.begin() + static_cast<std::ptrdiff_t>(from.offset), lines.end());
    out.next = {lines.size(), lines.size()};
    out.ended = c.status == ContainerStatus::kExited;
    return out;
  }
  uint64_t memoryBytes(const std::string&) const override { return 0; }
  uint64_t cpuUsec(const std::string&) const override { return 0; }
  uint64_t filesBytes(const std::string&, uint64_t) override { return 0; }

  std::vector<ImageRecord> listImages() override { return {}; }
  ImageRecord resolveImage(const std::string& ref) override {
    throw Error(ErrorCategory::kInvalidInput, "no image '" + ref + "' on host " + cfg_.host_name);
  }
  std::optional<std::filesystem::path> imageSourceFile(const std::string&) override {
    return std::nullopt;
  }
  ImageRecord importImage(const std::string& name, const std::filesystem::path&) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("importImage");
    ImageRecord r;
    r.names = {name};
    return r;
  }

  void removeVolume(const std::string& name) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("removeVolume");
    removed_volumes_.push_back(name);
  }
  std::vector<std::string> removedVolumes() {
    std::lock_guard<std::mutex> g(mu_);
    return removed_volumes_;
  }
  std::vector<SecretInfo> listSecrets() override {
    std::lock_guard<std::mutex> g(mu_);
    std::vector<SecretInfo> out;
    for (const auto& [name, value] : secrets_) out.push_back({name, value.size(), 0});
    return out;
  }
  void putSecret(const std::string& name, const std::string& value, bool replace) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("putSecret");
    if (secrets_.count(name) && !replace) {
      throw Error(ErrorCategory::kInvalidInput, "secret " + name + " already exists");
    }
    secrets_[name] = value;
  }
  void removeSecret(const std::string& name) override {
    std::lock_guard<std::mutex> g(mu_);
    enter("removeSecret");
    secrets_.erase(name);
  }
  std::map<std::string, std::vector<std::string>> secretUsers() const override {
    std::lock_guard<std::mutex> g(mu_);
    std::map<std::string, std::vector<std::string>> out;
    for (const auto& [name, c] : containers_) {
      for (const auto& s : c.record.spec.secrets) out[s.name].push_back(name);
    }
    return out;
  }

  // Migration is streams and CRIU: not faked; a test that gets here fails.
  PrecopyRound precopy(const std::string& name, BundleWriter&) override {
    throw Error(ErrorCategory::kPermanent, "FakeEngine: no precopy of " + name);
  }
  CheckpointResult exportCheckpoint(const std::string& name, BundleWriter&,
                                    const CheckpointOptions&) override {
    throw Error(ErrorCategory::kPermanent, "FakeEngine: no checkpoint of " + name);
  }
  RestoreResult importCheckpoint(ByteSource&, const RestoreOptions&,
                                 const BundleLimits&) override {
    throw Error(ErrorCategory::kPermanent, "FakeEngine: no restore");
  }

 private:
  // Counts the call and throws its scripted failure, if any. Under mu_.
  void enter(const std::string& op) {
    ++calls_[op];
    auto it = failures_.find(op);
    if (it == failures_.end()) return;
    Error e = it->second;
    failures_.erase(it);
    throw e;
  }
  // The real engine's error for an unknown container (ContainerStore::get).
  ContainerInfo& get(const std::string& name) {
    auto it = containers_.find(name);
    if (it == containers_.end()) {
      throw Error(ErrorCategory::kInvalidInput,
                  "no container '" + name + "' on host " + cfg_.host_name);
    }
    return it->second;
  }

  EngineConfig cfg_;
  HostInfo host_info_;
  mutable std::mutex mu_;
  // Below: only under mu_ (every member function locks it first).
  std::map<std::string, ContainerInfo> containers_;
  std::map<std::string, std::vector<LogLine>> logs_;
  std::map<std::string, std::string> secrets_;
  std::map<std::string, Error> failures_;
  std::map<std::string, int> calls_;
  std::vector<std::string> removed_volumes_;
};

}  // namespace ferry::test
