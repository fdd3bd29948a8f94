#include "buffer/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "buffer/sqlite_statement.h"
#include "health/metrics.h"

namespace zastava {
namespace {

constexpr mode_t kDbMode = 0600;

// Each eventId is stored at most once. Every id except a reconcile record's is derived from
// the record's time (docs/records.md), so for them (time_nano, event_id) is unique exactly when
// event_id is: that index grows at its end, where a unique index on the random id alone would
// touch a random page for every insert. Reconciled transitions and gaps, rare, get their own.
constexpr const char* kEventsSchema = R"sql(
CREATE TABLE events(
  event_id TEXT NOT NULL,
  kind TEXT NOT NULL,
  container_id TEXT,
  time_nano INTEGER NOT NULL,
  source TEXT NOT NULL,
  record TEXT NOT NULL);
CREATE UNIQUE INDEX events_time_id ON events(time_nano, event_id);
CREATE UNIQUE INDEX events_reconcile_id ON events(event_id) WHERE source = 'reconcile';
)sql";

constexpr const char* kOtherTablesSchema = R"sql(
CREATE TABLE IF NOT EXISTS containers(
  container_id TEXT PRIMARY KEY,
  name TEXT,
  image TEXT,
  image_id TEXT,
  state TEXT,
  exit_code INTEGER,
  pid INTEGER,
  restart_count INTEGER,
  started_at TEXT,
  finished_at TEXT,
  updated_nano INTEGER,
  last_event_id TEXT);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
)sql";

// Version 1 had event_id as the primary key. Rowids are kept: the delivery cursor is one.
constexpr const char* kMoveVersion1Events = R"sql(
INSERT INTO events(rowid, event_id, kind, container_id, time_nano, source, record)
  SELECT rowid, event_id, kind, container_id, coalesce(time_nano, 0), source, record
  FROM events_v1 ORDER BY rowid;
DROP TABLE events_v1;
)sql";

constexpr const char* kInsertEvent =
    "INSERT INTO events(event_id, kind, container_id, time_nano, source, record) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT DO NOTHING";

// A removed container's row is final: ids are never reused, so a record committed after its
// destroy (an event that arrived late, a replay) describes an earlier moment.
constexpr const char* kUpsertContainer =
    "INSERT INTO containers(container_id, name, image, image_id, state, exit_code, pid, "
    "restart_count, started_at, finished_at, updated_nano, last_event_id) "
    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) "
    "ON CONFLICT(container_id) DO UPDATE SET "
    "name = COALESCE(excluded.name, name), image = COALESCE(excluded.image, image), "
    "image_id = COALESCE(excluded.image_id, image_id), state = COALESCE(excluded.state, state), "
    "exit_code = excluded.exit_code, pid = excluded.pid, "
    "restart_count = COALESCE(excluded.restart_count, restart_count), "
    "started_at = COALESCE(excluded.started_at, started_at), "
    "finished_at = excluded.finished_at, "
    "updated_nano = excluded.updated_nano, last_event_id = excluded.last_event_id "
    "WHERE state IS NOT 'removed'";

constexpr const char* kSetMeta =
    "INSERT INTO meta(key, value) VALUES(?1, ?2) "
    "ON CONFLICT(key) DO UPDATE SET value = excluded.value";

constexpr std::string_view kDestroyKind = "container.destroy";

}  // namespace

SqliteStore::SqliteStore(std::filesystem::path path, Metrics& metrics)
    : path_(std::move(path)), metrics_(metrics) {}

SqliteStore::~SqliteStore() {
  insertEvent_.reset();
  upsertContainer_.reset();
  setMeta_.reset();
  if (db_ != nullptr) sqlite3_close_v2(db_);
}

Error SqliteStore::sqliteError(int rc, std::string_view what) const {
  const ErrorCode code = (rc & 0xff) == SQLITE_FULL ? ErrorCode::kDiskFull : ErrorCode::kIo;
  const char* detail = db_ != nullptr ? sqlite3_errmsg(db_) : sqlite3_errstr(rc);
  return Error{code, std::string(what) + " " + path_.string() + ": " + detail};
}

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path,
                                                       Metrics& metrics) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kDbMode);
  if (fd < 0) {
    const int err = errno;
    return Error{(err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo,
                 "cannot create " + path.string() + ": " + std::strerror(err)};
  }
  const int chmodRc = ::fchmod(fd, kDbMode);
  const int chmodErr = errno;
  ::close(fd);
  if (chmodRc != 0) {
    return Error{ErrorCode::kIo, "cannot chmod " + path.string() + ": " + std::strerror(chmodErr)};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path, metrics));
  const int rc =
      openLedgerConnection(path, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &store->db_);
  if (rc != SQLITE_OK) return store->sqliteError(rc, "cannot open");
  auto initialized = store->initialize();
  if (!initialized) return initialized.error();
  return store;
}

Result<void> SqliteStore::exec(const char* sql) {
  const int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) {
    const std::string_view statement(sql);
    return sqliteError(
        rc, "cannot run " + std::string(statement.substr(0, statement.find(';'))) + " on");
  }
  return okResult();
}

Result<int> SqliteStore::schemaVersion() {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "PRAGMA user_version", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read schema version of");
  SqliteStatement query(raw);
  rc = query.step();
  return rc == SQLITE_ROW ? sqlite3_column_int(raw, 0) : 0;
}

Result<void> SqliteStore::createOrUpgradeSchema(int version) {
  std::string script = "BEGIN IMMEDIATE;";
  if (version == 1) {
    spdlog::info("buffer: moving {} to store schema {}; this reads every record once",
                 path_.string(), kStoreSchemaVersion);
    script += std::string("ALTER TABLE events RENAME TO events_v1;") + kEventsSchema +
              kMoveVersion1Events;
  } else {
    script += std::string(kEventsSchema) + kOtherTablesSchema;
  }
  script += "PRAGMA user_version=" + std::to_string(kStoreSchemaVersion) + ";COMMIT;";
  const int rc = sqlite3_exec(db_, script.c_str(), nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return okResult();
  Error error = sqliteError(rc, version == 1 ? "cannot move the events to store schema 2 (a "
                                               "copy of them needs room on the disk) in"
                                             : "cannot create the tables in");
  (void)exec("ROLLBACK");
  return error;
}

Result<void> SqliteStore::initialize() {
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    auto done = exec(pragma);
    if (!done) return done;
  }
  auto version = schemaVersion();
  if (!version) return version.error();
  if (*version > kStoreSchemaVersion) {
    return Error{ErrorCode::kInvalidArgument,
                 path_.string() + " has schema version " + std::to_string(*version) +
                     ", newer than this agent's " + std::to_string(kStoreSchemaVersion)};
  }
  if (*version < kStoreSchemaVersion) {
    auto upgraded = createOrUpgradeSchema(*version);
    if (!upgraded) return upgraded;
  }
  sqlite3_stmt* raw = nullptr;
  int rc = SQLITE_OK;
  const std::pair<std::unique_ptr<SqliteStatement>*, const char*> statements[] = {
      {&insertEvent_, kInsertEvent}, {&upsertContainer_, kUpsertContainer}, {&setMeta_, kSetMeta}};
  for (const auto& [target, sql] : statements) {
    rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) return sqliteError(rc, "cannot prepare statement on");
    *target = std::make_unique<SqliteStatement>(raw);
  }
  auto hash = getMeta("last_hash");
  if (!hash) return hash.error();
  if (!hash->empty()) lastHash_ = *hash;
  auto cursor = loadCursor();
  if (!cursor) return cursor.error();
  cursor_ = *cursor;
  rc = sqlite3_prepare_v2(db_, "SELECT count(*) FROM events", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot count events in");
  SqliteStatement count(raw);
  rc = count.step();
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot count events in");
  eventCount_ = sqlite3_column_int64(raw, 0);
  return okResult();
}

Result<std::string> SqliteStore::getMeta(const char* key) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT value FROM meta WHERE key = ?1", -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read meta from");
  SqliteStatement query(raw);
  query.bindText(1, key);
  rc = query.step();
  if (rc == SQLITE_DONE) return std::string();
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot read meta from");
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
  return std::string(text != nullptr ? text : "");
}

Result<void> SqliteStore::setMeta(const char* key, const std::string& value) {
  setMeta_->reset();
  setMeta_->bindText(1, key);
  setMeta_->bindText(2, value);
  const int rc = setMeta_->step();
  setMeta_->reset();
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot write meta to");
  return okResult();
}

Result<EventCursor> SqliteStore::loadCursor() {
  auto text = getMeta("cursor_time_nano");
  if (!text) return text.error();
  EventCursor cursor;
  const std::string& value = *text;
  if (!value.empty()) {
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), cursor.timeNano);
    if (ec != std::errc() || end != value.data() + value.size()) {
      return Error{ErrorCode::kMalformed, "bad cursor_time_nano in " + path_.string()};
    }
  }
  auto eventId = getMeta("cursor_event_id");
  if (!eventId) return eventId.error();
  cursor.eventId = *eventId;
  return cursor;
}

Result<std::vector<std::string>> SqliteStore::lastEngineEventIds(std::size_t count) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_,
                              "SELECT event_id FROM events WHERE source IN ('stream', 'replay') "
                              "ORDER BY rowid DESC LIMIT ?1",
                              -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read events from");
  SqliteStatement query(raw);
  query.bindInt(1, static_cast<std::int64_t>(count));
  std::vector<std::string> ids;
  while ((rc = query.step()) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    ids.emplace_back(text != nullptr ? text : "");
  }
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot read events from");
  std::reverse(ids.begin(), ids.end());
  return ids;
}

Result<std::vector<ContainerFacts>> SqliteStore::loadContainers() {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_,
                              "SELECT container_id, name, image, image_id, state, exit_code, pid, "
                              "restart_count, started_at, finished_at FROM containers",
                              -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read containers from");
  SqliteStatement query(raw);
  auto text = [raw](int column) -> std::optional<std::string> {
    const auto* value = reinterpret_cast<const char*>(sqlite3_column_text(raw, column));
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
  auto integer = [raw](int column) -> std::optional<std::int64_t> {
    if (sqlite3_column_type(raw, column) == SQLITE_NULL) return std::nullopt;
    return sqlite3_column_int64(raw, column);
  };
  std::vector<ContainerFacts> containers;
  while ((rc = query.step()) == SQLITE_ROW) {
    ContainerFacts facts;
    facts.id = text(0).value_or("");
    facts.name = text(1).value_or("");
    facts.image = text(2).value_or("");
    facts.imageId = text(3).value_or("");
    facts.state = text(4);
    facts.exitCode = integer(5);
    facts.pid = integer(6);
    facts.restartCount = integer(7);
    facts.startedAt = text(8);
    facts.finishedAt = text(9);
    containers.push_back(std::move(facts));
  }
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot read containers from");
  return containers;
}

Result<void> SqliteStore::upsertContainer(const Record& record) {
  const ContainerFacts& facts = record.container;
  SqliteStatement& stmt = *upsertContainer_;
  stmt.reset();
  stmt.bindText(1, facts.id);
  stmt.bindTextOrNull(2, facts.name);
  stmt.bindTextOrNull(3, facts.image);
  stmt.bindTextOrNull(4, facts.imageId);
  if (record.kind == kDestroyKind) {
    stmt.bindText(5, "removed");
  } else {
    stmt.bindOptional(5, facts.state);
  }
  stmt.bindOptional(6, facts.exitCode);
  stmt.bindOptional(7, facts.pid);
  stmt.bindOptional(8, facts.restartCount);
  stmt.bindOptional(9, facts.startedAt);
  stmt.bindOptional(10, facts.finishedAt);
  stmt.bindInt(11, record.time);
  stmt.bindText(12, record.eventId);
  const int rc = stmt.step();
  stmt.reset();
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot update containers in");
  return okResult();
}

Result<void> SqliteStore::commitInTransaction(std::span<const Record> batch,
                                              std::vector<CommittedRecord>& fresh,
                                              std::string& hash, EventCursor& cursor,
                                              std::int64_t& duplicates) {
  SqliteStatement& insert = *insertEvent_;
  for (const Record& record : batch) {
    ChainedLine chained = chainedLine(record, hash);
    if (chained.line.empty()) return Error{ErrorCode::kInternal, "cannot serialize a record"};
    insert.reset();
    insert.bindText(1, record.eventId);
    insert.bindText(2, record.kind);
    insert.bindTextOrNull(3, record.container.id);
    insert.bindInt(4, record.time);
    insert.bindText(5, recordSourceName(record.source));
    insert.bindText(6, chained.line);
    const int rc = insert.step();
    insert.reset();
    if (rc != SQLITE_DONE) return sqliteError(rc, "cannot insert event into");
    if (sqlite3_changes(db_) == 0) {
      ++duplicates;
      continue;
    }
    // Evidence says what ran, not what the container's state is: the ledger ignores it.
    if (!record.container.id.empty() && !record.evidence) {
      auto updated = upsertContainer(record);
      if (!updated) return updated;
    }
    const bool fromEngine =
        record.source == RecordSource::kStream || record.source == RecordSource::kReplay;
    if (fromEngine && record.timeNano > cursor.timeNano) {
      cursor = {record.timeNano, record.eventId};
    } else if (!fromEngine && cursor.eventId.empty() && record.streamOpenedAt > cursor.timeNano) {
      cursor = {record.streamOpenedAt, ""};  // no engine event anchors the cursor yet
    }
    fresh.push_back(CommittedRecord{record.eventId, record.kind, record.source, record.timeNano,
                                    hash, chained.hash, std::move(chained.line)});
    hash = std::move(chained.hash);
  }
  if (fresh.empty()) return okResult();
  auto savedHash = setMeta("last_hash", hash);
  if (!savedHash) return savedHash;
  auto savedCursor = setMeta("cursor_time_nano", std::to_string(cursor.timeNano));
  if (!savedCursor) return savedCursor;
  return setMeta("cursor_event_id", cursor.eventId);
}

Result<std::vector<CommittedRecord>> SqliteStore::commit(std::span<const Record> batch) {
  std::vector<CommittedRecord> fresh;
  if (batch.empty()) return fresh;
  fresh.reserve(batch.size());
  std::string hash = lastHash_;
  EventCursor cursor = cursor_;
  std::int64_t duplicates = 0;
  auto began = exec("BEGIN IMMEDIATE");
  if (!began) return began.error();
  auto done = commitInTransaction(batch, fresh, hash, cursor, duplicates);
  if (done) done = exec("COMMIT");
  if (!done) {
    if (sqlite3_get_autocommit(db_) == 0) (void)exec("ROLLBACK");
    return done.error();
  }
  lastHash_ = std::move(hash);
  cursor_ = cursor;
  eventCount_ += static_cast<std::int64_t>(fresh.size());
  for (std::int64_t i = 0; i < duplicates; ++i) metrics_.countDuplicate();
  return fresh;
}

Result<std::int64_t> SqliteStore::pruneOlderThan(UnixNanos cutoff, bool keepUndelivered) {
  auto began = exec("BEGIN IMMEDIATE");
  if (!began) return began.error();
  std::int64_t deleted = 0;
  // The newest row is never deleted: SQLite gives a new row max(rowid) + 1, so rowids only grow
  // and the delivery cursor (a rowid) never points past a record that is not delivered yet.
  const std::string deletes[] = {
      "DELETE FROM events WHERE time_nano < ?1 AND rowid < (SELECT max(rowid) FROM events) "
      "AND (?2 = 0 OR rowid <= (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta "
      "WHERE key = '" +
          std::string(kDeliveryCursorKey) + "'))",
      "DELETE FROM containers WHERE state = 'removed' AND updated_nano < ?1"};
  for (std::size_t i = 0; i < std::size(deletes); ++i) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v2(db_, deletes[i].c_str(), -1, &raw, nullptr);
    if (rc == SQLITE_OK) {
      SqliteStatement stmt(raw);
      stmt.bindInt(1, cutoff);
      if (i == 0) stmt.bindInt(2, keepUndelivered ? 1 : 0);
      rc = stmt.step();
    }
    if (rc != SQLITE_DONE) {
      Error error = sqliteError(rc, "cannot prune");
      (void)exec("ROLLBACK");
      return error;
    }
    if (i == 0) deleted = sqlite3_changes(db_);
  }
  auto committed = exec("COMMIT");
  if (!committed) {
    if (sqlite3_get_autocommit(db_) == 0) (void)exec("ROLLBACK");
    return committed.error();
  }
  eventCount_ -= deleted;
  return deleted;
}

Result<std::vector<std::string>> SqliteStore::recordLines(std::int64_t afterRowid) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_, "SELECT record FROM events WHERE rowid > ?1 ORDER BY rowid", -1,
                              &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read events from");
  SqliteStatement query(raw);
  query.bindInt(1, afterRowid);
  std::vector<std::string> lines;
  while ((rc = query.step()) == SQLITE_ROW) {
    const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 0));
    lines.emplace_back(text != nullptr ? text : "");
  }
  if (rc != SQLITE_DONE) return sqliteError(rc, "cannot read events from");
  return lines;
}

Result<std::optional<SqliteStore::StoredLine>> SqliteStore::findEvent(UnixNanos time,
                                                                      const std::string& eventId) {
  sqlite3_stmt* raw = nullptr;
  int rc = sqlite3_prepare_v2(db_,
                              "SELECT rowid, record FROM events WHERE time_nano = ?1 AND "
                              "event_id = ?2",
                              -1, &raw, nullptr);
  if (rc != SQLITE_OK) return sqliteError(rc, "cannot read events from");
  SqliteStatement query(raw);
  query.bindInt(1, time);
  query.bindText(2, eventId);
  rc = query.step();
  if (rc == SQLITE_DONE) return std::optional<StoredLine>();
  if (rc != SQLITE_ROW) return sqliteError(rc, "cannot read events from");
  const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(raw, 1));
  return std::optional<StoredLine>(
      StoredLine{sqlite3_column_int64(raw, 0), std::string(text != nullptr ? text : "")});
}

}  // namespace zastava
