// The ledger database's connections (the writer's and the delivery worker's) and their prepared
// statements: SQLite's C API behind owning types, with errors that name the file.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include "common/result.h"

namespace zastava {

// A prepared statement that owns its handle, with the binds and column reads the buffer uses.
// Reset it before reuse. A bind SQLite refuses is a broken invariant (ZASTAVA_BUG): it happens
// for an index the statement does not have, or a value over SQLite's 1 GB limit, and stepping
// on would store NULL in its place. Used by the thread that owns its connection only.
class SqliteStatement {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~SqliteStatement() { sqlite3_finalize(stmt_); }
  SqliteStatement(SqliteStatement&& other) noexcept : stmt_(std::exchange(other.stmt_, nullptr)) {}
  SqliteStatement& operator=(SqliteStatement&& other) noexcept {
    std::swap(stmt_, other.stmt_);
    return *this;
  }

  void reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  void bindText(int index, std::string_view text) {
    bound(index, sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT,
                                     SQLITE_UTF8));
  }
  // Binds `text` without copying it: it must stay valid and unchanged until reset().
  void bindBorrowedText(int index, std::string_view text) {
    bound(index,
          sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_STATIC, SQLITE_UTF8));
  }
  void bindOptional(int index, std::optional<std::string_view> text) {
    if (text) {
      bindText(index, *text);
    } else {
      bindNull(index);
    }
  }
  void bindOptional(int index, const std::optional<std::int64_t>& value) {
    if (value) {
      bindInt(index, *value);
    } else {
      bindNull(index);
    }
  }
  void bindNull(int index) { bound(index, sqlite3_bind_null(stmt_, index)); }
  void bindInt(int index, std::int64_t value) {
    bound(index, sqlite3_bind_int64(stmt_, index, value));
  }
  // SQLITE_ROW when a row is ready, SQLITE_DONE at the end, an error code otherwise.
  int step() { return sqlite3_step(stmt_); }

  // The current row's columns, after step() returned SQLITE_ROW. NULL reads as "" or 0, or as
  // nullopt from the optional forms.
  std::string text(int column) { return optionalText(column).value_or(std::string()); }
  std::optional<std::string> optionalText(int column) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt_, column));
    if (text == nullptr) return std::nullopt;
    return std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column)));
  }
  std::int64_t integer(int column) { return sqlite3_column_int64(stmt_, column); }
  std::optional<std::int64_t> optionalInteger(int column) {
    if (sqlite3_column_type(stmt_, column) == SQLITE_NULL) return std::nullopt;
    return integer(column);
  }
  // The length of a text column in bytes.
  std::size_t bytes(int column) {
    return static_cast<std::size_t>(sqlite3_column_bytes(stmt_, column));
  }

 private:
  void bound(int index, int rc) const;

  sqlite3_stmt* stmt_;
};

// One connection to the ledger database. Its errors name the file and SQLite's message. Used by
// the thread that owns it only.
class SqliteConnection {
 public:
  explicit SqliteConnection(std::filesystem::path path) : path_(std::move(path)) {}
  ~SqliteConnection() { sqlite3_close_v2(db_); }
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  // Opens the file with `flags` (SQLITE_OPEN_*) and the settings both ledger connections share:
  // a busy timeout (they use the same file) and a 512 KiB page cache (SQLite's default is
  // 2 MiB). Writes go to the ends of the events table and its index, and delivery reads it in
  // order: a small cache holds what they touch, with the same ingest throughput. Errors: as
  // error(), "cannot open".
  Result<void> open(int flags);

  // "<what> <path>: <SQLite's message>"; kDiskFull for SQLITE_FULL, kIo otherwise.
  Error error(int rc, std::string_view what) const;

  // Runs `sql`, one or more statements. Errors: as error(), `what` or else "cannot run <the
  // first statement> on".
  Result<void> exec(const char* sql, std::string_view what = {});

  // Prepares one statement; `persistent` for one kept for the connection's life. Errors: as
  // error(), `what`.
  Result<SqliteStatement> prepare(const char* sql, std::string_view what, bool persistent = false);

  // Runs `body` (returning a Result) between BEGIN IMMEDIATE and COMMIT. When either or `body`
  // fails, rolls back and returns that error: nothing of the transaction is kept.
  template <typename Body>
  auto inTransaction(Body&& body) -> decltype(body()) {
    auto began = exec("BEGIN IMMEDIATE");
    if (!began) return began.error();
    auto result = body();
    if (result) {
      auto committed = exec("COMMIT");
      if (!committed) result = committed.error();
    }
    if (!result) rollback();
    return result;
  }
  // Rolls back the open transaction, if there is one. A rollback SQLite refuses is logged as an
  // error naming the file; the next BEGIN then fails and says so.
  void rollback();

  // Rows the last INSERT, UPDATE or DELETE changed.
  std::int64_t changes() const { return sqlite3_changes64(db_); }
  std::int64_t lastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  sqlite3* db_ = nullptr;
};

}  // namespace zastava
