#include "buffer/delivery_queue.h"

#include <sqlite3.h>

#include "buffer/record.h"
#include "buffer/sqlite_statement.h"
#include "buffer/sqlite_store.h"

namespace zastava {
namespace {

// Undelivered rows older than ?1 after cursor ?2, never the newest row.
constexpr const char* kExpiredWhere =
    " FROM events WHERE time_nano < ?1 AND rowid > ?2 AND rowid < (SELECT max(rowid) FROM events)";

std::string columnText(sqlite3_stmt* stmt, int column) {
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(stmt, column));
  return text != nullptr ? std::string(text, static_cast<std::size_t>(sqlite3_column_bytes(
                                                 stmt, column)))
                         : std::string();
}

}  // namespace

DeliveryQueue::DeliveryQueue(std::filesystem::path path) : path_(std::move(path)) {}

DeliveryQueue::~DeliveryQueue() {
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Error DeliveryQueue::sqliteError(int rc, std::string_view what) const {
  const ErrorCode code = (rc & 0xff) == SQLITE_FULL ? ErrorCode::kDiskFull : ErrorCode::kIo;
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error{code, std::string(what) + " " + path_.string() + ": " + detail};
}

Result<void> DeliveryQueue::exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, std::string("cannot run ") + sql + " on");
  return okResult();
}

Result<std::unique_ptr<DeliveryQueue>> DeliveryQueue::open(const std::filesystem::path& database) {
  std::unique_ptr<DeliveryQueue> queue(new DeliveryQueue(database));
  int rc = openLedgerConnection(database, SQLITE_OPEN_READWRITE, &queue->db_);
  if (rc != SQLITE_OK) return queue->sqliteError(rc, "cannot open");
  sqlite3_stmt* raw = nullptr;
  rc = sqlite3_prepare_v2(queue->db_, "SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", -1,
                          &raw, nullptr);
  if (rc != SQLITE_OK) return queue->sqliteError(rc, "cannot read the delivery cursor from");
  SqliteStatement query(raw);
  query.bindText(1, kDeliveryCursorKey);
  rc = query.step();
  if (rc == SQLITE_ROW) {
    queue->cursor_ = sqlite3_column_int64(raw, 0);
  } else if (rc != SQLITE_DONE) {
    return queue->sqliteError(rc, "cannot read the delivery cursor from");
  }
  return queue;
}

Result<PendingBatch> DeliveryQueue::next(std::size_t maxRecords, std::size_t maxBytes) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT rowid, record FROM events WHERE rowid > ?1 "
                              "ORDER BY rowid LIMIT ?2", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read undelivered records from");
  SqliteStatement query(raw);
  query.bindInt(1, cursor_);
  query.bindInt(2, static_cast<std::int64_t>(maxRecords));
  PendingBatch batch;
  while ((rc = query.step()) == SQLITE_ROW) {
    const std::size_t lineBytes = static_cast<std::size_t>(sqlite3_column_bytes(raw, 1)) + 1;
    if (batch.records > 0 && batch.body.size() + lineBytes > maxBytes) {
      batch.full = true;
      return batch;
    }
    const std::int64_t rowid = sqlite3_column_int64(raw, 0);
    if (batch.records == 0) batch.firstRowid = rowid;
    batch.lastRowid = rowid;
    batch.body += columnText(raw, 1);
    batch.body += '\n';
    ++batch.records;
  }
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot read undelivered records from");
  batch.full = batch.records == maxRecords;
  return batch;
}

Result<UnixNanos> DeliveryQueue::observedAt(std::int64_t rowid) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT json_extract(record, '$.observedAt') FROM events "
                              "WHERE rowid = ?1", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read a record from");
  SqliteStatement query(raw);
  query.bindInt(1, rowid);
  rc = query.step();
  if (rc == SQLITE_DONE) return UnixNanos{0};
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot read a record from");
  return parseRfc3339Nanos(columnText(raw, 0)).value_or(0);
}

Result<void> DeliveryQueue::markDelivered(std::int64_t rowid) {
  cursor_ = rowid;
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "INSERT INTO meta(key, value) VALUES(?1, ?2) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value", -1, &raw,
                              nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot store the delivery cursor in");
  SqliteStatement update(raw);
  update.bindText(1, kDeliveryCursorKey);
  update.bindText(2, std::to_string(rowid));
  rc = update.step();
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot store the delivery cursor in");
  return okResult();
}

Result<Backlog> DeliveryQueue::backlog() {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT count(*), total(length(CAST(record AS BLOB)) + 1) "
                              "FROM events WHERE rowid > ?1", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot count undelivered records in");
  SqliteStatement query(raw);
  query.bindInt(1, cursor_);
  rc = query.step();
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot count undelivered records in");
  return Backlog{sqlite3_column_int64(raw, 0), sqlite3_column_int64(raw, 1)};
}

Result<ExpiredRecords> DeliveryQueue::expireOlderThan(UnixNanos cutoff) {
  auto began = exec("BEGIN IMMEDIATE");
  if (!began) return began.error();
  Result<ExpiredRecords> expired = deleteExpired(cutoff);
  if (expired) {
    auto committed = exec("COMMIT");
    if (!committed) expired = committed.error();
  }
  if (!expired && sqlite3_get_autocommit(db_) == 0) (void)exec("ROLLBACK");
  return expired;
}

Result<ExpiredRecords> DeliveryQueue::deleteExpired(UnixNanos cutoff) {
  const std::string count = std::string("SELECT count(*), total(length(CAST(record AS BLOB)) + 1), "
                                        "min(time_nano), max(time_nano)") + kExpiredWhere;
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, count.c_str(), -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot count expired records in");
  SqliteStatement counting(raw);
  counting.bindInt(1, cutoff);
  counting.bindInt(2, cursor_);
  rc = counting.step();
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot count expired records in");
  const ExpiredRecords expired{sqlite3_column_int64(raw, 0), sqlite3_column_int64(raw, 1),
                               sqlite3_column_int64(raw, 2), sqlite3_column_int64(raw, 3)};
  if (expired.records == 0) return expired;
  const std::string remove = std::string("DELETE") + kExpiredWhere;
  rc = sqlite3_prepare_v2(db_, remove.c_str(), -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot delete expired records from");
  SqliteStatement deleting(raw);
  deleting.bindInt(1, cutoff);
  deleting.bindInt(2, cursor_);
  rc = deleting.step();
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot delete expired records from");
  return expired;
}

}  // namespace zastava
