#include "common/cli_options.h"

#include <algorithm>
#include <charconv>
#include <iostream>
#include <sstream>

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

CLI::Validator numberIn(double min, double max) {
  std::ostringstream range;
  range << min << " to " << max;
  return CLI::Validator(
      [min, max, range = range.str()](std::string& v) -> std::string {
        // Digits with at most one point inside: from_chars alone would take
        // "nan", "inf" and exponents.
        size_t point = v.find('.');
        bool digits = !v.empty() && v.front() != '.' && v.back() != '.' &&
                      v.find_first_not_of("0123456789.") == std::string::npos &&
                      (point == std::string::npos || v.find('.', point + 1) == std::string::npos);
        double n = 0;
        if (digits) {
          auto [end, ec] = std::from_chars(v.data(), v.data() + v.size(), n);
          digits = ec == std::errc() && end == v.data() + v.size();
        }
        if (!digits || n < min || n > max)
          return "takes a number from " + range + ", not '" + v + "'";
        return {};
      },
      "", "number");
}

CLI::Validator checkedBy(std::function<void(const std::string&)> check) {
  return CLI::Validator(
      [check = std::move(check)](std::string& v) -> std::string {
        try {
          check(v);
        } catch (const std::exception& e) {
          return e.what();
        }
        return {};
      },
      "", "checked");
}

std::chrono::milliseconds parseDuration(const std::string& v, std::chrono::milliseconds bare_unit,
                                        bool zero_ok) {
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
  if (!wholeNumber(v.substr(0, digits), n) || scale.count() == 0 || (n == 0 && !zero_ok) ||
      n > kMaxMs / static_cast<uint64_t>(scale.count())) {
    throw CLI::ValidationError(std::string("a duration is a ") + (zero_ok ? "" : "positive ") +
                               "whole number with ms, s, m or h (e.g. 500ms, 90s, 2m), not '" + v +
                               "'");
  }
  return milliseconds(static_cast<int64_t>(n) * scale.count());
}

CLI::Option* addDuration(CLI::App* app, const std::string& name, std::chrono::milliseconds& into,
                         std::chrono::milliseconds bare_unit, const std::string& help,
                         bool zero_ok) {
  return app
      ->add_option_function<std::string>(
          name,
          [&into, bare_unit, shown = name.substr(name.rfind(',') + 1),
           zero_ok](const std::string& v) {
            try {
              into = parseDuration(v, bare_unit, zero_ok);
            } catch (const CLI::ValidationError& e) {
              throw CLI::ValidationError(shown, e.what());
            }
          },
          help)
      ->type_name("DURATION");
}

void addVersionFlag(CLI::App& app) { app.set_version_flag("--version", FERRY_VERSION); }

void addConfigFile(CLI::App& app) {
  app.set_config("--config", "",
                 "read options from FILE: one `long-option-name = value` a line, as TOML (name = "
                 "\"hostA\", postcopy = true, listen = [\"A\", \"B\"]); the command line wins "
                 "over the file",
                 /*config_required=*/false)
      ->type_name("FILE");
  app.allow_config_extras(false);
}

std::string daemonFooter(const std::string& bare_units) {
  return "\nDURATIONS take ms, s, m or h (500ms, 90s, 2m). " + bare_units +
         "\n\nEXIT STATUS\n  0 stopped by SIGTERM or SIGINT; 1 failure; 2 bad usage.";
}

std::optional<ParseExit> parseArgs(CLI::App& app, std::vector<std::string> args) {
  std::reverse(args.begin(), args.end());  // CLI11 consumes the vector from its back
  try {
    app.parse(args);
    return std::nullopt;
  } catch (const CLI::CallForHelp&) {
    return ParseExit{0, app.help(), ""};  // the chosen subcommand's, when there is one
  } catch (const CLI::CallForAllHelp&) {
    return ParseExit{0, app.help("", CLI::AppFormatMode::All), ""};
  } catch (const CLI::CallForVersion& e) {
    return ParseExit{0, std::string(e.what()) + "\n", ""};
  } catch (const CLI::ConfigError& e) {
    // CLI11 says "INI was not able to parse KEY" of a key that names no
    // option: say which file and what the keys are.
    std::string what = e.what();
    const std::string extra = "was not able to parse ";
    std::string file = app.get_config_ptr() ? app.get_config_ptr()->as<std::string>() : "";
    if (auto at = what.find(extra); at != std::string::npos) {
      what = "'" + what.substr(at + extra.size()) + "' is not an option of " + app.get_name() +
             " (a key is a long option's name without its dashes)";
    }
    return ParseExit{2, "",
                     app.get_name() + ": config file " + file + ": " + what + "\n(see " +
                         app.get_name() + " --help)\n"};
  } catch (const CLI::ParseError& e) {
    // A first word that names no command says so.
    bool has_commands = !app.get_subcommands([](CLI::App*) { return true; }).empty();
    if (has_commands && app.get_subcommands().empty() && !app.remaining().empty() &&
        app.remaining().front().rfind("-", 0) != 0) {
      return ParseExit{2, "",
                       app.get_name() + ": unknown command '" + app.remaining().front() +
                           "'\n(see " + app.get_name() + " --help)\n"};
    }
    // Point at the help of the deepest command reached.
    std::string where = app.get_name();
    for (const CLI::App* sub = &app; !sub->get_subcommands().empty();) {
      sub = sub->get_subcommands().front();
      where += " " + sub->get_name();
    }
    return ParseExit{2, "", app.get_name() + ": " + e.what() + "\n(see " + where + " --help)\n"};
  }
}

int printParseExit(const ParseExit& e) {
  std::cout << e.out;
  std::cerr << e.err;
  return e.code;
}

}  // namespace ferry::cli
