// The records the engine's calls take and return, shared by Engine
// (engine.h) and the narrower AgentEngine (agent_engine.h). Plain values:
// copy them freely, across threads.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "compat/compat.h"
#include "engine/runtime/criu_stats.h"
#include "engine/store/container_store.h"

namespace ferry {

class BlockStore;
class LazyDump;
class LazyRestore;

enum class ContainerStatus { kCreated, kRunning, kPaused, kExited, kCheckpointed };
std::string_view statusName(ContainerStatus s);

struct ContainerInfo {
  ContainerRecord record;
  ContainerStatus status = ContainerStatus::kExited;
  pid_t pid = 0;                  // while created, running or paused
  std::optional<int> exit_code;   // once exited, when conmon recorded one
  // Ready: --sdnotify=container: said READY=1; otherwise: running.
  bool ready = false;
  std::string notify_status;      // its last STATUS= (--sdnotify=container)
  const std::string& name() const { return record.name(); }
};
void to_json(nlohmann::json& j, const ContainerInfo& c);

struct LogLine {
  std::string time;    // RFC 3339 with nanoseconds, as conmon wrote it
  std::string stream;  // stdout | stderr
  std::string text;    // without the newline
};

struct CheckpointResult {
  std::filesystem::path dir;
  int64_t total_ms = 0;  // whole call
  int64_t dump_ms = 0;   // the runc/CRIU dump alone
  std::optional<CriuDumpStats> criu;
  uint64_t memory_bytes = 0;   // CRIU images
  uint64_t rootfs_bytes = 0;   // the container's rootfs changes
  uint64_t volume_bytes = 0;
  uint64_t bundle_bytes = 0;   // what went into the sink, for an export
  // The memory went into the bundle as CRIU dumped it (stream_pages): these
  // many pages, with no disk between.
  std::optional<uint64_t> streamed_pages;
  // A post-copy dump (CheckpointOptions::lazy_pages): CRIU still holds the
  // memory and serves it on 127.0.0.1:lazy->port() until its one
  // connection ends; the container stays paused.
  std::shared_ptr<LazyDump> lazy;
};
void to_json(nlohmann::json& j, const CheckpointResult& r);

// One pre-copy round: what was read while the container ran, and how much
// of it was new to the receiver.
struct PrecopyRound {
  uint64_t memory_bytes = 0;   // private memory pages read
  uint64_t files_bytes = 0;    // rootfs diff and volume archives read
  uint64_t sent_bytes = 0;     // new blocks among all of it
  int64_t ms = 0;
  std::vector<std::string> warnings;  // parts skipped this round
};

struct RestoreOptions {
  std::string name;              // empty: the checkpointed container's name
  bool replace_volumes = false;  // overwrite non-empty volumes of the same name
  std::set<std::string> ignore;  // compatibility refusals overridden on purpose
  // Recorded in the container's restored_from after the source host name;
  // empty: the directory, or "bundle" for an import. A migration puts its
  // id here so that its rollback removes only what it restored itself.
  std::string origin;
  // When set, the checkpoint must be of the container of this name (as
  // recorded): a migration's target takes only the container the stream
  // was prepared for. Checked from the metadata, before anything restores.
  std::string expect_container;
  // A checkpoint dumped with lazy pages (post-copy) restores only with
  // this (else it is refused from its metadata). Called once the bundle is
  // in, right before CRIU's lazy-pages daemon starts, it returns a
  // connected pair of descriptors: the daemon's end, and the caller's,
  // which the caller carries to the source's page server from then on (the
  // restore needs pages already). See LazyRestore.
  struct LazyPagesFds {
    int daemon = -1;
    int caller = -1;
  };
  // What the caller serves the daemon from: the dump's images (their lazy
  // ranges, checkpoint/lazy_pagemap.h) and the pre-copied blocks that came
  // with the bundle (null when none did).
  struct LazyStart {
    std::filesystem::path images;
    std::shared_ptr<BlockStore> precopied;
  };
  std::function<LazyPagesFds(const LazyStart&)> on_lazy_start;
};

struct RestoreResult {
  ContainerInfo container;
  int64_t total_ms = 0;
  std::optional<CriuRestoreStats> criu;
  std::vector<Finding> warnings;  // compatibility warnings (and ignored refusals)
  // Post-copy: the container runs while its pages still arrive; wait() for
  // the last one (the images it reads are removed after), abort() to kill it.
  std::shared_ptr<LazyRestore> lazy;
};
void to_json(nlohmann::json& j, const RestoreResult& r);

}  // namespace ferry
