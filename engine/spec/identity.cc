#include "engine/spec/identity.h"

#include <algorithm>
#include <charconv>

#include "common/error.h"

namespace ferry {

namespace {

std::vector<std::string_view> splitFields(std::string_view line, char sep) {
  std::vector<std::string_view> out;
  size_t start = 0;
  for (;;) {
    size_t end = line.find(sep, start);
    out.push_back(line.substr(start, end == std::string_view::npos ? line.npos : end - start));
    if (end == std::string_view::npos) return out;
    start = end + 1;
  }
}

std::optional<uint32_t> number(std::string_view s) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (s.empty() || ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return v;
}

template <class F>
void eachLine(std::string_view text, F&& f) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    std::string_view line = text.substr(start, end == text.npos ? text.npos : end - start);
    if (!line.empty() && line.front() != '#') f(line);
    if (end == text.npos) break;
    start = end + 1;
  }
}

const PasswdEntry* userByName(const UserDb& db, std::string_view name) {
  for (const auto& e : db.passwd) {
    if (e.name == name) return &e;
  }
  return nullptr;
}

const PasswdEntry* userById(const UserDb& db, uint32_t uid) {
  for (const auto& e : db.passwd) {
    if (e.uid == uid) return &e;
  }
  return nullptr;
}

std::optional<uint32_t> groupByName(const UserDb& db, std::string_view name) {
  for (const auto& g : db.group) {
    if (g.name == name) return g.gid;
  }
  return std::nullopt;
}

bool mapped(const std::vector<IdRange>& map, uint32_t id) {
  if (map.empty()) return true;
  for (const auto& r : map) {
    if (id >= r.container && id - r.container < r.size) return true;
  }
  return false;
}

}  // namespace

std::vector<PasswdEntry> parsePasswd(std::string_view text) {
  std::vector<PasswdEntry> out;
  eachLine(text, [&](std::string_view line) {
    auto f = splitFields(line, ':');
    if (f.size() < 7 || f[0].empty()) return;
    auto uid = number(f[2]), gid = number(f[3]);
    if (!uid || !gid) return;
    out.push_back({std::string(f[0]), *uid, *gid, std::string(f[5])});
  });
  return out;
}

std::vector<GroupEntry> parseGroup(std::string_view text) {
  std::vector<GroupEntry> out;
  eachLine(text, [&](std::string_view line) {
    auto f = splitFields(line, ':');
    if (f.size() < 4 || f[0].empty()) return;
    auto gid = number(f[2]);
    if (!gid) return;
    GroupEntry g{std::string(f[0]), *gid, {}};
    if (!f[3].empty()) {
      for (auto m : splitFields(f[3], ',')) {
        if (!m.empty()) g.members.emplace_back(m);
      }
    }
    out.push_back(std::move(g));
  });
  return out;
}

Identity resolveIdentity(const IdentityRequest& req, const UserDb& container, const UserDb& host) {
  Identity id;
  std::string user = req.user.empty() ? "0" : req.user;
  std::string_view spec = user;
  size_t colon = spec.find(':');
  std::string_view who = spec.substr(0, colon);
  std::optional<std::string_view> group;
  if (colon != spec.npos) group = spec.substr(colon + 1);
  if (who.empty() || (group && group->empty())) {
    throwInvalidInput("invalid user '" + user + "': expected name|uid[:group|gid]");
  }

  // The user: a number needs no entry; a name must have one, in the
  // container's files or -- for a host user -- the host's.
  bool on_host = req.host_users.count(std::string(who)) != 0;
  const UserDb& users = on_host ? host : container;
  const PasswdEntry* entry = nullptr;
  if (auto n = number(who)) {
    id.uid = *n;
    entry = userById(container, *n);
  } else {
    if (who == "root") {
      entry = userByName(users, who);
      id.uid = 0;
    } else {
      entry = userByName(users, who);
      if (!entry) {
        throwInvalidInput("user '" + std::string(who) + "' is not in the " +
                          (on_host ? "host's" : "container's") +
                          " /etc/passwd: give a uid, or add the user to the image");
      }
      id.uid = entry->uid;
    }
  }
  // Without a group: the entry's primary group, else root's (as libpod).
  id.gid = entry ? entry->gid : 0;
  if (group) {
    if (auto n = number(*group)) {
      id.gid = *n;
    } else if (auto g = groupByName(on_host ? host : container, *group)) {
      id.gid = *g;
    } else {
      throwInvalidInput("group '" + std::string(*group) + "' is not in the " +
                        (on_host ? "host's" : "container's") + " /etc/group: give a gid");
    }
  }
  if (entry && !entry->home.empty()) id.home = entry->home;

  // Supplementary groups: memberships of the named user, then --group-add.
  std::vector<uint32_t> gids;
  if (entry) {
    for (const auto& g : (on_host ? host : container).group) {
      if (std::find(g.members.begin(), g.members.end(), entry->name) != g.members.end()) {
        gids.push_back(g.gid);
      }
    }
  }
  for (const auto& add : req.group_add) {
    if (add == "keep-groups") {
      throwInvalidInput("--group-add keep-groups is not supported: name the groups");
    }
    if (auto n = number(add)) {
      gids.push_back(*n);
    } else if (auto g = groupByName(container, add)) {
      gids.push_back(*g);
    } else {
      throwInvalidInput("--group-add: group '" + add +
                        "' is not in the container's /etc/group: give a gid");
    }
  }
  std::sort(gids.begin(), gids.end());
  gids.erase(std::unique(gids.begin(), gids.end()), gids.end());
  for (uint32_t g : gids) {
    if (g == id.gid) continue;
    if (!mapped(req.gid_map, g)) {
      id.warnings.push_back("supplementary group " + std::to_string(g) +
                            " is outside the user namespace's gid mapping: skipped");
      continue;
    }
    id.additional_gids.push_back(g);
  }
  if (!mapped(req.gid_map, id.gid)) {
    throwInvalidInput("gid " + std::to_string(id.gid) +
                      " is outside the user namespace's gid mapping");
  }
  return id;
}

uint32_t parseUmask(const std::string& text) {
  uint32_t v = 0;
  auto [p, ec] = std::from_chars(text.data(), text.data() + text.size(), v, 8);
  if (text.empty() || ec != std::errc() || p != text.data() + text.size() || v > 0777) {
    throwInvalidInput("invalid umask '" + text + "': give octal digits, at most 0777 (e.g. 022)");
  }
  return v;
}

}  // namespace ferry
