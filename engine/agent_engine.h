// What a host's agent needs of a container engine, and nothing more: the
// seam between the agent's command handling and runc/CRIU. `Engine`
// (engine.h) is the implementation on this host; tests drive the agent over
// an in-memory one (tests/support/fake_engine.h). Tools and engine tests use
// `Engine` directly, with its full surface.
//
// Ownership: the caller owns the engine and keeps it alive longer than
// anything that holds a reference to it (the agent, its workers).
// Thread-safety: every call may come from any thread, concurrently with the
// others; implementations serialise mutations of one host themselves
// (Engine: its lock file).
// Blocking: calls that change a container block on the processes they run
// (runc, conmon, CRIU) -- up to `stop`'s timeout, or a whole checkpoint or
// restore; the streaming calls block on their sink or source as well.
// Errors: ferry::Error with a category; an unknown container is
// kInvalidInput "no container 'NAME' on host HOST", the text the CLI shows.
#pragma once

#include <chrono>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "engine/bundle/bundle.h"
#include "engine/checkpoint/checkpoint_output.h"
#include "engine/container_log.h"
#include "engine/engine_types.h"
#include "engine/image/image_store.h"
#include "engine/runtime/config.h"
#include "engine/runtime/host_probe.h"
#include "engine/runtime/runtime.h"
#include "engine/store/secret_store.h"

namespace ferry {

class AgentEngine {
 public:
  virtual ~AgentEngine() = default;

  // Fixed for the engine's lifetime: host name and state root.
  virtual const EngineConfig& config() const = 0;
  // Collected on first use, then cached.
  virtual const HostInfo& hostInfo() = 0;

  // Containers: see Engine for what each does to runc.
  virtual ContainerInfo run(const ContainerSpec& spec) = 0;
  virtual ContainerInfo stop(const std::string& name,
                             std::chrono::milliseconds timeout = std::chrono::seconds(10),
                             std::optional<int> signal = std::nullopt) = 0;
  virtual void resume(const std::string& name) = 0;
  // A running container needs force.
  virtual void remove(const std::string& name, bool force) = 0;
  virtual ContainerInfo inspect(const std::string& name) = 0;
  virtual std::vector<ContainerInfo> list() = 0;
  // The container's log from `from` on, a chunk at a time, and whether it
  // has ended (see engine/container_log.h).
  virtual LogChunk logsFrom(const std::string& name, LogPosition from) = 0;
  // From the container's cgroup; 0 when unknown.
  virtual uint64_t memoryBytes(const std::string& name) const = 0;
  virtual uint64_t cpuUsec(const std::string& name) const = 0;
  // The bytes of the container's rootfs diff and named volumes as they
  // would cross (regular files' sizes and a tar header per entry), counted
  // up to `enough`: the walk stops there, so a volume of millions of files
  // costs a bounded walk when the caller only needs to know whether they
  // reach it. Throws Error kInvalidInput for an unknown container.
  virtual uint64_t filesBytes(const std::string& name, uint64_t enough) = 0;

  // Images.
  virtual std::vector<ImageRecord> listImages() = 0;
  // A name or id prefix; throws kInvalidInput when none matches.
  virtual ImageRecord resolveImage(const std::string& ref) = 0;
  // The archive an image was imported from, when it was a file.
  virtual std::optional<std::filesystem::path> imageSourceFile(const std::string& id) = 0;
  virtual ImageRecord importImage(const std::string& name, const std::filesystem::path& file) = 0;

  // Volumes and secrets.
  virtual void removeVolume(const std::string& name) = 0;
  virtual std::vector<SecretInfo> listSecrets() = 0;
  virtual void putSecret(const std::string& name, const std::string& value, bool replace) = 0;
  // Refused while a container here is given it.
  virtual void removeSecret(const std::string& name) = 0;
  // Secret name -> the containers here given it.
  virtual std::map<std::string, std::vector<std::string>> secretUsers() const = 0;

  // Migration: see Engine::precopy, Engine::exportCheckpoint and
  // Engine::importCheckpoint for the promises each keeps on failure.
  virtual PrecopyRound precopy(const std::string& name, BundleWriter& out) = 0;
  virtual CheckpointResult exportCheckpoint(const std::string& name, BundleWriter& out,
                                            const CheckpointOptions& opts) = 0;
  virtual RestoreResult importCheckpoint(ByteSource& in, const RestoreOptions& opts,
                                         const BundleLimits& limits = {}) = 0;
};

}  // namespace ferry
