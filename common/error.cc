#include "common/error.h"

#include <cstring>

namespace ferry {

std::string_view categoryName(ErrorCategory c) {
  switch (c) {
    case ErrorCategory::kRetryable:
      return "retryable";
    case ErrorCategory::kPermanent:
      return "permanent";
    case ErrorCategory::kIncompatible:
      return "incompatible";
    case ErrorCategory::kInvalidInput:
      return "invalid-input";
  }
  return "unknown";
}

Error::Error(ErrorCategory category, std::string message, int err)
    : category_(category), message_(std::move(message)), errno_(err) {
  render();
}

Error& Error::addContext(std::string context) {
  context_.insert(context_.begin(), std::move(context));
  render();
  return *this;
}

void Error::render() {
  rendered_.clear();
  for (const auto& c : context_) {
    rendered_ += c;
    rendered_ += ": ";
  }
  rendered_ += message_;
  if (errno_ != 0) {
    rendered_ += ": ";
    rendered_ += std::strerror(errno_);
  }
}

void throwErrno(std::string what, int err) {
  ErrorCategory c = ErrorCategory::kPermanent;
  switch (err) {
    case EAGAIN:
    case EINTR:
    case EBUSY:
    case ETIMEDOUT:
      c = ErrorCategory::kRetryable;
      break;
    case ENOENT:
    case EEXIST:
    case ENOTDIR:
    case EISDIR:
    case EINVAL:
    case ENAMETOOLONG:
    case ELOOP:
    case EXDEV:
      c = ErrorCategory::kInvalidInput;
      break;
    default:
      break;
  }
  throw Error(c, std::move(what), err);
}

}  // namespace ferry
