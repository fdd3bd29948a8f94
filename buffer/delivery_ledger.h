// The ledger seen from backend delivery (delivery/), and all the SQL delivery needs: the
// records after the delivery cursor, in commit order, read through a connection of its own to
// the ledger's SQLite database (WAL lets it read while the Recorder's writer commits); the
// cursor; the retention of undelivered records. The cursor is a rowid stored in the meta table;
// rowids only grow (SqliteStore never prunes the newest row), so "after the cursor" is exactly
// "not yet accepted". Not thread-safe: the Dispatcher's thread owns it.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "common/result.h"

namespace zastava {

class SqliteConnection;

// One record of a PendingBatch.
struct BatchRecord {
  std::int64_t rowid = 0;
  std::string eventId;
  std::size_t offset = 0;  // where its line starts in the batch's body
  std::size_t length = 0;  // the line's bytes, without its '\n'
};

// Consecutive records after the cursor, ready to send.
struct PendingBatch {
  std::int64_t firstRowid = 0;
  std::int64_t lastRowid = 0;
  std::size_t records = 0;
  std::string body;               // the records' lines, each ending in '\n'
  std::vector<BatchRecord> rows;  // one per record, in order
  // The batch stopped at a limit, so more records wait behind it.
  bool full = false;

  // The line of rows[i], without its '\n'.
  std::string_view line(std::size_t i) const {
    return std::string_view(body).substr(rows[i].offset, rows[i].length);
  }
};

// Records after the cursor and their bytes (lines plus newlines).
struct Backlog {
  std::int64_t records = 0;
  std::int64_t bytes = 0;
};

// Undelivered records the retention deleted.
struct ExpiredRecords {
  std::int64_t records = 0;
  std::int64_t bytes = 0;
  UnixNanos oldest = 0;  // the smallest and largest `time` among them
  UnixNanos newest = 0;
};

class DeliveryLedger {
 public:
  // Opens the database the Recorder created and loads the cursor (0 when delivery never ran:
  // everything stored is still to be sent). Errors: kIo naming the path and SQLite's message.
  static Result<std::unique_ptr<DeliveryLedger>> open(const std::filesystem::path& database);
  ~DeliveryLedger();
  DeliveryLedger(const DeliveryLedger&) = delete;
  DeliveryLedger& operator=(const DeliveryLedger&) = delete;

  // The rowid of the last record accepted (0: none).
  std::int64_t cursor() const { return cursor_; }

  // Up to `maxRecords` records after the cursor whose lines total at most `maxBytes` (at least
  // one record, however long). Empty when nothing waits. Errors: kIo.
  Result<PendingBatch> next(std::size_t maxRecords, std::size_t maxBytes);

  // The observedAt of the record at `rowid` (0 if it has none or is gone). Errors: kIo.
  Result<UnixNanos> observedAt(std::int64_t rowid);

  // Moves the cursor to `rowid` and stores it. The in-memory cursor moves even when storing
  // fails (kIo/kDiskFull returned): this process does not send the records again, a restart
  // would (at least once).
  Result<void> markDelivered(std::int64_t rowid);

  // The rowid of the record `eventId` whose time is `timeNano`; std::nullopt when the ledger
  // does not hold it. Errors: kIo.
  Result<std::optional<std::int64_t>> rowidOf(std::string_view eventId, UnixNanos timeNano);

  // The last rowid of the longest run of records right after the cursor whose time is at most
  // `timeNano`; the cursor itself when the first one is newer (or none waits). Errors: kIo.
  Result<std::int64_t> lastNotNewerThan(UnixNanos timeNano);

  // Moves the cursor forward to `rowid` (records another way says were delivered) and says
  // how many records and bytes it passed; nothing when `rowid` is not after the cursor. Errors
  // as markDelivered's.
  Result<Backlog> skipTo(std::int64_t rowid);

  // Counts the records after the cursor. Reads all of them: once, at start. Errors: kIo.
  Result<Backlog> backlog();

  // Deletes the records after the cursor whose time is before `cutoff` (never the newest row,
  // see sqlite_store.h) and says what they were. Errors: kIo/kDiskFull, nothing deleted.
  Result<ExpiredRecords> expireOlderThan(UnixNanos cutoff);

 private:
  explicit DeliveryLedger(const std::filesystem::path& path);
  Result<ExpiredRecords> deleteExpired(UnixNanos cutoff);  // inside a transaction

  std::unique_ptr<SqliteConnection> db_;
  std::int64_t cursor_ = 0;
};

}  // namespace zastava
