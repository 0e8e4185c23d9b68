#include "engine/spec/selinux_label.h"

#include <random>
#include <sstream>

#include "common/error.h"

namespace ferry {

namespace {

// user:role:type[:level]: at least three non-empty fields.
bool isContext(const std::string& c) {
  size_t a = c.find(':');
  if (a == 0 || a == std::string::npos) return false;
  size_t b = c.find(':', a + 1);
  if (b == a + 1 || b == std::string::npos) return false;
  size_t t = c.find(':', b + 1);
  return (t == std::string::npos ? c.size() : t) > b + 1;
}

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t\r"), e = s.find_last_not_of(" \t\r");
  return b == std::string::npos ? "" : s.substr(b, e - b + 1);
}

// Field i (0 user, 1 role, 2 type) of a context, replaced.
std::string withField(const std::string& context, int field, const std::string& value) {
  std::vector<std::string> parts;
  size_t start = 0;
  for (int i = 0; i < 3; ++i) {
    size_t end = context.find(':', start);
    parts.push_back(context.substr(start, end == std::string::npos ? end : end - start));
    start = end == std::string::npos ? context.size() : end + 1;
  }
  parts[field] = value;
  std::string rest = start < context.size() ? ":" + context.substr(start) : "";
  return parts[0] + ":" + parts[1] + ":" + parts[2] + rest;
}

}  // namespace

SelinuxLabels parseLxcContexts(const std::string& text) {
  SelinuxLabels out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    line = trim(line.substr(0, line.find('#')));
    size_t eq = line.find('=');
    if (eq == std::string::npos) continue;
    std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    if (key == "process") out.process = value;
    if (key == "file") out.mount = value;
  }
  if (!isContext(out.process) || !isContext(out.mount)) {
    throw Error(ErrorCategory::kPermanent,
                "the SELinux policy's container contexts file has no valid `process` and `file` "
                "contexts; install a policy with container support (container-selinux)");
  }
  return out;
}

std::string levelOf(const std::string& context) {
  size_t n = 0, pos = 0;
  while (n < 3 && (pos = context.find(':', pos)) != std::string::npos) ++n, ++pos;
  return n == 3 ? context.substr(pos) : "";
}

std::string withLevel(const std::string& context, const std::string& level) {
  if (!isContext(context)) throwInvalidInput("'" + context + "' is not an SELinux context");
  size_t n = 0, pos = 0;
  while (n < 3 && (pos = context.find(':', pos)) != std::string::npos) ++n, ++pos;
  std::string base = n == 3 ? context.substr(0, pos - 1) : context;
  return level.empty() ? base : base + ":" + level;
}

std::string pickMcsLevel(uint64_t seed, const std::set<std::string>& used) {
  constexpr unsigned kCategories = 1024;
  constexpr unsigned kPairs = kCategories * (kCategories - 1) / 2;
  if (used.size() >= kPairs) throw Error(ErrorCategory::kPermanent, "every SELinux MCS level is in use");
  std::mt19937_64 rng(seed);
  for (;;) {
    unsigned a = static_cast<unsigned>(rng() % kCategories), b = static_cast<unsigned>(rng() % kCategories);
    if (a == b) continue;
    if (a > b) std::swap(a, b);
    std::string level = "s0:c" + std::to_string(a) + ",c" + std::to_string(b);
    if (!used.count(level)) return level;
  }
}

void validateLabelOptions(const std::vector<std::string>& opts) {
  for (const auto& o : opts) {
    if (o == "disable") continue;
    size_t colon = o.find(':');
    std::string key = o.substr(0, colon);
    bool known = key == "type" || key == "level" || key == "user" || key == "role" || key == "filetype";
    bool one_field = key == "level" || o.find(':', colon + 1) == std::string::npos;
    if (colon == std::string::npos || !known || colon + 1 == o.size() || !one_field) {
      throwInvalidInput("--security-opt label=" + o +
                        ": expected label=disable, label=type:T, label=level:L, label=user:U, "
                        "label=role:R or label=filetype:T");
    }
  }
}

bool labelsDisabled(const std::vector<std::string>& opts) {
  for (const auto& o : opts) if (o == "disable") return true;
  return false;
}

SelinuxLabels containerLabels(bool selinux_enabled, const std::string& lxc_contexts,
                              const std::vector<std::string>& opts,
                              const std::set<std::string>& used_levels, uint64_t seed) {
  validateLabelOptions(opts);
  if (!selinux_enabled || labelsDisabled(opts)) return {};
  SelinuxLabels l = parseLxcContexts(lxc_contexts);
  std::string level;
  for (const auto& o : opts) {
    std::string key = o.substr(0, o.find(':')), value = o.substr(o.find(':') + 1);
    if (key == "user") l.process = withField(l.process, 0, value);
    if (key == "role") l.process = withField(l.process, 1, value);
    if (key == "type") l.process = withField(l.process, 2, value);
    if (key == "filetype") l.mount = withField(l.mount, 2, value);
    if (key == "level") level = value;
  }
  if (level.empty()) level = pickMcsLevel(seed, used_levels);
  l.process = withLevel(l.process, level);
  l.mount = withLevel(l.mount, level);
  return l;
}

std::string relabelContext(const std::string& mount_label, char mode) {
  return mode == 'z' ? withLevel(mount_label, "s0") : mount_label;
}

}  // namespace ferry
