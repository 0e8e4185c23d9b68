// The container engine one host embeds: images, volumes, containers (runc +
// conmon), checkpoint and restore (CRIU). Everything lives under the host's
// state root, so a new Engine on the same root finds and manages the
// containers an earlier one started, in this process or another.
//
// Thread-safety: mutations (create, start, stop, kill, remove, pause,
// resume, checkpoint, restore) serialise through a lock file (<root>/lock),
// across threads and processes alike; reads (list, inspect, logs,
// hostInfo) may run beside them. The agent runs transfers on worker
// threads while its main thread reports the inventory.
// Blocking: every call blocks on the runc/conmon/CRIU processes it runs.
#pragma once

#include <signal.h>

#include <chrono>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "engine/agent_engine.h"
#include "engine/bundle/bundle.h"
#include "engine/container_log.h"
#include "engine/container_networking.h"
#include "engine/engine_types.h"
#include "engine/checkpoint/checkpoint_output.h"
#include "compat/compat.h"
#include "engine/runtime/config.h"
#include "engine/store/container_store.h"
#include "common/error.h"
#include "engine/runtime/criu_stats.h"
#include "common/fs.h"
#include "engine/runtime/host_probe.h"
#include "engine/image/image_store.h"
#include "engine/runtime/process.h"
#include "engine/runtime/runtime.h"
#include "engine/runtime/notify.h"
#include "engine/store/secret_store.h"
#include "engine/store/volume_store.h"

namespace ferry {

// A checkpoint is written either as a directory or as one bundle file (see
// bundle.h for the format and the layout both share):
//   checkpoint.json      container record, image, source host info, options
//   config.json          the OCI spec the container ran with
//   criu/                CRIU images
//   rootfs.tar           the rootfs diff: an OCI layer of the overlay upperdir
//   rootfs-changes.json  its A/C/D list
//   volumes/NAME.tar     each named volume
//   ctr.log              the container's output so far (its last
//                        kCarriedLogBytes, from a line's start), which the
//                        restored copy's log goes on from (as Podman's)
//   manifest.json        sizes and checksums of all of the above, CRIU stats
// 2: adds ctr.log. A reader takes 1 and 2; an older one refuses 2 at the
// metadata, the first record, rather than at the log, the last.
inline constexpr int kCheckpointFormat = 2;
// Gives a checkpoint's CRIU images to the root of the user namespace `ids`
// maps to (a restore's task reads some of them in it), group root; a no-op
// without one.
void giveImagesToItsRoot(const std::filesystem::path& criu_dir, const UsernsRange& ids);
inline constexpr int kOldestCheckpointFormat = 1;

// The engine on this host, over runc, conmon and CRIU; the AgentEngine the
// agent runs on. Tools and tests use its full surface.
class Engine final : public AgentEngine {
 public:
  Engine(EngineConfig cfg, CommandRunner& runner);

  const EngineConfig& config() const override { return cfg_; }
  // The host's container network, for containers with an address; set
  // before the first such container is created or restored, and outliving
  // the engine. Without one, those are refused.
  void setNetworking(ContainerNetworking* n) { networking_ = n; }
  ImageStore& images() { return images_; }
  VolumeStore& volumes() { return volumes_; }
  SecretStore& secrets() { return secrets_; }
  // Removes a host secret; refused while a container here is given it.
  void removeSecret(const std::string& name) override;
  // Secret name -> the containers here given it (from their records).
  std::map<std::string, std::vector<std::string>> secretUsers() const override;
  // This process serves sd_notify sockets (--sdnotify=container) for as
  // long as the engine lives: binds them again for the containers that
  // have them. Only one process per root may (the agent).
  void serveNotify();
  // Collected on first use, then cached.
  const HostInfo& hostInfo() override;

  // Creates (runc create under conmon) without starting. Volumes named in
  // spec are created when missing.
  ContainerInfo create(const ContainerSpec& spec);
  ContainerInfo start(const std::string& name);
  // create + start; a container that fails to start is removed again.
  ContainerInfo run(const ContainerSpec& spec) override;
  // Sends `signal` (default: the container's stop signal, else SIGTERM),
  // waits up to `timeout` for the exit, then SIGKILL.
  ContainerInfo stop(const std::string& name, std::chrono::milliseconds timeout = std::chrono::seconds(10),
                     std::optional<int> signal = std::nullopt) override;
  void kill(const std::string& name, int signal);
  // Freezes / thaws all of the container's processes (cgroup freezer).
  void pause(const std::string& name);
  void resume(const std::string& name) override;
  // Removes the container, its rootfs and state (not its named volumes).
  // A running container needs force.
  void remove(const std::string& name, bool force) override;
  ContainerInfo inspect(const std::string& name) override;
  std::vector<ContainerInfo> list() override;
  // Every whole line of the container's log (engine/container_log.h).
  std::vector<LogLine> logs(const std::string& name);
  LogChunk logsFrom(const std::string& name, LogPosition from) override;
  // Anonymous memory of the container's processes, from its memory cgroup
  // (v1 memory.stat total_rss, v2 memory.stat anon); 0 when unknown. What a
  // checkpoint of it will roughly weigh.
  uint64_t memoryBytes(const std::string& name) const override;
  // CPU time the container's processes used, from its cgroup (v1
  // cpuacct.usage, v2 cpu.stat usage_usec), in microseconds; 0 when unknown.
  uint64_t cpuUsec(const std::string& name) const override;
  uint64_t filesBytes(const std::string& name, uint64_t enough) override;
  // Removes what imports of crashed processes left in staging (each import
  // stages under a name that carries its pid). Returns how many.
  int removeStaleStaging();

  // AgentEngine's narrow view of the stores above.
  std::vector<ImageRecord> listImages() override { return images_.list(); }
  ImageRecord resolveImage(const std::string& ref) override { return images_.resolve(ref); }
  std::optional<std::filesystem::path> imageSourceFile(const std::string& id) override {
    return images_.sourceFile(id);
  }
  ImageRecord importImage(const std::string& name, const std::filesystem::path& file) override {
    return images_.import(name, file);
  }
  void removeVolume(const std::string& name) override { volumes_.remove(name); }
  std::vector<SecretInfo> listSecrets() override { return secrets_.list(); }
  void putSecret(const std::string& name, const std::string& value, bool replace) override {
    secrets_.put(name, value, replace);
  }

  // Checkpoints a running container into `dir` (missing or empty). Without
  // leave_running the container ends (status "checkpointed"). If anything
  // after the dump fails, the container is restored from its own images so
  // nothing is lost, and the error says so.
  CheckpointResult checkpoint(const std::string& name, const std::filesystem::path& dir,
                              const CheckpointOptions& opts);
  // The same, as one bundle streamed into `out` (`checkpoint --export`). On
  // failure the bytes already written are the caller's to discard.
  CheckpointResult exportCheckpoint(const std::string& name, ByteSink& out,
                                    const CheckpointOptions& opts, const BundleWriteOptions& bundle);
  // The same into `out`, which may already carry pre-copy blocks (its
  // options' `known`): what the receiver holds goes as references.
  CheckpointResult exportCheckpoint(const std::string& name, BundleWriter& out,
                                    const CheckpointOptions& opts) override;
  // Pre-copy, while `name` runs and without freezing it: reads what a
  // checkpoint would carry -- its processes' private memory, page by page
  // from /proc (the pages CRIU dumps), its rootfs diff and its volumes --
  // and writes it into `out` as blocks (blocks.h); the receiver keeps those
  // it lacks. Content read while it changes is harmless: the checkpoint
  // after the freeze carries every byte, as a reference only where the
  // receiver holds exactly that block. A part that cannot be read is skipped
  // with a warning. Throws when the container is not running or `out` fails.
  PrecopyRound precopy(const std::string& name, BundleWriter& out) override;
  // Restores a checkpoint directory on this host, after verifying it against
  // its manifest and checking compatibility (refusals throw kIncompatible)
  // before anything is written. On failure nothing of it stays behind.
  RestoreResult restore(const std::filesystem::path& dir, const RestoreOptions& opts);
  // Restores a bundle (`restore --import`): read into a staging directory
  // with every checksum verified -- compatibility is checked as soon as the
  // metadata has arrived -- then restored as above. Staging never stays.
  // No lock is held while the bytes arrive; the container's while it is
  // admitted and restored.
  RestoreResult importCheckpoint(ByteSource& in, const RestoreOptions& opts,
                                 const BundleLimits& limits = {}) override;

 private:
  // Locks. A container's lock is held through everything done to it -- a
  // create, a stop, a whole checkpoint and its stream, a restore -- so work
  // on one container never waits on another's. The host's lock is held
  // briefly, for what spans containers: which names exist (create, restore
  // admission), SELinux levels, secrets in use, notify sockets. Order: a
  // container's lock before the host's; the host's is never held while
  // waiting for a container's.
  FileLock hostLock();
  FileLock containerLock(const std::string& name);
  // Where CRIU writes the log of one operation on a container; kept after
  // failures so errors can point at it (markLogDone once it ended well).
  // Removes what cfg_.logs does not keep (runtime/log_retention.h).
  std::filesystem::path logDir(const std::string& name, const std::string& what) const;
  using OutputFactory = std::function<std::unique_ptr<CheckpointOutput>()>;
  // The output is made only once the container is known to be checkpointable.
  CheckpointResult checkpointTo(const std::string& name, const OutputFactory& make_output,
                                const CheckpointOptions& opts);
  // The dump with its memory relayed into `out` ("pages") as CRIU sends it
  // to its page server (checkpoint/page_stream.h); returns the pages.
  // Throws as Runtime::checkpoint, or the relay's error (the sink's, when
  // the peer went) with what the failed dump said.
  uint64_t dumpStreamingPages(const std::string& name, CheckpointOutput& out,
                              const std::filesystem::path& work, const CheckpointOptions& opts);
  [[noreturn]] void rollBackCheckpoint(ContainerRecord& rec, CheckpointOutput& out,
                                       const CheckpointOptions& opts, Error e);
  // Everything that can refuse a restore, from the metadata alone.
  std::vector<Finding> admit(const nlohmann::json& metadata, const RestoreOptions& opts,
                             bool log_warnings = true);
  // `origin` (the directory, or "bundle") goes into the record's restored_from.
  // Admits (under the host's lock) and restores; the caller holds the
  // container's lock.
  RestoreResult restoreStaged(const std::filesystem::path& dir, const RestoreOptions& opts,
                              const std::string& origin, bool log_warnings);
  ContainerInfo inspectRecord(const ContainerRecord& rec);
  // The same from a runc state already read (nullopt: runc does not know it).
  ContainerInfo inspectRecord(const ContainerRecord& rec, const std::optional<RuncState>& st);
  // `creating`: the first time (U chowns then); false for a restore.
  void writeSpec(const ContainerRecord& rec, const ImageRecord& image, bool creating);
  void assignLabels(ContainerRecord& rec);
  // --sdnotify=container: the socket bound (when this process serves them)
  // and the state file as `rec` carries it.
  void prepareNotify(const ContainerRecord& rec, bool restoring);
  void prepareVolumeOptions(const ContainerRecord& rec, const Identity& who, SpecHostInputs& host,
                            bool creating);
  ConmonLaunch launchFor(const std::string& name) const;
  void discard(const std::string& name);  // unmount + erase, no runc
  // --userns=auto: a range of host ids no other container here has
  // (called under the host's lock).
  UsernsRange freeIdRange(const std::string& name) const;
  // The overlay of `rec`'s rootfs, its lower layer idmapped for a
  // container in a user namespace (whose directories are then made
  // searchable: its root resolves the rootfs path as nobody on the host).
  void mountRootfs(const ContainerRecord& rec, const ImageRecord& image);
  void removeEmptyCgroupsIfIdle();
  // The processes in the container's cgroup (empty when it has none).
  std::vector<pid_t> cgroupPids(const std::string& name) const;
  // Whether the container's process has exited within the timeout (blocks
  // on its pidfd; also true when runc does not know the container).
  bool waitForExit(const std::string& name, std::chrono::milliseconds timeout);
  std::optional<int> exitCode(const std::string& name) const;

  EngineConfig cfg_;
  CommandRunner& runner_;
  Runtime runtime_;
  ImageStore images_;
  VolumeStore volumes_;
  SecretStore secrets_;
  ContainerStore containers_;
  std::mutex host_info_mu_;
  std::optional<HostInfo> host_info_;  // guarded by host_info_mu_ until set
  bool serve_notify_ = false;
  ContainerNetworking* networking_ = nullptr;
  NotifyListener notify_;  // last: its thread ends first
};

}  // namespace ferry
