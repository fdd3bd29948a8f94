// Step 3 of verifying the ledger (docs/records.md): the records in NDJSON against SQLite's
// `events`, read from a private copy of the database so the data directory is never written.
// Internal to verifyLedger.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "buffer/ledger_entry.h"
#include "common/result.h"

namespace zastava {
class SqliteConnection;
}

namespace zastava::ledger {

// One row of `events`: what identifies it and its hashes; its line is read again only for the
// records that are part of the ledger (the tail NDJSON does not hold yet).
struct SqliteRow {
  std::int64_t rowid = 0;
  std::string eventId;
  std::int64_t timeNano = 0;
  std::string bytesHash;             // SHA-256 of the stored line
  std::string hash;                  // its hash in the chain (a version 6 line's own hash)
  std::optional<std::size_t> entry;  // the ledger entry of the same record
};

struct SqliteRows {
  std::vector<SqliteRow> rows;  // by rowid
  std::optional<std::string> lastHash;
  std::optional<std::int64_t> prunedBeforeNano;
};

// A copy of the database and its WAL in a new temporary directory, open; the directory is
// removed with it.
class SqliteCopy {
 public:
  // Copies <database> and <database>-wal. Errors: kIo naming the file that cannot be read or
  // copied, or the database SQLite cannot open.
  static Result<std::unique_ptr<SqliteCopy>> open(const std::filesystem::path& database);
  ~SqliteCopy();
  SqliteCopy(const SqliteCopy&) = delete;
  SqliteCopy& operator=(const SqliteCopy&) = delete;

  // Every row of `events` by rowid, and the meta rows the verifier uses. Errors: kIo naming
  // the original database.
  Result<SqliteRows> readRows();
  // The lines of the rows from `rowid` on, by rowid. Errors: kIo as readRows.
  Result<std::vector<std::pair<std::int64_t, std::string>>> linesFrom(std::int64_t rowid);

 private:
  SqliteCopy(std::filesystem::path original, std::filesystem::path directory);
  // `error` with the copy's path replaced by the original's.
  Error named(Error error) const;

  std::filesystem::path original_;
  std::filesystem::path directory_;
  std::unique_ptr<SqliteConnection> db_;
};

// Matches the NDJSON entries with SQLite's rows by eventId and reports edited, reordered,
// deleted and added records; appends SQLite's tail (the rows after the last NDJSON record) to
// `entries`; checks meta last_hash against the last entry. Errors: kIo from reading the tail.
Result<void> compareWithSqlite(std::vector<Entry>& entries, SqliteRows& sqlite, SqliteCopy& copy,
                               Findings& findings);

}  // namespace zastava::ledger
