// Random bytes from the kernel (getrandom(2)), for what must not be guessed:
// one-time stream tokens, MCS levels, unique names. std::random_device is
// implementation-defined and may not be a kernel source; this always is.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace ferry {

// `n` random bytes. Blocks only until the kernel's pool is initialised
// (early boot); throws Error if getrandom fails otherwise.
std::string randomBytes(size_t n);

// A random 64-bit number.
uint64_t randomU64();

}  // namespace ferry
