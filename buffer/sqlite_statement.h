// The ledger database's connections (the writer's and the delivery worker's) and their
// prepared statements.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

namespace zastava {

// Opens a connection with the settings both connections share: a busy timeout (they use the
// same file) and a 512 KiB page cache (SQLite's default is 2 MiB). Writes go to the ends of the
// events table and its index, and delivery reads it in order: a small cache holds what they
// touch, with the same ingest throughput. Returns an SQLite result code; `*db` is set even on
// failure, for sqlite3_errmsg.
inline int openLedgerConnection(const std::filesystem::path& path, int flags, sqlite3** db) {
  constexpr int kBusyTimeoutMs = 5000;
  const int rc = sqlite3_open_v2(path.c_str(), db, flags, nullptr);
  if (rc != SQLITE_OK) return rc;
  sqlite3_busy_timeout(*db, kBusyTimeoutMs);
  return sqlite3_exec(*db, "PRAGMA cache_size=-512", nullptr, nullptr, nullptr);
}

// A prepared statement that owns its handle, with the binds the buffer uses. Reset it before
// reuse. Used by the thread that owns its connection only.
class SqliteStatement {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~SqliteStatement() { sqlite3_finalize(stmt_); }
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void bindText(int index, std::string_view text) {
    sqlite3_bind_text(stmt_, index, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
  }
  void bindTextOrNull(int index, std::string_view text) {
    if (text.empty()) {
      sqlite3_bind_null(stmt_, index);
    } else {
      bindText(index, text);
    }
  }
  void bindOptional(int index, const std::optional<std::string>& text) {
    if (text) {
      bindText(index, *text);
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }
  void bindOptional(int index, const std::optional<std::int64_t>& value) {
    if (value) {
      sqlite3_bind_int64(stmt_, index, *value);
    } else {
      sqlite3_bind_null(stmt_, index);
    }
  }
  void bindInt(int index, std::int64_t value) { sqlite3_bind_int64(stmt_, index, value); }
  int step() { return sqlite3_step(stmt_); }
  sqlite3_stmt* get() { return stmt_; }

 private:
  sqlite3_stmt* stmt_;
};

}  // namespace zastava
