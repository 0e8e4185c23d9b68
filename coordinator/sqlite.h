// A thin RAII layer over SQLite's C API: a database handle and prepared
// statements with bound parameters. Errors become ferry::Error naming the
// statement. Not thread-safe: one Database per thread.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>

namespace ferry::coord {

class Statement;

class Database {
 public:
  // Opens (creating) the file, in WAL mode with full fsync: a committed
  // step survives a crash of the process or the machine. The file and its
  // -wal and -shm are mode 0600 (made so if they exist with another); a
  // symlink at `file` is refused.
  explicit Database(const std::filesystem::path& file);
  ~Database();
  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;

  void exec(const std::string& sql);
  Statement prepare(const std::string& sql);
  int64_t lastInsertId() const { return sqlite3_last_insert_rowid(db_); }
  int changes() const { return sqlite3_changes(db_); }
  sqlite3* handle() const { return db_; }

 private:
  sqlite3* db_ = nullptr;
};

class Statement {
 public:
  Statement(sqlite3* db, const std::string& sql);
  ~Statement();
  Statement(Statement&& o) noexcept;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Binds parameter i (1-based). Returns *this for chaining.
  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, int64_t v);
  Statement& bindNull(int i);
  // Steps once: true while a row is available.
  bool step();
  // Runs to completion (for statements without rows).
  void run();
  std::string text(int col) const;
  int64_t integer(int col) const;
  bool isNull(int col) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  std::string sql_;
};

}  // namespace ferry::coord
