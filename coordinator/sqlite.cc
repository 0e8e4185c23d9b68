#include "coordinator/sqlite.h"

#include <fcntl.h>
#include <sys/stat.h>

#include "common/error.h"
#include "common/fd.h"

namespace ferry::coord {

namespace {

[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  int code = sqlite3_extended_errcode(db);
  ErrorCategory c = (code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED
                        ? ErrorCategory::kRetryable
                        : (code & 0xff) == SQLITE_CONSTRAINT ? ErrorCategory::kInvalidInput
                                                             : ErrorCategory::kPermanent;
  throw Error(c, what + ": " + sqlite3_errmsg(db));
}

// Makes `file` (created if missing when `create`) mode 0600, never through a
// symlink. SQLite gives the -wal and -shm files it creates the mode of the
// database file, so a private database file is what keeps them private; ones
// left by an older ferry (0644) are made private here too. umask would do the
// same but is per process, and the coordinator has threads.
void makePrivate(const std::filesystem::path& file, bool create) {
  int flags = O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0);
  UniqueFd fd(retryEintr([&] { return ::open(file.c_str(), flags, 0600); }));
  if (!fd) {
    if (!create && errno == ENOENT) return;
    throw Error(ErrorCategory::kPermanent, "opening " + file.string(), errno);
  }
  if (::fchmod(fd.get(), 0600) != 0) {
    throw Error(ErrorCategory::kPermanent, "chmod 600 " + file.string(), errno);
  }
}

}  // namespace

Database::Database(const std::filesystem::path& file) {
  makePrivate(file, true);
  makePrivate(file.string() + "-wal", false);
  makePrivate(file.string() + "-shm", false);
  if (sqlite3_open_v2(file.c_str(), &db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
    sqlite3_close(db_);
    throw Error(ErrorCategory::kPermanent, "opening " + file.string() + ": " + msg);
  }
  sqlite3_busy_timeout(db_, 5000);
  exec("PRAGMA journal_mode=WAL");
  exec("PRAGMA synchronous=FULL");
  exec("PRAGMA foreign_keys=ON");
}

Database::~Database() { sqlite3_close(db_); }

void Database::exec(const std::string& sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &err) != SQLITE_OK) {
    std::string msg = err ? err : "unknown";
    sqlite3_free(err);
    throw Error(ErrorCategory::kPermanent, "sqlite: " + msg + " (in: " + sql.substr(0, 60) + ")");
  }
}

Statement Database::prepare(const std::string& sql) { return Statement(db_, sql); }

Statement::Statement(sqlite3* db, const std::string& sql) : db_(db), sql_(sql) {
  if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt_, nullptr) != SQLITE_OK) {
    fail(db_, "preparing " + sql_.substr(0, 60));
  }
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement::Statement(Statement&& o) noexcept : db_(o.db_), stmt_(o.stmt_), sql_(std::move(o.sql_)) {
  o.stmt_ = nullptr;
}

Statement& Statement::bind(int i, const std::string& v) {
  if (sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT) != SQLITE_OK) {
    fail(db_, "binding " + sql_.substr(0, 60));
  }
  return *this;
}

Statement& Statement::bind(int i, int64_t v) {
  if (sqlite3_bind_int64(stmt_, i, v) != SQLITE_OK) fail(db_, "binding " + sql_.substr(0, 60));
  return *this;
}

Statement& Statement::bindNull(int i) {
  if (sqlite3_bind_null(stmt_, i) != SQLITE_OK) fail(db_, "binding " + sql_.substr(0, 60));
  return *this;
}

bool Statement::step() {
  int r = sqlite3_step(stmt_);
  if (r == SQLITE_ROW) return true;
  if (r == SQLITE_DONE) return false;
  fail(db_, sql_.substr(0, 60));
}

void Statement::run() {
  while (step()) {
  }
}

std::string Statement::text(int col) const {
  const unsigned char* t = sqlite3_column_text(stmt_, col);
  return t ? std::string(reinterpret_cast<const char*>(t),
                         static_cast<size_t>(sqlite3_column_bytes(stmt_, col)))
           : std::string();
}

int64_t Statement::integer(int col) const { return sqlite3_column_int64(stmt_, col); }
bool Statement::isNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }

}  // namespace ferry::coord
