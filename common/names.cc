#include "common/names.h"

#include "common/error.h"

namespace ferry {

void validateName(const std::string& name, const std::string& what) {
  auto ok = [](char c, bool first) {
    bool alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
    return alnum || (!first && (c == '_' || c == '.' || c == '-'));
  };
  bool valid = !name.empty() && name.size() <= 63;
  for (size_t i = 0; valid && i < name.size(); ++i) valid = ok(name[i], i == 0);
  if (!valid) {
    throw Error(ErrorCategory::kInvalidInput,
                "invalid " + what + " '" + name +
                    "': use 1-63 letters, digits, '_', '.' or '-', starting with a letter or digit");
  }
}

}  // namespace ferry
