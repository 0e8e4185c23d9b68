// What a call throws: its Error's message, or "" when it throws none; or
// the Error itself.
#pragma once

#include <functional>
#include <string>

#include "common/error.h"

namespace ferry::test {

inline std::string errorOf(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// The Error `f` throws; when it throws none, one of category kPermanent
// saying so (a test expecting another category or message fails on it).
inline Error thrownError(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e;
  }
  return Error(ErrorCategory::kPermanent, "(no error was thrown)");
}

}  // namespace ferry::test
