#include "compat/compat.h"

#include <algorithm>
#include <charconv>
#include <cstdint>
#include <iterator>
#include <limits>
#include <optional>

#include "common/error.h"

namespace ferry {

namespace {

constexpr std::string_view kIgnoredPrefix = "ignored on purpose: ";
constexpr size_t kMaxFlagsListed = 8;

// What a check says when it fails, without the "CHECK: " prefix; nullopt when
// it passes.
using Verdict = std::optional<std::string>;

std::string shown(const std::string& v) { return v.empty() ? "(not reported)" : v; }

std::string hostName(const std::string& name, const char* fallback) {
  return name.empty() ? fallback : name;
}
std::string src(const CompatInput& in) { return hostName(in.source.host_name, "the source host"); }
std::string dst(const CompatInput& in) { return hostName(in.target.host_name, "this host"); }

// "6.18.44-fc-v782" -> "6.18.44"
std::string_view numericPart(std::string_view v) {
  return v.substr(0, v.find_first_not_of("0123456789."));
}

std::vector<uint64_t> versionNumbers(std::string_view v) {
  v = numericPart(v);
  std::vector<uint64_t> numbers;
  for (;;) {
    size_t dot = v.find('.');
    std::string_view part = v.substr(0, dot);
    uint64_t n = 0;  // an empty component ("4..1", "") counts as 0
    if (std::from_chars(part.data(), part.data() + part.size(), n).ec ==
        std::errc::result_out_of_range) {
      n = std::numeric_limits<uint64_t>::max();
    }
    numbers.push_back(n);
    if (dot == std::string_view::npos) return numbers;
    v.remove_prefix(dot + 1);
  }
}

// "hostB did not report a CRIU version" / "neither hostA nor hostB reported ..."
std::string unreported(const CompatInput& in, const std::string& s, const std::string& t,
                       const std::string& what) {
  if (s.empty() && t.empty()) return "neither " + src(in) + " nor " + dst(in) + " reported " + what;
  return (s.empty() ? src(in) : dst(in)) + " did not report " + what;
}

// ---- refusals ----

Verdict checkArch(const CompatInput& in) {
  if (in.source.arch == in.target.arch) return std::nullopt;
  return src(in) + " is " + shown(in.source.arch) + ", " + dst(in) + " is " +
         shown(in.target.arch) + "; a checkpoint cannot move between architectures -- " +
         "restore it on an " + shown(in.source.arch) + " host";
}

std::string cgroupName(int v) {
  return v == 0 ? "an unknown cgroup version" : "cgroup v" + std::to_string(v);
}

Verdict checkCgroup(const CompatInput& in) {
  int s = in.source.cgroup_version, t = in.target.cgroup_version;
  if (s == t) return std::nullopt;
  return src(in) + " uses " + cgroupName(s) + ", " + dst(in) + " uses " + cgroupName(t) +
         "; a container cannot be restored into another cgroup hierarchy -- restore it on a "
         "host with " +
         cgroupName(s);
}

Verdict checkRuntime(const CompatInput& in) {
  const std::string &s = in.source.runtime_name, &t = in.target.runtime_name;
  if (s == t) return std::nullopt;
  return src(in) + " runs containers with " + shown(s) + ", " + dst(in) + " with " + shown(t) +
         "; only the runtime that made a checkpoint restores it -- restore it on a host that "
         "runs " +
         shown(s);
}

Verdict criuUnreported(const CompatInput& in) {
  const std::string &s = in.source.criu_version, &t = in.target.criu_version;
  std::string said = unreported(in, s, t, "a CRIU version") + ", so whether " + dst(in) +
                     " can read the CRIU images " + src(in) + " wrote is unknown -- ";
  if (t.empty()) {
    return said + "install CRIU " + (s.empty() ? "" : s + " or later ") + "on " + dst(in) +
           " and make sure `criu --version` runs there";
  }
  return said + "restore it only where CRIU is known to be as new as on " + src(in);
}

Verdict checkCriuVersion(const CompatInput& in) {
  const std::string &s = in.source.criu_version, &t = in.target.criu_version;
  if (s.empty() || t.empty()) return criuUnreported(in);
  if (compareVersions(t, s) >= 0) return std::nullopt;
  return src(in) + " has CRIU " + s + ", " + dst(in) + " has CRIU " + t +
         "; an older CRIU may not read images a newer one wrote -- upgrade CRIU on " + dst(in) +
         " to " + s + " or later";
}

std::vector<std::string> sortedCopy(std::vector<std::string> v) {
  std::sort(v.begin(), v.end());
  return v;
}

std::string listFlags(const std::vector<std::string>& flags) {
  std::string list;
  for (size_t i = 0; i < flags.size() && i < kMaxFlagsListed; ++i) {
    list += (i ? ", " : "") + flags[i];
  }
  if (flags.size() > kMaxFlagsListed) {
    list += " and " + std::to_string(flags.size() - kMaxFlagsListed) + " more";
  }
  return list;
}

Verdict checkCpuFlags(const CompatInput& in) {
  // HostInfo promises sorted flags; a hand-edited checkpoint.json may not keep it.
  auto s = sortedCopy(in.source.cpu_flags), t = sortedCopy(in.target.cpu_flags);
  std::vector<std::string> missing;
  std::set_difference(s.begin(), s.end(), t.begin(), t.end(), std::back_inserter(missing));
  if (missing.empty()) return std::nullopt;
  return dst(in) + " lacks " + std::to_string(missing.size()) + " CPU flag" +
         (missing.size() == 1 ? "" : "s") + " that " + src(in) + " has (" + listFlags(missing) +
         "); the checkpointed processes may use those instructions and crash -- restore it on a "
         "host with at least " +
         src(in) + "'s CPU features";
}

Verdict checkPageSize(const CompatInput& in) {
  uint32_t s = in.source.page_size, t = in.target.page_size;
  if (s == t) return std::nullopt;
  auto pages = [](uint32_t p) {
    return p == 0 ? std::string("pages of unreported size") : std::to_string(p) + "-byte pages";
  };
  return src(in) + " uses " + pages(s) + ", " + dst(in) + " uses " + pages(t) +
         "; CRIU cannot restore memory into another page size -- restore it on a host with " +
         pages(s);
}

Verdict checkNetworkLock(const CompatInput& in) {
  if (!in.source.nftables_lock || in.target.nftables_lock) return std::nullopt;
  return src(in) + "'s CRIU locked the container's network with nftables, which " + dst(in) +
         "'s CRIU cannot unlock (`criu check --feature network_lock_nftables` fails there, or its "
         "ferry did not say) -- install a CRIU built with libnftables on " + dst(in) +
         ", or restore it on a host that can (nftables_lock in `ferry hosts --json` or "
         "`ferry-engine host-info`)";
}

Verdict checkImage(const CompatInput& in) {
  if (in.image_present) return std::nullopt;
  std::string image = in.image_name + " (sha256:" + in.image_id.substr(0, 12) + ")";
  return "the container ran on " + src(in) + " from image " + image + ", which " + dst(in) +
         " does not have -- import image " + image + " on " + dst(in) + " first";
}

// ---- warnings ----

Verdict checkKernel(const CompatInput& in) {
  const std::string &s = in.source.kernel, &t = in.target.kernel;
  if (s.empty() || t.empty()) {
    return unreported(in, s, t, "a kernel version") + ", so whether " + dst(in) +
           "'s kernel is older than " + src(in) + "'s is unknown -- check `uname -r` on both hosts";
  }
  if (compareVersions(t, s) >= 0) return std::nullopt;
  return dst(in) + " runs kernel " + t + ", older than " + src(in) + "'s " + s +
         "; the restore may fail if the container relies on features the older kernel lacks -- "
         "prefer a host with kernel " +
         std::string(numericPart(s)) + " or later";
}

std::string distro(const HostInfo& h) {
  if (h.distribution.empty() && h.distribution_version.empty()) return "(not reported)";
  return h.distribution + (h.distribution_version.empty() ? "" : " " + h.distribution_version);
}

Verdict checkDistribution(const CompatInput& in) {
  if (distro(in.source) == distro(in.target)) return std::nullopt;
  return src(in) + " runs " + distro(in.source) + ", " + dst(in) + " runs " + distro(in.target) +
         "; the container brings its own userland, but runc, CRIU and kernel builds differ "
         "between distributions -- if the restore fails, restore it on a " +
         distro(in.source) + " host";
}

std::vector<uint64_t> majorMinor(const std::string& v) {
  auto n = versionNumbers(v);
  n.resize(2);
  return n;
}

Verdict checkRuntimeVersion(const CompatInput& in) {
  // A different runtime is refused by "runtime"; its version says nothing more.
  if (in.source.runtime_name != in.target.runtime_name) return std::nullopt;
  const std::string &s = in.source.runtime_version, &t = in.target.runtime_version;
  const std::string& rt = in.source.runtime_name;
  if (s.empty() || t.empty()) {
    return unreported(in, s, t, "a " + rt + " version") + ", so whether " + dst(in) +
           "'s matches " + src(in) + "'s is unknown -- check `" + rt + " --version` on both hosts";
  }
  if (majorMinor(s) == majorMinor(t)) return std::nullopt;
  return src(in) + " has " + rt + " " + s + ", " + dst(in) + " has " + rt + " " + t + "; " + rt +
         " releases that differ in major or minor version may handle checkpoints differently -- "
         "if the restore fails, restore it on a host with " +
         rt + " " + s;
}

Verdict checkSelinux(const CompatInput& in) {
  const std::string &s = in.source.selinux_mode, &t = in.target.selinux_mode;
  if (s == t) return std::nullopt;
  return "SELinux is " + shown(s) + " on " + src(in) + " and " + shown(t) + " on " + dst(in) +
         "; SELinux labels in the checkpoint's archives are applied only where SELinux is "
         "enabled -- check the restored container's labels, or restore it on a host whose "
         "SELinux mode matches " +
         src(in) + "'s (" + shown(s) + ")";
}

struct Check {
  const char* name;
  Severity severity;
  Verdict (*run)(const CompatInput&);
};

// Refusals first: checkCompatibility and compatCheckNames keep this order.
constexpr Check kChecks[] = {
    {"arch", Severity::kRefuse, checkArch},
    {"cgroup", Severity::kRefuse, checkCgroup},
    {"runtime", Severity::kRefuse, checkRuntime},
    {"criu-version", Severity::kRefuse, checkCriuVersion},
    {"cpu-flags", Severity::kRefuse, checkCpuFlags},
    {"page-size", Severity::kRefuse, checkPageSize},
    {"network-lock", Severity::kRefuse, checkNetworkLock},
    {"image", Severity::kRefuse, checkImage},
    {"kernel", Severity::kWarn, checkKernel},
    {"distribution", Severity::kWarn, checkDistribution},
    {"runtime-version", Severity::kWarn, checkRuntimeVersion},
    {"selinux", Severity::kWarn, checkSelinux},
};

std::string joined(const std::vector<std::string>& v) {
  std::string out;
  for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
  return out;
}

void validateIgnore(const std::set<std::string>& ignore) {
  auto names = compatCheckNames();
  std::vector<std::string> unknown;
  for (const auto& name : ignore) {
    if (std::find(names.begin(), names.end(), name) == names.end()) unknown.push_back(name);
  }
  if (unknown.empty()) return;
  throwInvalidInput("unknown compatibility check" + std::string(unknown.size() == 1 ? "" : "s") +
                    " in --ignore: " + joined(unknown) + " (valid: " + joined(names) + ")");
}

void overrideOnPurpose(Finding& f) {
  f.severity = Severity::kWarn;
  f.ignored = true;
  f.message.insert(0, kIgnoredPrefix);
}

}  // namespace

std::vector<std::string> compatCheckNames() {
  std::vector<std::string> names;
  for (const auto& c : kChecks) names.emplace_back(c.name);
  return names;
}

std::vector<Finding> checkCompatibility(const CompatInput& in,
                                        const std::set<std::string>& ignore) {
  validateIgnore(ignore);
  std::vector<Finding> findings;
  for (const auto& c : kChecks) {
    Verdict v = c.run(in);
    if (!v) continue;
    Finding f{c.name, c.severity, std::string(c.name) + ": " + *v};
    if (f.severity == Severity::kRefuse && ignore.count(f.check)) overrideOnPurpose(f);
    findings.push_back(std::move(f));
  }
  // Remaining refusals first; ignored refusals, now warnings, stay ahead of the plain
  // warnings because kChecks lists refusal checks first.
  std::stable_partition(findings.begin(), findings.end(),
                        [](const Finding& f) { return f.severity == Severity::kRefuse; });
  return findings;
}

std::vector<Finding> enforceCompatibility(const std::vector<Finding>& findings,
                                          std::string_view source_host,
                                          std::string_view target_host) {
  std::string refusals;
  std::vector<Finding> warnings;
  for (const auto& f : findings) {
    if (f.severity == Severity::kRefuse) {
      refusals += "\n  " + f.message;
    } else {
      warnings.push_back(f);
    }
  }
  if (refusals.empty()) return warnings;
  throw Error(ErrorCategory::kIncompatible, "checkpoint from " + std::string(source_host) +
                                                " cannot be restored on " +
                                                std::string(target_host) + ":" + refusals +
                                                "\n(override one on purpose with --ignore CHECK)");
}

int compareVersions(std::string_view a, std::string_view b) {
  auto x = versionNumbers(a), y = versionNumbers(b);
  size_t n = std::max(x.size(), y.size());
  x.resize(n);
  y.resize(n);
  if (x == y) return 0;
  return x < y ? -1 : 1;
}

void to_json(nlohmann::json& j, const Finding& f) {
  j = {{"check", f.check},
       {"severity", f.severity == Severity::kRefuse ? "refuse" : "warn"},
       {"message", f.message},
       {"ignored", f.ignored}};
}

void from_json(const nlohmann::json& j, Finding& f) {
  std::string severity = j.at("severity").get<std::string>();
  if (severity != "refuse" && severity != "warn") {
    throwInvalidInput("compatibility finding has unknown severity '" + severity + "'");
  }
  f.check = j.at("check").get<std::string>();
  f.severity = severity == "refuse" ? Severity::kRefuse : Severity::kWarn;
  f.message = j.at("message").get<std::string>();
  f.ignored = j.value("ignored", false);
}

}  // namespace ferry
