// Who a container's process runs as, resolved the way libpod resolves it:
// `--user name|uid[:group]` against the container's own /etc/passwd and
// /etc/group (or files mounted over them), falling back to the host's for
// names listed as host users; supplementary groups from the user's
// memberships and from --group-add, skipping (with a warning) gids outside
// the user namespace's mapping; HOME from the passwd entry; a umask that must
// be octal. Pure logic: the caller reads the files.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

struct PasswdEntry {
  std::string name;
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::string home;
};

struct GroupEntry {
  std::string name;
  uint32_t gid = 0;
  std::vector<std::string> members;
};

// Lines that are not well-formed entries are skipped, as libc does.
std::vector<PasswdEntry> parsePasswd(std::string_view text);
std::vector<GroupEntry> parseGroup(std::string_view text);

struct UserDb {
  std::vector<PasswdEntry> passwd;
  std::vector<GroupEntry> group;
};

// One line of a gid (or uid) map: `size` ids from `container` on.
struct IdRange {
  uint32_t container = 0;
  uint32_t host = 0;
  uint32_t size = 0;
};

struct IdentityRequest {
  std::string user;                    // name|uid[:group|gid]; empty: root
  std::vector<std::string> group_add;  // group names or gids
  std::set<std::string> host_users;    // user names resolved in the host's files
  std::vector<IdRange> gid_map;        // empty: no user namespace, every gid maps
};

struct Identity {
  uint32_t uid = 0;
  uint32_t gid = 0;
  std::vector<uint32_t> additional_gids;  // sorted, without gid
  std::string home = "/";
  std::vector<std::string> warnings;  // gids skipped, and why
};

// Throws Error kInvalidInput naming what is missing and where it was looked
// for (a user or group name not in the container's files, a bad number).
Identity resolveIdentity(const IdentityRequest& req, const UserDb& container, const UserDb& host);

// "022", "0022", "27": octal, at most 0777. Throws Error kInvalidInput.
uint32_t parseUmask(const std::string& text);

}  // namespace ferry
