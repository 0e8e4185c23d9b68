// What a call throws: its Error's message, or "" when it throws none.
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

}  // namespace ferry::test
