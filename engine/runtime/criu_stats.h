// CRIU's statistics images (stats-dump, stats-restore), read without
// protobuf-c: a tiny reader for the one message they hold.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace ferry {

struct CriuDumpStats {
  uint32_t freezing_time_us = 0;  // time to freeze the tasks
  uint32_t frozen_time_us = 0;    // time the tasks stayed frozen (downtime of a dump)
  uint32_t memdump_time_us = 0;
  uint32_t memwrite_time_us = 0;
  uint64_t pages_scanned = 0;
  uint64_t pages_skipped_parent = 0;
  uint64_t pages_written = 0;
};

struct CriuRestoreStats {
  uint64_t pages_compared = 0;
  uint64_t pages_skipped_cow = 0;
  uint32_t forking_time_us = 0;
  uint32_t restore_time_us = 0;
  uint64_t pages_restored = 0;
};

struct CriuStats {
  std::optional<CriuDumpStats> dump;
  std::optional<CriuRestoreStats> restore;
};

// Parses the bytes of a stats image. Throws Error kInvalidInput when they are
// not one (bad magic, truncated, malformed varint).
CriuStats parseCriuStats(std::string_view image);
// Reads and parses a file; nullopt when the file does not exist.
std::optional<CriuStats> readCriuStats(const std::filesystem::path& file);

void to_json(nlohmann::json& j, const CriuDumpStats& s);
void from_json(const nlohmann::json& j, CriuDumpStats& s);
void to_json(nlohmann::json& j, const CriuRestoreStats& s);

}  // namespace ferry
