#include "buffer/sqlite_connection.h"

#include <spdlog/spdlog.h>

#include "common/invariant.h"

namespace zastava {

void SqliteStatement::bound(int index, int rc) const {
  if (rc == SQLITE_OK) return;
  ZASTAVA_BUG("SQLite refused parameter " + std::to_string(index) + " of \"" + sqlite3_sql(stmt_) +
              "\": " + sqlite3_errstr(rc));
}

Result<void> SqliteConnection::open(int flags) {
  constexpr int kBusyTimeoutMs = 5000;
  int rc = sqlite3_open_v2(path_.c_str(), &db_, flags, nullptr);
  if (rc == SQLITE_OK) rc = sqlite3_busy_timeout(db_, kBusyTimeoutMs);
  if (rc == SQLITE_OK) rc = sqlite3_exec(db_, "PRAGMA cache_size=-512", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return error(rc, "cannot open");
  return okResult();
}

Error SqliteConnection::error(int rc, std::string_view what) const {
  const ErrorCode code = (rc & 0xff) == SQLITE_FULL ? ErrorCode::kDiskFull : ErrorCode::kIo;
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error{code, std::string(what) + " " + path_.string() + ": " + detail};
}

Result<void> SqliteConnection::exec(const char* sql, std::string_view what) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return okResult();
  if (!what.empty()) return error(rc, what);
  const std::string_view statement(sql);
  return error(rc, "cannot run " + std::string(statement.substr(0, statement.find(';'))) + " on");
}

Result<SqliteStatement> SqliteConnection::prepare(const char* sql, std::string_view what,
                                                  bool persistent) {
  sqlite3_stmt* stmt = nullptr;
  const int rc =
      sqlite3_prepare_v3(db_, sql, -1, persistent ? SQLITE_PREPARE_PERSISTENT : 0, &stmt, nullptr);
  if (rc != SQLITE_OK) return error(rc, what);
  return SqliteStatement(stmt);
}

void SqliteConnection::rollback() {
  if (sqlite3_get_autocommit(db_) != 0) return;  // SQLite rolled it back itself
  if (auto rolledBack = exec("ROLLBACK"); !rolledBack) {
    spdlog::error("buffer: {}", rolledBack.error().message);
  }
}

}  // namespace zastava
