#include "common/log.h"

#include <errno.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <syslog.h>
#include <systemd/sd-journal.h>

#include <spdlog/sinks/base_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <cstring>
#include <mutex>

namespace ferry {

namespace {

thread_local std::vector<std::pair<std::string, std::string>> t_fields;

int priorityOf(spdlog::level::level_enum l) {
  switch (l) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return LOG_DEBUG;
    case spdlog::level::info:
      return LOG_INFO;
    case spdlog::level::warn:
      return LOG_WARNING;
    case spdlog::level::err:
      return LOG_ERR;
    case spdlog::level::critical:
      return LOG_CRIT;
    default:
      return LOG_INFO;
  }
}

// "[web] ..." -> "web": how lines about a container begin.
std::string containerOf(std::string_view m) {
  if (m.size() < 3 || m[0] != '[') return "";
  size_t end = m.find(']');
  if (end == std::string_view::npos || end == 1 || end > 254) return "";
  return std::string(m.substr(1, end - 1));
}

// "migration #42..." anywhere at a word's start -> "42".
std::string migrationOf(std::string_view m) {
  const std::string_view key = "migration #";
  size_t at = m.find(key);
  if (at == std::string_view::npos) return "";
  size_t b = at + key.size(), e = b;
  while (e < m.size() && e - b < 20 && m[e] >= '0' && m[e] <= '9') ++e;
  return std::string(m.substr(b, e - b));
}

class JournalSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit JournalSink(std::string component) : component_(std::move(component)) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    std::string_view text(msg.payload.data(), msg.payload.size());
    std::vector<std::string> fields;
    fields.push_back("MESSAGE=" + std::string(text));
    fields.push_back("PRIORITY=" + std::to_string(priorityOf(msg.level)));
    fields.push_back(std::string("SYSLOG_IDENTIFIER=") + program_invocation_short_name);
    fields.push_back("FERRY_COMPONENT=" + component_);
    // A scope's fields win over what the text says.
    auto set = [&](const std::string& name, const std::string& value) {
      if (value.empty()) return;
      for (const auto& f : fields) {
        if (f.compare(0, name.size() + 1, name + "=") == 0) return;
      }
      fields.push_back(name + "=" + value);
    };
    for (auto it = t_fields.rbegin(); it != t_fields.rend(); ++it) set(it->first, it->second);
    set("CONTAINER_NAME", containerOf(text));
    set("FERRY_MIGRATION_ID", migrationOf(text));
    std::vector<iovec> iov;
    iov.reserve(fields.size());
    for (auto& f : fields) iov.push_back({f.data(), f.size()});
    // A journal that is gone loses the line, as a closed stderr would; the
    // daemon goes on (the journal's own socket is a datagram socket).
    sd_journal_sendv(iov.data(), static_cast<int>(iov.size()));
  }
  void flush_() override {}

 private:
  std::string component_;
};

}  // namespace

bool stderrIsJournal() {
  const char* e = std::getenv("JOURNAL_STREAM");
  if (!e) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(e, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (::fstat(2, &st) != 0) return false;
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

std::shared_ptr<spdlog::sinks::sink> journalSink(const std::string& component) {
  return std::make_shared<JournalSink>(component);
}

LogFields::LogFields(Fields fields)
    : added_(fields.size()) {
  for (auto& f : fields) t_fields.push_back(std::move(f));
}

LogFields::~LogFields() { t_fields.resize(t_fields.size() - added_); }

spdlog::logger& componentLog(const char* name) {
  // spdlog's registry is thread-safe, but get-then-create is not atomic.
  static std::mutex mu;
  static const bool journal = stderrIsJournal();
  std::lock_guard lock(mu);
  std::shared_ptr<spdlog::logger> l = spdlog::get(name);
  if (!l) {
    if (journal) {
      l = std::make_shared<spdlog::logger>(name, journalSink(name));
      spdlog::initialize_logger(l);  // registered, with the default level and pattern
    } else {
      l = spdlog::stderr_color_mt(name);
    }
  }
  return *l;  // the registry keeps it alive
}

spdlog::logger& engineLog() {
  static spdlog::logger& l = componentLog("engine");
  return l;
}

}  // namespace ferry
