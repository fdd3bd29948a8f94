#include "buffer/delivery_ledger.h"

#include <sqlite3.h>

#include "buffer/record.h"
#include "buffer/sqlite_connection.h"
#include "buffer/sqlite_store.h"
#include "common/rfc3339.h"

namespace zastava {
namespace {

// Undelivered rows older than ?1 after cursor ?2, never the newest row.
constexpr const char* kExpiredWhere =
    " FROM events WHERE time_nano < ?1 AND rowid > ?2 AND rowid < (SELECT max(rowid) FROM events)";

}  // namespace

DeliveryLedger::DeliveryLedger(const std::filesystem::path& path)
    : db_(std::make_unique<SqliteConnection>(path)) {}

DeliveryLedger::~DeliveryLedger() = default;

Result<std::unique_ptr<DeliveryLedger>> DeliveryLedger::open(
    const std::filesystem::path& database) {
  std::unique_ptr<DeliveryLedger> ledger(new DeliveryLedger(database));
  SqliteConnection& db = *ledger->db_;
  auto opened = db.open(SQLITE_OPEN_READWRITE);
  if (!opened) return opened.error();
  constexpr std::string_view kFailure = "cannot read the delivery cursor from";
  auto query = db.prepare("SELECT CAST(value AS INTEGER) FROM meta WHERE key = ?1", kFailure);
  if (!query) return query.error();
  query->bindText(1, kDeliveryCursorKey);
  const int rc = query->step();
  if (rc == SQLITE_ROW) {
    ledger->cursor_ = query->integer(0);
  } else if (rc != SQLITE_DONE) {
    return db.error(rc, kFailure);
  }
  return ledger;
}

Result<PendingBatch> DeliveryLedger::next(std::size_t maxRecords, std::size_t maxBytes) {
  constexpr std::string_view kFailure = "cannot read undelivered records from";
  auto query = db_->prepare(
      "SELECT rowid, record, event_id FROM events WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
      kFailure);
  if (!query) return query.error();
  query->bindInt(1, cursor_);
  query->bindInt(2, static_cast<std::int64_t>(maxRecords));
  PendingBatch batch;
  int rc = SQLITE_OK;
  while ((rc = query->step()) == SQLITE_ROW) {
    const std::size_t lineBytes = query->bytes(1) + 1;
    if (batch.records > 0 && batch.body.size() + lineBytes > maxBytes) {
      batch.full = true;
      return batch;
    }
    const std::int64_t rowid = query->integer(0);
    if (batch.records == 0) batch.firstRowid = rowid;
    batch.lastRowid = rowid;
    batch.rows.push_back(
        BatchRecord{rowid, std::string(query->text(2)), batch.body.size(), lineBytes - 1});
    batch.body += query->text(1);
    batch.body += '\n';
    ++batch.records;
  }
  if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
  batch.full = batch.records == maxRecords;
  return batch;
}

Result<UnixNanos> DeliveryLedger::observedAt(std::int64_t rowid) {
  constexpr std::string_view kFailure = "cannot read a record from";
  auto query = db_->prepare(
      "SELECT json_extract(record, '$.observedAt') FROM events WHERE rowid = ?1", kFailure);
  if (!query) return query.error();
  query->bindInt(1, rowid);
  const int rc = query->step();
  if (rc == SQLITE_DONE) return UnixNanos{0};
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return parseRfc3339Nanos(query->text(0)).value_or(0);
}

Result<void> DeliveryLedger::markDelivered(std::int64_t rowid) {
  cursor_ = rowid;
  constexpr std::string_view kFailure = "cannot store the delivery cursor in";
  auto update = db_->prepare(kSetMeta, kFailure);
  if (!update) return update.error();
  update->bindText(1, kDeliveryCursorKey);
  update->bindText(2, std::to_string(rowid));
  const int rc = update->step();
  if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
  return okResult();
}

Result<std::optional<std::int64_t>> DeliveryLedger::rowidOf(std::string_view eventId,
                                                            UnixNanos timeNano) {
  constexpr std::string_view kFailure = "cannot look a record up in";
  auto query =
      db_->prepare("SELECT rowid FROM events WHERE time_nano = ?1 AND event_id = ?2", kFailure);
  if (!query) return query.error();
  query->bindInt(1, timeNano);
  query->bindText(2, eventId);
  const int rc = query->step();
  if (rc == SQLITE_DONE) return std::optional<std::int64_t>();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return std::optional<std::int64_t>(query->integer(0));
}

Result<std::int64_t> DeliveryLedger::lastNotNewerThan(UnixNanos timeNano) {
  constexpr std::string_view kFailure = "cannot read undelivered records from";
  // Every record after the cursor and before the first newer one.
  auto query = db_->prepare(
      "SELECT max(rowid) FROM events WHERE rowid > ?1 AND rowid < coalesce("
      "(SELECT min(rowid) FROM events WHERE rowid > ?1 AND time_nano > ?2), "
      "9223372036854775807)",
      kFailure);
  if (!query) return query.error();
  query->bindInt(1, cursor_);
  query->bindInt(2, timeNano);
  const int rc = query->step();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return query->optionalInteger(0).value_or(cursor_);
}

Result<Backlog> DeliveryLedger::skipTo(std::int64_t rowid) {
  if (rowid <= cursor_) return Backlog{};
  constexpr std::string_view kFailure = "cannot count delivered records in";
  auto query = db_->prepare(
      "SELECT count(*), total(length(CAST(record AS BLOB)) + 1) FROM events "
      "WHERE rowid > ?1 AND rowid <= ?2",
      kFailure);
  if (!query) return query.error();
  query->bindInt(1, cursor_);
  query->bindInt(2, rowid);
  const int rc = query->step();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  const Backlog skipped{query->integer(0), query->integer(1)};
  auto stored = markDelivered(rowid);
  if (!stored) return stored.error();
  return skipped;
}

Result<Backlog> DeliveryLedger::backlog() {
  constexpr std::string_view kFailure = "cannot count undelivered records in";
  auto query = db_->prepare(
      "SELECT count(*), total(length(CAST(record AS BLOB)) + 1) FROM events WHERE rowid > ?1",
      kFailure);
  if (!query) return query.error();
  query->bindInt(1, cursor_);
  const int rc = query->step();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return Backlog{query->integer(0), query->integer(1)};
}

Result<ExpiredRecords> DeliveryLedger::expireOlderThan(UnixNanos cutoff) {
  return db_->inTransaction([&] { return deleteExpired(cutoff); });
}

Result<ExpiredRecords> DeliveryLedger::deleteExpired(UnixNanos cutoff) {
  const std::string count = std::string(
                                "SELECT count(*), total(length(CAST(record AS BLOB)) + 1), "
                                "min(time_nano), max(time_nano)") +
                            kExpiredWhere;
  auto counting = db_->prepare(count.c_str(), "cannot count expired records in");
  if (!counting) return counting.error();
  counting->bindInt(1, cutoff);
  counting->bindInt(2, cursor_);
  int rc = counting->step();
  if (rc != SQLITE_ROW) return db_->error(rc, "cannot count expired records in");
  const ExpiredRecords expired{counting->integer(0), counting->integer(1), counting->integer(2),
                               counting->integer(3)};
  if (expired.records == 0) return expired;
  const std::string remove = std::string("DELETE") + kExpiredWhere;
  auto deleting = db_->prepare(remove.c_str(), "cannot delete expired records from");
  if (!deleting) return deleting.error();
  deleting->bindInt(1, cutoff);
  deleting->bindInt(2, cursor_);
  rc = deleting->step();
  if (rc != SQLITE_DONE) return db_->error(rc, "cannot delete expired records from");
  return expired;
}

}  // namespace zastava
