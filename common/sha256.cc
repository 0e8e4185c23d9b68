#include "common/sha256.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "common/fd.h"
#include "common/fs.h"

namespace ferry {

void Sha256::CtxFree::operator()(evp_md_ctx_st* c) const { EVP_MD_CTX_free(c); }

// Failing to set up a digest is not a condition we can recover from or
// report usefully (only allocation can fail): a broken invariant.
Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(ctx_.get(), EVP_sha256(), nullptr) != 1) std::abort();
}

void Sha256::update(const void* data, size_t n) {
  if (!digest_.empty()) {
    std::fputs("Sha256::update after hexDigest\n", stderr);
    std::abort();
  }
  if (EVP_DigestUpdate(ctx_.get(), data, n) != 1) std::abort();
}

std::string Sha256::hexDigest() {
  if (!digest_.empty()) return digest_;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  if (EVP_DigestFinal_ex(ctx_.get(), md, &len) != 1 || len != 32) std::abort();
  static constexpr char kHex[] = "0123456789abcdef";
  digest_.reserve(64);
  for (unsigned int i = 0; i < len; ++i) {
    digest_ += kHex[md[i] >> 4];
    digest_ += kHex[md[i] & 0xf];
  }
  return digest_;
}

std::string sha256Hex(std::string_view data) {
  Sha256 h;
  h.update(data);
  return h.hexDigest();
}

std::string sha256Fd(int fd, const std::string& what) {
  Sha256 h;
  std::array<char, 1 << 16> buf;
  for (;;) {
    ssize_t n = retryEintr([&] { return ::read(fd, buf.data(), buf.size()); });
    if (n < 0) throwErrno("read " + what);
    if (n == 0) return h.hexDigest();
    h.update(buf.data(), static_cast<size_t>(n));
  }
}

std::string sha256File(const fs::path& path) {
  UniqueFd fd = openFile(path, O_RDONLY);
  return sha256Fd(fd.get(), path.string());
}

}  // namespace ferry
