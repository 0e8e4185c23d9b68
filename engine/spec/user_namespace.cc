#include "engine/spec/user_namespace.h"

#include "common/error.h"

namespace ferry {

namespace {

constexpr uint64_t kSlots = ((uint64_t{1} << 32) - kUsernsFirst) / kUsernsSize - 1;  // id 2^32-1 is invalid

}  // namespace

std::string parseUsernsMode(const std::string& mode) {
  if (mode.empty() || mode == "auto") return "auto";
  if (mode == "host") return "host";
  throwInvalidInput("--userns=" + mode +
                    ": expected auto (a private range of host ids, the default) or host");
}

bool overlaps(const UsernsRange& a, const UsernsRange& b) {
  if (a.empty() || b.empty()) return false;
  uint64_t a_end = uint64_t{a.host} + a.size, b_end = uint64_t{b.host} + b.size;
  return a.host < b_end && b.host < a_end;
}

UsernsRange pickIdRange(const std::vector<UsernsRange>& used, uint64_t random) {
  uint64_t start = random % kSlots;
  for (uint64_t i = 0; i < kSlots; ++i) {
    UsernsRange r{static_cast<uint32_t>(kUsernsFirst + ((start + i) % kSlots) * kUsernsSize), kUsernsSize};
    bool taken = false;
    for (const UsernsRange& u : used) taken = taken || overlaps(r, u);
    if (!taken) return r;
  }
  throw Error(ErrorCategory::kPermanent,
              "every range of host ids for user namespaces is taken; remove containers, or run "
              "this one with --userns=host");
}

void validateIdRange(const UsernsRange& r) {
  if (r.empty() && r.host == 0) return;
  if (r.size != kUsernsSize || r.host < kUsernsFirst || r.host % kUsernsSize != 0 ||
      uint64_t{r.host} + r.size > kUsernsFirst + kSlots * kUsernsSize) {
    throwInvalidInput("a user namespace range of " + std::to_string(r.size) + " ids from host id " +
                      std::to_string(r.host) + " (ferry hands out " + std::to_string(kUsernsSize) +
                      " ids aligned to their size from " + std::to_string(kUsernsFirst) + ")");
  }
}

std::string describe(const UsernsRange& r) {
  if (r.empty()) return "the host's ids";
  return "host ids " + std::to_string(r.host) + "-" + std::to_string(uint64_t{r.host} + r.size - 1);
}

}  // namespace ferry
