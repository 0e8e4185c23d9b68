#include "tools/ferry/options.h"

#include <charconv>

namespace ferry::cli {
namespace {

bool wholeNumber(const std::string& v, uint64_t& n) {
  if (v.empty() || v.size() > 19) return false;
  auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
  return ec == std::errc() && end == v.data() + v.size();
}

}  // namespace

CLI::Validator countIn(uint64_t min, uint64_t max) {
  std::string range = std::to_string(min) + " to " + std::to_string(max);
  return CLI::Validator(
      [min, max, range](std::string& v) -> std::string {
        uint64_t n = 0;
        // from_chars takes no sign, space or prefix; digits only.
        if (!wholeNumber(v, n) || n < min || n > max)
          return "takes a whole number from " + range + ", not '" + v + "'";
        return {};
      },
      "N", "count");
}

std::chrono::milliseconds parseDuration(const std::string& v, std::chrono::milliseconds bare_unit) {
  size_t digits = 0;
  while (digits < v.size() && v[digits] >= '0' && v[digits] <= '9') ++digits;
  std::string unit = v.substr(digits);
  uint64_t n = 0;
  using std::chrono::milliseconds;
  milliseconds scale = unit.empty()   ? bare_unit
                       : unit == "ms" ? milliseconds(1)
                       : unit == "s"  ? milliseconds(1000)
                       : unit == "m"  ? milliseconds(60000)
                       : unit == "h"  ? milliseconds(3600000)
                                      : milliseconds(0);
  // Bounded so that n * scale cannot overflow: a year is the longest wait.
  constexpr uint64_t kMaxMs = 366ull * 24 * 3600 * 1000;
  if (!wholeNumber(v.substr(0, digits), n) || scale.count() == 0 || n == 0 ||
      n > kMaxMs / static_cast<uint64_t>(scale.count())) {
    throw CLI::ValidationError("a duration is a positive whole number with ms, s, m or h "
                               "(e.g. 500ms, 90s, 2m), not '" + v + "'");
  }
  return milliseconds(static_cast<int64_t>(n) * scale.count());
}

CLI::Option* addDuration(CLI::App* app, const std::string& name, std::chrono::milliseconds& into,
                         std::chrono::milliseconds bare_unit, const std::string& help) {
  return app
      ->add_option_function<std::string>(
          name,
          [&into, bare_unit, name](const std::string& v) {
            try {
              into = parseDuration(v, bare_unit);
            } catch (const CLI::ValidationError& e) {
              throw CLI::ValidationError(name, e.what());
            }
          },
          help)
      ->type_name("DURATION");
}

int parsePrecopy(const std::string& v) {
  if (v == "auto") return -1;
  if (v == "off" || v == "0") return 0;
  uint64_t n = 0;
  if (!wholeNumber(v, n) || n < 1 || n > 20) {
    throw CLI::ValidationError("--precopy takes auto, off or a number of rounds from 1 to 20, not '" +
                               v + "'");
  }
  return static_cast<int>(n);
}

}  // namespace ferry::cli
