// CRIU's page-server protocol (criu/page-xfer.c; the same from CRIU 3.x to
// 4.1.1): 24-byte records in host byte order, {u32 cmd (flags << 16 |
// command), u32 nr_pages, u64 vaddr, u64 dst_id (id << 8 | type: 1 a
// process, 2 shared memory)}. Used where ferry speaks it: a cold dump's
// relay and its target (engine/checkpoint/page_stream.h), post-copy's feed
// (protocol/page_feed.h).
#pragma once

#include <cstdint>

namespace ferry {

struct PageServerIov {
  uint32_t cmd = 0;
  uint32_t nr_pages = 0;
  uint64_t vaddr = 0;
  uint64_t dst_id = 0;
};
static_assert(sizeof(PageServerIov) == 24);

inline constexpr uint32_t kPsCmdMask = 0xffff;
inline constexpr uint32_t kPsFlagShift = 16;
inline constexpr uint32_t kPsIovOpen2 = 4;
inline constexpr uint32_t kPsIovAddF = 6;
inline constexpr uint32_t kPsIovGet = 7;
inline constexpr uint32_t kPsIovClose = 0x1023;
inline constexpr uint32_t kPsIovForceClose = 0x1024;
// The flags of an ADD_F.
inline constexpr uint32_t kPsPagePresent = 1 << 2;  // PE_PRESENT: the pages follow
// PE_LAZY: pages a lazy restore could fetch later; CRIU marks anonymous
// memory so in every dump, and an ordinary restore reads them as present.
inline constexpr uint32_t kPsPageLazy = 1 << 1;

}  // namespace ferry
