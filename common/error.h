// One error type for ferry: a category callers decide by, an errno where there
// is one, and a chain of context added as the error rises.
//
//   throw Error(ErrorCategory::kInvalidInput, "no such container 'web'");
//   ...
//   catch (Error& e) { e.addContext("restoring web on hostB"); throw; }
//
// what() renders "outermost context: ...: innermost context: message: strerror".
// Thread-safety: an Error is a value; no shared state.
#pragma once

#include <cerrno>
#include <exception>
#include <string>
#include <string_view>
#include <vector>

namespace ferry {

enum class ErrorCategory {
  kRetryable,     // try again later: a peer or resource was busy or away
  kPermanent,     // the operation failed and will fail again as it is
  kIncompatible,  // hosts, versions or formats do not match
  kInvalidInput,  // the caller asked for something wrong or missing
};

std::string_view categoryName(ErrorCategory c);

class Error : public std::exception {
 public:
  Error(ErrorCategory category, std::string message, int err = 0);

  ErrorCategory category() const { return category_; }
  int errnum() const { return errno_; }
  const std::string& message() const { return message_; }
  // Context, outermost first.
  const std::vector<std::string>& context() const { return context_; }

  // Adds context around everything already said (it becomes the outermost).
  Error& addContext(std::string context);

  const char* what() const noexcept override { return rendered_.c_str(); }

 private:
  void render();

  ErrorCategory category_;
  std::string message_;
  int errno_;
  std::vector<std::string> context_;
  std::string rendered_;
};

// Throws an Error for a failed system call, "what: strerror(err)". Category:
// kRetryable for transient errors (EAGAIN, EINTR, EBUSY, ETIMEDOUT),
// kInvalidInput for path and argument errors (ENOENT, EEXIST, ENOTDIR, EINVAL,
// ...), kPermanent otherwise (EIO, ENOSPC, EPERM, ...).
[[noreturn]] void throwErrno(std::string what, int err = errno);

// Shorthand for the most common throw: the caller asked for something wrong.
[[noreturn]] inline void throwInvalidInput(std::string message) {
  throw Error(ErrorCategory::kInvalidInput, std::move(message));
}

// Runs f(); an Error escaping it gets `context` added.
template <class F>
auto withContext(const std::string& context, F&& f) -> decltype(f()) {
  try {
    return f();
  } catch (Error& e) {
    e.addContext(context);
    throw;
  }
}

}  // namespace ferry
