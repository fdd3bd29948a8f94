// The SQLite side of the buffer and its source of truth: every committed record (deduplicated by
// eventId, chained by hash), each container's last known state, and the event cursor, all moved
// forward together in one transaction per batch. WAL mode, synchronous=FULL, so a committed
// batch survives kill -9 and power loss. Not thread-safe: the Recorder's writer thread owns it
// (open() and reads before the writer starts are fine from the main thread).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "buffer/record.h"
#include "common/result.h"

namespace zastava {

class SqliteConnection;
class SqliteStatement;

inline constexpr int kStoreSchemaVersion = 2;
// The meta key of the delivery cursor: the rowid of the last record the backend accepted
// (DeliveryLedger moves it, the retention reads it).
inline constexpr std::string_view kDeliveryCursorKey = "delivery_rowid";
// Sets meta key ?1 to value ?2 (SqliteStore's and DeliveryLedger's).
inline constexpr const char* kSetMeta =
    "INSERT INTO meta(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";

// A record as committed: its NDJSON line (which ends with its prevHash; its own hash is the
// line's SHA-256) and what the Recorder's metrics need.
struct CommittedRecord {
  std::string kind;
  RecordSource source = RecordSource::kStream;
  std::int64_t timeNano = 0;
  std::string line;
};

// What one commit did: the new records in commit order, and how many of the batch were skipped
// as duplicates (the Recorder counts them).
struct CommitOutcome {
  std::vector<CommittedRecord> records;
  std::int64_t duplicates = 0;
};

// Where sealing stands in the ledger (docs/records.md, "Seals"): the last agent.seal or
// agent.seal-key record committed (read from it at open; kept in the meta table with it too,
// for when retention has deleted every such record).
struct LedgerSealState {
  std::string keyId;              // empty: the ledger has no sealing key yet
  std::int64_t nextEpoch = 0;     // the epoch of the next seal
  bool lastWasSeal = false;       // the last one is an agent.seal, not an agent.seal-key
  std::int64_t recordsSince = 0;  // records committed after it
};

class SqliteStore {
 public:
  // Opens or creates the database (mode 0600) and its schema; loads the last hash, cursor and
  // row count. Errors: kIo/kDiskFull naming the path and SQLite's message; kInvalidArgument
  // when the file holds a newer schema than this build knows.
  static Result<std::unique_ptr<SqliteStore>> open(const std::filesystem::path& path);
  ~SqliteStore();
  SqliteStore(const SqliteStore&) = delete;
  SqliteStore& operator=(const SqliteStore&) = delete;

  // Commits `batch` in one transaction, in order: a record whose eventId is already stored (or
  // earlier in the batch) is skipped and counted as a duplicate; every other one is chained
  // after the last hash, inserted as its NDJSON line, updates the containers table, and
  // (stream/replay) advances the cursor. Returns the new records, in commit order, and the
  // number of duplicates. Errors:
  // kDiskFull for SQLITE_FULL, kIo otherwise; then nothing is written and lastHash() is
  // unchanged.
  Result<CommitOutcome> commit(std::span<const Record> batch);

  // Deletes events whose time_nano is before `cutoff` (with `keepUndelivered`, only those the
  // backend has accepted: see delivery_ledger.h), never the newest one, and containers marked
  // "removed" not updated since; records the cutoff in meta `pruned_before_nano` (what
  // `zastava-agent verify` explains a record missing from SQLite by). Returns the number of
  // events deleted. Errors: kIo/kDiskFull.
  Result<std::int64_t> pruneOlderThan(UnixNanos cutoff, bool keepUndelivered);

  // The stored cursor: the committed stream/replay record with the largest timeNano; until
  // there is one, the latest streamOpenedAt of a snapshot/reconcile record, with no eventId.
  Result<EventCursor> loadCursor();

  // The eventIds of the last `count` engine events (stream/replay records) committed, oldest
  // first. Errors: kIo.
  Result<std::vector<std::string>> lastEngineEventIds(std::size_t count);

  // Every container in the containers table (destroyed ones included, state "removed"), as the
  // records last left them. Errors: kIo.
  Result<std::vector<ContainerFacts>> loadContainers();

  // Each stored record's NDJSON line, in commit order, with rowid > `afterRowid`.
  Result<std::vector<std::string>> recordLines(std::int64_t afterRowid = 0);

  // The rowid and NDJSON line of the record with `eventId` and time `time`; nullopt when not
  // stored.
  struct StoredLine {
    std::int64_t rowid = 0;
    std::string line;
  };
  Result<std::optional<StoredLine>> findEvent(UnixNanos time, const std::string& eventId);

  // The hash of the last committed record (kGenesisHash when none).
  const std::string& lastHash() const { return lastHash_; }
  // Rows in the events table, kept in memory.
  std::int64_t eventCount() const { return eventCount_; }
  const EventCursor& cursor() const { return cursor_; }
  // Where sealing stands, as of the last commit.
  const LedgerSealState& sealState() const { return sealState_; }

 private:
  explicit SqliteStore(const std::filesystem::path& path);
  Result<void> initialize();
  Result<int> schemaVersion();
  // Creates the tables (version 0: a new file) or moves an older schema's rows to this one.
  Result<void> createOrUpgradeSchema(int version);
  Result<void> commitInTransaction(std::span<const Record> batch,
                                   std::vector<CommittedRecord>& fresh, std::string& hash,
                                   EventCursor& cursor, LedgerSealState& sealState,
                                   std::int64_t& duplicates);
  // What a batch's committed records do to one container's row: their upserts folded into one,
  // in commit order. The strings point into the batch.
  struct ContainerUpdate {
    std::string_view id;
    std::optional<std::string_view> name, image, imageId, state, startedAt, finishedAt;
    std::optional<std::int64_t> exitCode, pid, restartCount;
    UnixNanos updatedNano = 0;
    std::string_view lastEventId;
  };
  static ContainerUpdate containerUpdateOf(const Record& record);
  Result<void> updateContainers();
  Result<void> upsertContainer(const ContainerUpdate& update);
  Result<void> setMeta(const char* key, std::string_view value);
  Result<std::string> getMeta(const char* key);
  Result<std::int64_t> getMetaInteger(const char* key);
  Result<void> loadSealState();
  Result<void> saveSealState(std::int64_t rowid, const LedgerSealState& state);

  std::unique_ptr<SqliteConnection> db_;
  std::unique_ptr<SqliteStatement> insertEvent_;
  std::unique_ptr<SqliteStatement> upsertContainer_;
  std::unique_ptr<SqliteStatement> setMeta_;
  // Reused by every commit: the batch's records that update the containers table.
  std::vector<const Record*> containerRecords_;
  std::string lastHash_{kGenesisHash};
  EventCursor cursor_;
  LedgerSealState sealState_;
  std::int64_t eventCount_ = 0;
};

}  // namespace zastava
