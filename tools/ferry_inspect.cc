// ferry-inspect: shows what a checkpoint bundle holds, after verifying all of
// it (like checkpointctl show). Writes only the bundle's metadata, changes
// list and pre-copy blocks, to a temporary directory that it removes.
#include <fcntl.h>
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <ctime>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>

#include "engine/bundle/bundle.h"
#include "common/cli_options.h"
#include "common/error.h"
#include "common/fs.h"
#include "tools/cli_util.h"

using namespace ferry;
using nlohmann::json;

namespace {

// File names may hold any byte but '/' and NUL: escape what a terminal would
// act on.
std::string printable(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f || c == '\\') {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string timeText(int64_t unix) {
  std::time_t t = unix;
  char buf[64];
  std::strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return buf;
}

struct Inspection {
  json metadata;
  json changes;
  json info;
  std::vector<BundleEntry> entries;
  uint64_t wire_bytes = 0;

  uint64_t bytes(const std::string& kind) const {
    uint64_t n = 0;
    for (const auto& e : entries) n += e.kind == kind ? e.size : 0;
    return n;
  }
};

Inspection inspect(const std::string& file) {
  UniqueFd fd = openFile(file, O_RDONLY);
  FdSource src(fd.get(), file);
  TempDir stage(fs::temp_directory_path(), "ferry-inspect-");
  // Verified as it passes: only the metadata, the changes list and any
  // pre-copy blocks land in staging, bounded as an import is by the
  // reader's limits and the free disk there.
  BundleLimits limits = boundedByFreeDisk({}, stage.path().parent_path(), "this host");
  BundleReadResult r = verifyBundle(src, stage.path(), limits);
  Inspection in;
  in.metadata = json::parse(readFile(stage.path() / "checkpoint.json"));
  if (pathExists(stage.path() / "rootfs-changes.json")) {
    in.changes = json::parse(readFile(stage.path() / "rootfs-changes.json"));
  }
  in.info = r.info;
  in.entries = r.entries;
  in.wire_bytes = r.wire_bytes;
  return in;
}

void printSummary(const Inspection& in, const std::string& file) {
  const json& c = in.metadata.at("container");
  const json& h = in.metadata.at("host");
  const json& o = in.metadata.at("options");
  // Everything from the bundle is printed escaped: it is the sender's text.
  auto str = [](const json& j, const char* key) { return printable(j.value(key, "")); };
  std::map<std::string, int> marks;
  for (const auto& ch : in.changes) marks[ch.value("mark", "?")]++;
  std::printf("Bundle:     %s (%s, %zu entries, all verified)\n", file.c_str(),
              formatBytes(in.wire_bytes).c_str(), in.entries.size());
  std::printf("Container:  %s\n", str(c.at("spec"), "name").c_str());
  std::printf("Image:      %s (sha256:%.12s)\n", str(c.at("spec"), "image").c_str(),
              str(c, "image_id").c_str());
  std::printf("Source:     %s (%s, kernel %s, %s %s)\n", str(h, "host_name").c_str(),
              str(h, "arch").c_str(), str(h, "kernel").c_str(), str(h, "distribution").c_str(),
              str(h, "distribution_version").c_str());
  std::printf("Runtime:    %s %s, CRIU %s, conmon %s\n", str(h, "runtime_name").c_str(),
              str(h, "runtime_version").c_str(), str(h, "criu_version").c_str(),
              str(h, "conmon_version").c_str());
  std::printf("Created:    %s\n", timeText(in.metadata.value("created_unix", int64_t{0})).c_str());
  std::printf("Options:    leave-running %s, tcp-established %s, file-locks %s\n",
              o.value("leave_running", false) ? "yes" : "no",
              o.value("tcp_established", false) ? "yes" : "no",
              o.value("file_locks", false) ? "yes" : "no");
  std::printf("Memory:     %s (CRIU images)\n", formatBytes(in.bytes("criu")).c_str());
  std::printf("Rootfs:     %s diff (%d added, %d changed, %d deleted)\n",
              formatBytes(in.bytes("rootfs")).c_str(), marks["A"], marks["C"], marks["D"]);
  for (const auto& e : in.entries) {
    if (e.kind == "volume") {
      std::printf("Volume:     %s (%s archive)\n", e.name.c_str(), formatBytes(e.size).c_str());
    }
  }
  std::printf("Log:        %s\n", in.bytes("log") ? (formatBytes(in.bytes("log")) + " of output").c_str()
                                                  : "none carried");
}

void printStats(const Inspection& in) {
  const json& s = in.info.value("criu_dump_stats", json());
  if (s.is_null()) {
    std::printf("\nCRIU statistics: none recorded\n");
    return;
  }
  std::printf("\nCRIU dump statistics\n");
  std::printf("  freezing time    %8.1f ms\n", s.value("freezing_time_us", 0) / 1000.0);
  std::printf("  frozen time      %8.1f ms\n", s.value("frozen_time_us", 0) / 1000.0);
  std::printf("  memory dump time %8.1f ms\n", s.value("memdump_time_us", 0) / 1000.0);
  std::printf("  memory write     %8.1f ms\n", s.value("memwrite_time_us", 0) / 1000.0);
  std::printf("  pages scanned    %8llu\n", (unsigned long long)s.value("pages_scanned", uint64_t{0}));
  std::printf("  pages written    %8llu\n", (unsigned long long)s.value("pages_written", uint64_t{0}));
}

}  // namespace

int main(int argc, char** argv) {
  bool metadata = false, files = false, stats = false, as_json = false;
  std::string file;
  CLI::App app(
      "Verifies a checkpoint bundle (every checksum, the manifest, the limits) and shows what it "
      "holds: container, image, source host, sizes.",
      "ferry-inspect");
  app.footer(
      "\nExit status: 0 when the bundle is valid, 1 when it is not (the message says what is "
      "wrong), 2 on bad usage.");
  cli::addVersionFlag(app);
  app.add_option("bundle", file, "the bundle file")->required();
  app.add_flag("--metadata", metadata, "also show the source host's recorded metadata");
  app.add_flag("--files", files, "also list the rootfs diff: A added, C changed, D deleted");
  app.add_flag("--stats", stats, "also show CRIU's dump statistics (frozen time, pages)");
  app.add_flag("--json", as_json, "print one JSON object with everything instead");
  try {
    app.parse(argc, argv);
  } catch (const CLI::Success& e) {  // --help
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::cerr << "ferry-inspect: " << e.what() << " (see --help)\n";
    return 2;
  }
  try {
    Inspection in = inspect(file);
    if (as_json) {
      std::cout << json{{"bundle", file},       {"wire_bytes", in.wire_bytes},
                        {"entries", in.entries}, {"metadata", in.metadata},
                        {"changes", in.changes}, {"info", in.info}}
                       .dump(2)
                << "\n";
      return 0;
    }
    printSummary(in, file);
    if (metadata) std::printf("\nSource host metadata\n%s\n", in.metadata.at("host").dump(2).c_str());
    if (files) {
      std::printf("\nRootfs diff\n");
      for (const auto& ch : in.changes) {
        std::printf("  %s /%s\n", ch.value("mark", "?").c_str(),
                    printable(ch.value("path", "")).c_str());
      }
    }
    if (stats) printStats(in);
    return 0;
  } catch (const std::exception& e) {
    std::cerr << "ferry-inspect: " << file << ": " << printable(e.what()) << "\n";
    return 1;
  }
}
