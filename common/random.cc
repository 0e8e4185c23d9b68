#include "common/random.h"

#include <sys/random.h>

#include <cerrno>
#include <cstring>

#include "common/error.h"

namespace ferry {

std::string randomBytes(size_t n) {
  std::string out(n, '\0');
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::getrandom(out.data() + got, n - got, 0);
    if (r < 0) {
      if (errno == EINTR) continue;
      throwErrno("getrandom");
    }
    got += static_cast<size_t>(r);
  }
  return out;
}

uint64_t randomU64() {
  std::string b = randomBytes(sizeof(uint64_t));
  uint64_t v;
  std::memcpy(&v, b.data(), sizeof v);
  return v;
}

}  // namespace ferry
