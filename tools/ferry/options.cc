#include "tools/ferry/options.h"

namespace ferry::cli {

int parsePrecopy(const std::string& v) {
  if (v == "auto") return -1;
  if (v == "off" || v == "0") return 0;
  if (v.empty() || v.size() > 2 || v.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(v) < 1 || std::stoi(v) > 20) {
    throw CLI::ValidationError(
        "--precopy takes auto, off or a number of rounds from 1 to 20, not '" + v + "'");
  }
  return std::stoi(v);
}

int parseCompress(const std::string& v) {
  if (v == "auto") return -1;
  if (v == "none" || v == "0") return 0;
  if (v.empty() || v.size() > 2 || v.find_first_not_of("0123456789") != std::string::npos ||
      std::stoi(v) < 1 || std::stoi(v) > 19) {
    throw CLI::ValidationError("--compress takes auto, none or a zstd level from 1 to 19, not '" +
                               v + "'");
  }
  return std::stoi(v);
}

}  // namespace ferry::cli
