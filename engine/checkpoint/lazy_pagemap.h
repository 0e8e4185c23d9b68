// The memory a CRIU dump with lazy pages left with its page server: the
// entries of its pagemap-PID.img images flagged PE_LAZY. The target of a
// post-copy migration fetches exactly these (protocol/page_feed.h).
#pragma once

#include <cstdint>
#include <filesystem>
#include <string_view>
#include <vector>

namespace ferry {

struct LazyPages {
  uint64_t pid = 0;  // as CRIU names the process (pagemap-PID.img)
  uint64_t vaddr = 0;
  uint32_t pages = 0;
};

// Every lazy range of the dump in `images` (CRIU's images directory).
// Throws Error kInvalidInput for an image that is not a CRIU pagemap.
std::vector<LazyPages> lazyPagemap(const std::filesystem::path& images);

// One pagemap image's lazy ranges (its bytes); `pid` names them.
std::vector<LazyPages> parsePagemapImage(std::string_view bytes, uint64_t pid);

}  // namespace ferry
