#include "engine/store/carried_record.h"

#include <cctype>

#include "common/error.h"
#include "common/names.h"
#include "common/strings.h"
#include "engine/spec/identity.h"
#include "engine/spec/secret_ref.h"
#include "engine/spec/selinux_label.h"

namespace ferry {

namespace {

[[noreturn]] void refuse(const std::string& what) {
  throwInvalidInput("the checkpoint carries " + what + ", which ferry does not restore");
}

// Absolute, below /, with no "." or ".." part (as generateOciSpec takes a
// destination: "/a//b/" is one too).
bool cleanBelowRoot(const std::string& p) {
  if (p.empty() || p[0] != '/' || p.find_first_not_of('/') == std::string::npos) return false;
  for (const std::string& part : splitFields(p.substr(1), '/')) {
    if (part == "." || part == "..") return false;
  }
  return true;
}

// A user, group or host user name or id: letters, digits, '_', '.', '-'.
bool plainName(const std::string& s) {
  if (s.empty() || s[0] == '-') return false;
  for (char c : s) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-')
      return false;
  }
  return true;
}

bool digits(const std::string& s) {
  return !s.empty() && s.size() <= 4 && s.find_first_not_of("0123456789") == std::string::npos &&
         std::stoi(s) < 1024;
}

// An MLS/MCS level as containerLabels gives one: s0, s0:c1,c2, s0-s0:c0.c1023.
bool mcsLevel(const std::string& level) {
  std::string sens = level.substr(0, level.find(':'));
  for (const std::string& s : splitFields(sens, '-')) {
    if (s.size() < 2 || s[0] != 's' || !digits(s.substr(1))) return false;
  }
  if (level.find(':') == std::string::npos) return true;
  for (const std::string& cat : splitFields(level.substr(level.find(':') + 1), ',')) {
    for (const std::string& c : splitFields(cat, '.')) {
      if (c.size() < 2 || c[0] != 'c' || !digits(c.substr(1))) return false;
    }
  }
  return true;
}

// user:role:type:level, each of the first three an identifier.
bool selinuxLabel(const std::string& label) {
  std::string level = levelOf(label);
  if (level.empty()) return false;
  std::string base = label.substr(0, label.size() - level.size() - 1);
  std::vector<std::string> parts = splitFields(base, ':');
  if (parts.size() != 3) return false;
  for (const auto& p : parts) {
    if (p.empty()) return false;
    for (char c : p)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_') return false;
  }
  return mcsLevel(level);
}

void validateVolumesCarried(const std::vector<VolumeMount>& volumes) {
  validateVolumes(volumes);
  for (const auto& v : volumes) {
    if (v.overlay || !v.upperdir.empty() || !v.workdir.empty()) {
      // Its writes are the source container's alone: the source refuses to
      // checkpoint one (engine_checkpoint.cc), and the host paths it may
      // name are the source's, never this host's to create or mount.
      refuse("an overlay (O) volume, " + v.name +
             (v.upperdir.empty() ? "" : " (upperdir " + v.upperdir + ")"));
    }
    if (!cleanBelowRoot(v.destination)) refuse("volume " + v.name + " at '" + v.destination + "'");
    if (v.relabel != 0 && v.relabel != 'z' && v.relabel != 'Z') {
      refuse("volume " + v.name + " with relabel '" + std::string(1, v.relabel) + "'");
    }
  }
}

void validateProcess(const ContainerSpec& s) {
  if (s.listen_fds != 0 || !s.listen_fdnames.empty()) {
    refuse("socket activation (LISTEN_FDS=" + std::to_string(s.listen_fds) + ")");
  }
  validateSdNotify(s.sdnotify);
  for (const auto& e : s.env) {
    if (e.find('=') == std::string::npos || e[0] == '=') refuse("environment entry '" + e + "'");
  }
  for (const auto& [k, v] : s.annotations) {
    if (k.empty()) refuse("an annotation with no key");
  }
  if (!s.cwd.empty() && s.cwd != "/" && !cleanBelowRoot(s.cwd))
    refuse("working directory '" + s.cwd + "'");
  auto colon = s.user.find(':');
  if (!s.user.empty() && (!plainName(s.user.substr(0, colon)) ||
                          (colon != std::string::npos && !plainName(s.user.substr(colon + 1))))) {
    refuse("user '" + s.user + "'");
  }
  for (const auto& g : s.group_add)
    if (!plainName(g)) refuse("group '" + g + "'");
  for (const auto& u : s.host_users)
    if (!plainName(u)) refuse("host user '" + u + "'");
  if (!s.umask.empty()) parseUmask(s.umask);
  if (!s.stop_signal.empty()) parseSignal(s.stop_signal);
}

}  // namespace

void validateCarriedRecord(const ContainerRecord& r) {
  const ContainerSpec& s = r.spec;
  validateName(s.name, "container name in the checkpoint");
  // The image is matched by exact id only: a name or a prefix here could
  // put CRIU's memory over another image.
  bool hex = r.image_id.size() == 64 &&
             r.image_id.find_first_not_of("0123456789abcdef") == std::string::npos;
  if (!hex) throwInvalidInput("the checkpoint's image id is not a sha256 digest");
  validateVolumesCarried(s.volumes);
  for (const auto& t : s.tmpfs) {
    // Round trip through --tmpfs's parser: the same destinations and options.
    std::string arg = t.destination;
    for (size_t i = 0; i < t.options.size(); ++i) arg += (i ? "," : ":") + t.options[i];
    TmpfsMount parsed = parseTmpfsArg(arg);
    if (parsed.destination != t.destination ||
        (!t.options.empty() && parsed.options != t.options)) {
      refuse("tmpfs '" + arg + "'");
    }
  }
  for (const auto& ref : s.secrets) {
    SecretRef parsed = parseSecretArg(ref.name + ",type=env,target=" + ref.target);
    if (parsed.name != ref.name || parsed.target != ref.target) refuse("secret '" + ref.name + "'");
  }
  validateProcess(s);
  validateLabelOptions(s.label_opts);
  if (r.process_label.empty() != r.mount_label.empty()) {
    refuse("one SELinux label without the other");
  }
  if (!r.process_label.empty()) {
    if (!selinuxLabel(r.process_label)) refuse("SELinux process label '" + r.process_label + "'");
    if (!selinuxLabel(r.mount_label)) refuse("SELinux mount label '" + r.mount_label + "'");
    if (levelOf(r.process_label) != levelOf(r.mount_label)) refuse("SELinux labels of two levels");
  }
  if (r.notify_status.find_first_of("\n\r") != std::string::npos)
    refuse("a notify status of several lines");
  // A user namespace exactly when --userns=auto, over a range ferry hands
  // out (never host ids 0-65535: the target's own users').
  if (s.userns != "auto" && s.userns != "host") refuse("--userns=" + s.userns);
  if ((s.userns == "auto") == r.id_range.empty()) {
    refuse(s.userns == "auto" ? "--userns=auto without a range of host ids"
                              : "a range of host ids for a container with --userns=host");
  }
  validateIdRange(r.id_range);
}

}  // namespace ferry
