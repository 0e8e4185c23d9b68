// User namespaces for containers (`ferry run --userns=auto|host`, issue 14).
// With auto (the default) a container runs in a user namespace of its own:
// its uids and gids 0..65535 are a private range of host ids, so that its
// root is nobody on the host, and root on the host -- which owns the
// namespace -- may checkpoint it whatever user it runs as (CRIU's prlimit of
// another user's process needs CAP_SYS_RESOURCE only outside it). The range
// is part of the container's record: it travels with a migration and is
// reserved on the target. Pure logic: no I/O.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ferry {

// The host ids [host, host + size) a container's ids [0, size) map to.
// size 0: no user namespace (the host's ids).
struct UsernsRange {
  uint32_t host = 0;
  uint32_t size = 0;

  bool empty() const { return size == 0; }
  // The host id of container id `id` (which must be below size).
  uint32_t toHost(uint32_t id) const { return host + id; }
  bool operator==(const UsernsRange&) const = default;
};

// What --userns=auto hands out: 65536 ids, as Podman's auto default, in
// slots aligned to their size from 2^20 up (above the ids of ordinary users
// and of the subordinate ranges useradd gives them).
constexpr uint32_t kUsernsSize = 65536;
constexpr uint32_t kUsernsFirst = 1u << 20;

// "auto" (also ""), "host"; throws Error kInvalidInput naming the value.
// Returns the canonical mode.
std::string parseUsernsMode(const std::string& mode);

bool overlaps(const UsernsRange& a, const UsernsRange& b);

// A free slot not overlapping any of `used`, chosen from `random` (so that
// hosts allocating independently rarely pick the same one). Throws Error
// kPermanent when every slot is taken.
UsernsRange pickIdRange(const std::vector<UsernsRange>& used, uint64_t random);

// What a record from a checkpoint may carry: empty, or a range as
// pickIdRange gives one. Throws Error kInvalidInput saying what is wrong.
void validateIdRange(const UsernsRange& r);

// "host ids 1048576-1114111".
std::string describe(const UsernsRange& r);

}  // namespace ferry
