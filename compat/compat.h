// Whether a checkpoint made on one host can be restored on another: the
// recorded HostInfo of the source against this host's, checked before a
// restore writes anything (and by the coordinator before a migration freezes
// anything). Pure functions of their inputs; no I/O, thread-safe.
//
//   auto findings = checkCompatibility(in, opts.ignore);
//   for (const auto& w : enforceCompatibility(findings, in.source.host_name,
//                                             in.target.host_name)) log->warn(w.message);
#pragma once

#include <set>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "compat/host_info.h"

namespace ferry {

enum class Severity {
  kRefuse,  // the restore would fail or misbehave: do not attempt it
  kWarn,    // the restore may work; say what differs
};

struct Finding {
  // Stable name users pass to --ignore; one of compatCheckNames().
  std::string check;
  Severity severity = Severity::kWarn;
  // "CHECK: what differs, on which host -- what to do", naming both hosts.
  std::string message;
  // A refusal the caller overrode on purpose; its severity is then kWarn and
  // its message starts with "ignored on purpose: ".
  bool ignored = false;
};
void to_json(nlohmann::json& j, const Finding& f);  // severity "refuse" | "warn"
void from_json(const nlohmann::json& j, Finding& f);

struct CompatInput {
  HostInfo source;             // recorded in the checkpoint
  HostInfo target;             // this host
  std::string image_name;      // the container's image, as the user named it
  std::string image_id;        // sha256 hex
  bool image_present = false;  // whether the target has that image id
};

// Every check name, refusals first: arch, cgroup, runtime, criu-version,
// cpu-flags, page-size, network-lock, image, then the warnings kernel, distribution,
// runtime-version, selinux.
std::vector<std::string> compatCheckNames();

// All findings, refusals first (then ignored refusals, then warnings), each
// check at most once. Refusals: arch, cgroup version, runtime name, page size
// differ; the target's CRIU is older than the source's or either host did not
// report one; the target lacks a CPU flag the source has; the source's CRIU
// locked the network with nftables and the target's cannot (or did not say);
// the image is not on the target. Warnings: the target's kernel is older (or unreported);
// distribution or its version differ; the runtime's major.minor differs (or is
// unreported); SELinux modes differ.
// `ignore` holds check names: an ignored refusal is turned into a warning (see
// Finding::ignored); ignoring a warning check changes nothing. Throws Error
// kInvalidInput naming the valid checks when `ignore` holds an unknown name.
std::vector<Finding> checkCompatibility(const CompatInput& in, const std::set<std::string>& ignore);

// Returns the warnings when no refusal remains. Otherwise throws Error
// kIncompatible:
//   checkpoint from SRC cannot be restored on DST:
//     arch: ...
//     cpu-flags: ...
//   (override one on purpose with --ignore CHECK)
// The host names are taken as arguments because findings do not carry them.
std::vector<Finding> enforceCompatibility(const std::vector<Finding>& findings,
                                          std::string_view source_host,
                                          std::string_view target_host);

// Compares dotted versions ("4.1.1", "3.17", "1.1.5+ds1", "1.2.0-rc1",
// "6.18.44-fc-v782") numerically per component; a missing component is 0 and
// everything from the first character that is neither a digit nor '.' is
// ignored. Returns <0, 0 or >0 as a is older than, equal to or newer than b.
int compareVersions(std::string_view a, std::string_view b);

}  // namespace ferry
