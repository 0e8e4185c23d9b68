// Reading Prometheus's text format (what /metrics serves) in tests: the
// samples, each a name, its labels and its value.
#pragma once

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

namespace ferry::test {

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

// Every sample line of `text` (comments and blank lines skipped). Label
// values are taken as written, without unescaping (ferry's have no quotes).
inline std::vector<Sample> parseSamples(const std::string& text) {
  std::vector<Sample> out;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    Sample s;
    size_t brace = line.find('{');
    size_t space = line.find(' ');
    size_t rest = space;
    if (brace != std::string::npos && brace < space) {
      s.name = line.substr(0, brace);
      size_t close = line.find('}', brace);
      std::string labels = line.substr(brace + 1, close - brace - 1);
      size_t pos = 0;
      while (pos < labels.size()) {
        size_t eq = labels.find('=', pos);
        size_t q2 = labels.find('"', eq + 2);
        s.labels[labels.substr(pos, eq - pos)] = labels.substr(eq + 2, q2 - eq - 2);
        pos = q2 + 1;
        if (pos < labels.size() && labels[pos] == ',') ++pos;
      }
      rest = line.find(' ', close);
    } else {
      s.name = line.substr(0, space);
    }
    s.value = std::stod(line.substr(rest + 1));
    out.push_back(std::move(s));
  }
  return out;
}

// The value of the sample `name` whose labels include `labels`; nullopt when
// there is none.
inline std::optional<double> sampleValue(const std::vector<Sample>& samples,
                                         const std::string& name,
                                         const std::map<std::string, std::string>& labels = {}) {
  for (const auto& s : samples) {
    if (s.name != name) continue;
    bool all = true;
    for (const auto& [k, v] : labels) {
      auto it = s.labels.find(k);
      all = all && it != s.labels.end() && it->second == v;
    }
    if (all) return s.value;
  }
  return std::nullopt;
}

// The metric families a scrape names: each sample's name, less a
// histogram's _bucket/_sum/_count suffix where the family itself is listed
// in a # TYPE line.
inline std::set<std::string> metricNames(const std::string& text) {
  std::set<std::string> names;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("# TYPE ", 0) == 0) names.insert(line.substr(7, line.find(' ', 7) - 7));
  }
  for (const auto& s : parseSamples(text)) names.insert(s.name);
  return names;
}

// The ferry_* metric names a Grafana dashboard's queries (every panel's
// targets' `expr`) use. Throws (std::exception) when the file is missing or
// is not such a dashboard.
inline std::set<std::string> dashboardMetricNames(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read " + path);
  nlohmann::json dashboard = nlohmann::json::parse(in);
  std::set<std::string> used;
  const std::regex name("ferry_[a-z0-9_]+");
  for (const auto& panel : dashboard.at("panels")) {
    for (const auto& target : panel.at("targets")) {
      std::string expr = target.at("expr").get<std::string>();
      for (std::sregex_iterator it(expr.begin(), expr.end(), name), end; it != end; ++it) {
        used.insert(it->str());
      }
    }
  }
  return used;
}

}  // namespace ferry::test
