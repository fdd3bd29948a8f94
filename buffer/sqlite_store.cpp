#include "buffer/sqlite_store.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>

#include "buffer/sqlite_connection.h"

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

constexpr std::string_view kDestroyKind = "container.destroy";
constexpr std::string_view kRemoved = "removed";

}  // namespace

SqliteStore::SqliteStore(const std::filesystem::path& path)
    : db_(std::make_unique<SqliteConnection>(path)) {}

SqliteStore::~SqliteStore() = default;

Result<std::unique_ptr<SqliteStore>> SqliteStore::open(const std::filesystem::path& path) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, kDbMode);
  if (fd < 0) {
    const int err = errno;
    return Error{(err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo,
                 "cannot create " + path.string() + ": " + std::strerror(err)};
  }
  const int chmodRc = ::fchmod(fd, kDbMode);
  const int chmodErr = errno;
  ::close(fd);  // nothing written through it: a failed close loses nothing
  if (chmodRc != 0) {
    return Error{ErrorCode::kIo, "cannot chmod " + path.string() + ": " + std::strerror(chmodErr)};
  }
  std::unique_ptr<SqliteStore> store(new SqliteStore(path));
  auto opened = store->db_->open(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  if (!opened) return opened.error();
  auto initialized = store->initialize();
  if (!initialized) return initialized.error();
  return store;
}

Result<int> SqliteStore::schemaVersion() {
  auto query = db_->prepare("PRAGMA user_version", "cannot read schema version of");
  if (!query) return query.error();
  return query->step() == SQLITE_ROW ? static_cast<int>(query->integer(0)) : 0;
}

Result<void> SqliteStore::createOrUpgradeSchema(int version) {
  std::string script = "BEGIN IMMEDIATE;";
  std::string_view failure = "cannot create the tables in";
  if (version == 1) {
    spdlog::info("buffer: moving {} to store schema {}; this reads every record once",
                 db_->path().string(), kStoreSchemaVersion);
    script += std::string("ALTER TABLE events RENAME TO events_v1;") + kEventsSchema +
              kMoveVersion1Events;
    failure = "cannot move the events to store schema 2 (a copy of them needs room on the disk) in";
  } else {
    script += std::string(kEventsSchema) + kOtherTablesSchema;
  }
  script += "PRAGMA user_version=" + std::to_string(kStoreSchemaVersion) + ";COMMIT;";
  auto done = db_->exec(script.c_str(), failure);
  if (!done) db_->rollback();
  return done;
}

Result<void> SqliteStore::initialize() {
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL"}) {
    auto done = db_->exec(pragma);
    if (!done) return done;
  }
  auto version = schemaVersion();
  if (!version) return version.error();
  if (*version > kStoreSchemaVersion) {
    return Error{ErrorCode::kInvalidArgument,
                 db_->path().string() + " has schema version " + std::to_string(*version) +
                     ", newer than this agent's " + std::to_string(kStoreSchemaVersion)};
  }
  if (*version < kStoreSchemaVersion) {
    auto upgraded = createOrUpgradeSchema(*version);
    if (!upgraded) return upgraded;
  }
  const std::pair<std::unique_ptr<SqliteStatement>*, const char*> statements[] = {
      {&insertEvent_, kInsertEvent}, {&upsertContainer_, kUpsertContainer}, {&setMeta_, kSetMeta}};
  for (const auto& [target, sql] : statements) {
    auto prepared = db_->prepare(sql, "cannot prepare statement on", /*persistent=*/true);
    if (!prepared) return prepared.error();
    *target = std::make_unique<SqliteStatement>(std::move(prepared).value());
  }
  auto hash = getMeta("last_hash");
  if (!hash) return hash.error();
  if (!hash->empty()) lastHash_ = *hash;
  auto cursor = loadCursor();
  if (!cursor) return cursor.error();
  cursor_ = *cursor;
  auto sealState = loadSealState();
  if (!sealState) return sealState;
  auto count = db_->prepare("SELECT count(*) FROM events", "cannot count events in");
  if (!count) return count.error();
  const int rc = count->step();
  if (rc != SQLITE_ROW) return db_->error(rc, "cannot count events in");
  eventCount_ = count->integer(0);
  return okResult();
}

Result<std::string> SqliteStore::getMeta(const char* key) {
  constexpr std::string_view kFailure = "cannot read meta from";
  auto query = db_->prepare("SELECT value FROM meta WHERE key = ?1", kFailure);
  if (!query) return query.error();
  query->bindText(1, key);
  const int rc = query->step();
  if (rc == SQLITE_DONE) return std::string();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return query->text(0);
}

// 0 when the key is not set. Error: kMalformed when its value is not an integer.
Result<std::int64_t> SqliteStore::getMetaInteger(const char* key) {
  auto text = getMeta(key);
  if (!text) return text.error();
  std::int64_t value = 0;
  if (text->empty()) return value;
  auto [end, ec] = std::from_chars(text->data(), text->data() + text->size(), value);
  if (ec != std::errc() || end != text->data() + text->size()) {
    return Error{ErrorCode::kMalformed,
                 "bad " + std::string(key) + " \"" + *text + "\" in " + db_->path().string()};
  }
  return value;
}

// From the ledger's last agent.seal or agent.seal-key row, so that removing the newest records
// shows, whatever meta says; meta only when retention deleted every such row.
Result<void> SqliteStore::loadSealState() {
  constexpr std::string_view kFailure = "cannot read the last seal from";
  auto last = db_->prepare(
      "SELECT rowid, kind, coalesce(record ->> '$.seal.keyId', record ->> '$.sealKey.keyId'), "
      "coalesce(record ->> '$.seal.epoch', record ->> '$.sealKey.epoch') FROM events "
      "WHERE kind IN ('agent.seal', 'agent.seal-key') ORDER BY rowid DESC LIMIT 1",
      kFailure);
  if (!last) return last.error();
  std::int64_t rowid = 0;
  int rc = last->step();
  if (rc == SQLITE_ROW) {
    rowid = last->integer(0);
    const bool seal = last->text(1) == kSealKind;
    sealState_ = LedgerSealState{last->text(2), last->integer(3) + (seal ? 1 : 0), seal, 0};
  } else if (rc == SQLITE_DONE) {
    auto keyId = getMeta("seal_key_id");
    if (!keyId) return keyId.error();
    auto nextEpoch = getMetaInteger("seal_next_epoch");
    if (!nextEpoch) return nextEpoch.error();
    auto metaRowid = getMetaInteger("seal_rowid");
    if (!metaRowid) return metaRowid.error();
    rowid = *metaRowid;
    sealState_ = LedgerSealState{*keyId, *nextEpoch, false, 0};
  } else {
    return db_->error(rc, kFailure);
  }
  if (sealState_.keyId.empty()) return okResult();
  auto since = db_->prepare("SELECT count(*) FROM events WHERE rowid > ?1", kFailure);
  if (!since) return since.error();
  since->bindInt(1, rowid);
  rc = since->step();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  sealState_.recordsSince = since->integer(0);
  return okResult();
}

Result<void> SqliteStore::saveSealState(std::int64_t rowid, const LedgerSealState& state) {
  auto saved = setMeta("seal_key_id", state.keyId);
  if (saved) saved = setMeta("seal_next_epoch", std::to_string(state.nextEpoch));
  if (saved) saved = setMeta("seal_rowid", std::to_string(rowid));
  return saved;
}

Result<void> SqliteStore::setMeta(const char* key, std::string_view value) {
  setMeta_->reset();
  setMeta_->bindText(1, key);
  setMeta_->bindText(2, value);
  const int rc = setMeta_->step();
  setMeta_->reset();
  if (rc != SQLITE_DONE) return db_->error(rc, "cannot write meta to");
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
      return Error{ErrorCode::kMalformed, "bad cursor_time_nano in " + db_->path().string()};
    }
  }
  auto eventId = getMeta("cursor_event_id");
  if (!eventId) return eventId.error();
  cursor.eventId = *eventId;
  return cursor;
}

Result<std::vector<std::string>> SqliteStore::lastEngineEventIds(std::size_t count) {
  constexpr std::string_view kFailure = "cannot read events from";
  auto query = db_->prepare(
      "SELECT event_id FROM events WHERE source IN ('stream', 'replay') "
      "ORDER BY rowid DESC LIMIT ?1",
      kFailure);
  if (!query) return query.error();
  query->bindInt(1, static_cast<std::int64_t>(count));
  std::vector<std::string> ids;
  int rc = SQLITE_OK;
  while ((rc = query->step()) == SQLITE_ROW) ids.push_back(query->text(0));
  if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
  std::reverse(ids.begin(), ids.end());
  return ids;
}

Result<std::vector<ContainerFacts>> SqliteStore::loadContainers() {
  constexpr std::string_view kFailure = "cannot read containers from";
  auto query = db_->prepare(
      "SELECT container_id, name, image, image_id, state, exit_code, pid, "
      "restart_count, started_at, finished_at FROM containers",
      kFailure);
  if (!query) return query.error();
  std::vector<ContainerFacts> containers;
  int rc = SQLITE_OK;
  while ((rc = query->step()) == SQLITE_ROW) {
    ContainerFacts facts;
    facts.id = query->text(0);
    facts.name = query->text(1);
    facts.image = query->text(2);
    facts.imageId = query->text(3);
    facts.state = query->optionalText(4);
    facts.exitCode = query->optionalInteger(5);
    facts.pid = query->optionalInteger(6);
    facts.restartCount = query->optionalInteger(7);
    facts.startedAt = query->optionalText(8);
    facts.finishedAt = query->optionalText(9);
    containers.push_back(std::move(facts));
  }
  if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
  return containers;
}

SqliteStore::ContainerUpdate SqliteStore::containerUpdateOf(const Record& record) {
  const ContainerFacts& facts = record.container;
  auto textOrNull = [](const std::string& text) {
    return text.empty() ? std::nullopt : std::optional<std::string_view>(text);
  };
  auto optionalText = [](const std::optional<std::string>& text) {
    return text ? std::optional<std::string_view>(*text) : std::nullopt;
  };
  ContainerUpdate update;
  update.id = facts.id;
  update.name = textOrNull(facts.name);
  update.image = textOrNull(facts.image);
  update.imageId = textOrNull(facts.imageId);
  update.state = record.kind == kDestroyKind ? std::optional<std::string_view>(kRemoved)
                                             : optionalText(facts.state);
  update.exitCode = facts.exitCode;
  update.pid = facts.pid;
  update.restartCount = facts.restartCount;
  update.startedAt = optionalText(facts.startedAt);
  update.finishedAt = optionalText(facts.finishedAt);
  update.updatedNano = record.time;
  update.lastEventId = record.eventId;
  return update;
}

// One upsert per container for the whole batch, the same row as one per record in commit
// order: kUpsertContainer applied after `update` keeps a COALESCEd column where the later record
// does not know it and takes the later record's value for the others, so the two fold into one
// with the same rule; and once a record leaves the row removed, kUpsertContainer changes it no
// more, so the records after it are left out. A row already removed before the batch is left
// as it is by the folded upsert too. Rows are written in container_id order, neighbours in the
// table's index.
Result<void> SqliteStore::updateContainers() {
  std::stable_sort(
      containerRecords_.begin(), containerRecords_.end(),
      [](const Record* a, const Record* b) { return a->container.id < b->container.id; });
  for (std::size_t i = 0; i < containerRecords_.size();) {
    ContainerUpdate update = containerUpdateOf(*containerRecords_[i]);
    std::size_t next = i + 1;
    for (; next < containerRecords_.size() && containerRecords_[next]->container.id == update.id;
         ++next) {
      if (update.state == kRemoved) continue;
      const ContainerUpdate later = containerUpdateOf(*containerRecords_[next]);
      update.name = later.name ? later.name : update.name;
      update.image = later.image ? later.image : update.image;
      update.imageId = later.imageId ? later.imageId : update.imageId;
      update.state = later.state ? later.state : update.state;
      update.restartCount = later.restartCount ? later.restartCount : update.restartCount;
      update.startedAt = later.startedAt ? later.startedAt : update.startedAt;
      update.exitCode = later.exitCode;
      update.pid = later.pid;
      update.finishedAt = later.finishedAt;
      update.updatedNano = later.updatedNano;
      update.lastEventId = later.lastEventId;
    }
    auto upserted = upsertContainer(update);
    if (!upserted) return upserted;
    i = next;
  }
  return okResult();
}

Result<void> SqliteStore::upsertContainer(const ContainerUpdate& update) {
  SqliteStatement& stmt = *upsertContainer_;
  stmt.reset();
  stmt.bindText(1, update.id);
  stmt.bindOptional(2, update.name);
  stmt.bindOptional(3, update.image);
  stmt.bindOptional(4, update.imageId);
  stmt.bindOptional(5, update.state);
  stmt.bindOptional(6, update.exitCode);
  stmt.bindOptional(7, update.pid);
  stmt.bindOptional(8, update.restartCount);
  stmt.bindOptional(9, update.startedAt);
  stmt.bindOptional(10, update.finishedAt);
  stmt.bindInt(11, update.updatedNano);
  stmt.bindText(12, update.lastEventId);
  const int rc = stmt.step();
  stmt.reset();
  if (rc != SQLITE_DONE) return db_->error(rc, "cannot update containers in");
  return okResult();
}

Result<void> SqliteStore::commitInTransaction(std::span<const Record> batch,
                                              std::vector<CommittedRecord>& fresh,
                                              std::string& hash, EventCursor& cursor,
                                              LedgerSealState& sealState,
                                              std::int64_t& duplicates) {
  SqliteStatement& insert = *insertEvent_;
  containerRecords_.clear();
  std::int64_t sealRowid = 0;
  for (const Record& record : batch) {
    ChainedLine chained = chainedLine(record, hash);
    insert.reset();
    // Each bound string outlives the reset() after the step.
    insert.bindBorrowedText(1, record.eventId);
    insert.bindBorrowedText(2, record.kind);
    if (record.container.id.empty()) {
      insert.bindNull(3);
    } else {
      insert.bindBorrowedText(3, record.container.id);
    }
    insert.bindInt(4, record.time);
    insert.bindBorrowedText(5, recordSourceName(record.source));
    insert.bindBorrowedText(6, chained.line);
    const int rc = insert.step();
    insert.reset();
    if (rc != SQLITE_DONE) return db_->error(rc, "cannot insert event into");
    if (db_->changes() == 0) {
      ++duplicates;
      continue;
    }
    if (record.seal || record.sealKey) {
      sealRowid = db_->lastInsertRowid();
      sealState.keyId = record.seal ? record.seal->keyId : record.sealKey->keyId;
      sealState.nextEpoch = record.seal ? record.seal->epoch + 1 : record.sealKey->epoch;
      sealState.lastWasSeal = record.seal.has_value();
      sealState.recordsSince = 0;
    } else {
      ++sealState.recordsSince;
    }
    // Evidence says what ran, not what the container's state is: the ledger ignores it.
    if (!record.container.id.empty() && !record.evidence) containerRecords_.push_back(&record);
    const bool fromEngine =
        record.source == RecordSource::kStream || record.source == RecordSource::kReplay;
    if (fromEngine && record.timeNano > cursor.timeNano) {
      cursor = {record.timeNano, record.eventId};
    } else if (!fromEngine && cursor.eventId.empty() && record.streamOpenedAt > cursor.timeNano) {
      cursor = {record.streamOpenedAt, ""};  // no engine event anchors the cursor yet
    }
    fresh.push_back(
        CommittedRecord{record.kind, record.source, record.timeNano, std::move(chained.line)});
    hash = std::move(chained.hash);  // the next record's prevHash
  }
  if (fresh.empty()) return okResult();
  auto updated = updateContainers();
  if (!updated) return updated;
  auto savedHash = setMeta("last_hash", hash);
  if (!savedHash) return savedHash;
  if (sealRowid != 0) {
    auto savedSeal = saveSealState(sealRowid, sealState);
    if (!savedSeal) return savedSeal;
  }
  if (cursor.timeNano == cursor_.timeNano && cursor.eventId == cursor_.eventId) return okResult();
  std::array<char, 24> timeNano{};
  const auto printed =
      std::to_chars(timeNano.data(), timeNano.data() + timeNano.size(), cursor.timeNano);
  auto savedCursor =
      setMeta("cursor_time_nano", std::string_view(timeNano.data(), printed.ptr - timeNano.data()));
  if (!savedCursor) return savedCursor;
  return setMeta("cursor_event_id", cursor.eventId);
}

Result<CommitOutcome> SqliteStore::commit(std::span<const Record> batch) {
  CommitOutcome outcome;
  if (batch.empty()) return outcome;
  outcome.records.reserve(batch.size());
  std::string hash = lastHash_;
  EventCursor cursor = cursor_;
  LedgerSealState sealState = sealState_;
  auto done = db_->inTransaction([&] {
    return commitInTransaction(batch, outcome.records, hash, cursor, sealState, outcome.duplicates);
  });
  if (!done) return done.error();
  lastHash_ = std::move(hash);
  cursor_ = cursor;
  sealState_ = std::move(sealState);
  eventCount_ += static_cast<std::int64_t>(outcome.records.size());
  return outcome;
}

Result<std::int64_t> SqliteStore::pruneOlderThan(UnixNanos cutoff, bool keepUndelivered) {
  // The newest row is never deleted: SQLite gives a new row max(rowid) + 1, so rowids only grow
  // and the delivery cursor (a rowid) never points past a record that is not delivered yet.
  const std::string deleteEvents =
      "DELETE FROM events WHERE time_nano < ?1 AND rowid < (SELECT max(rowid) FROM events) "
      "AND (?2 = 0 OR rowid <= (SELECT coalesce(max(CAST(value AS INTEGER)), 0) FROM meta "
      "WHERE key = '" +
      std::string(kDeliveryCursorKey) + "'))";
  constexpr const char* kDeleteContainers =
      "DELETE FROM containers WHERE state = 'removed' AND updated_nano < ?1";
  auto deleteAll = [&]() -> Result<std::int64_t> {
    constexpr std::string_view kFailure = "cannot prune";
    auto events = db_->prepare(deleteEvents.c_str(), kFailure);
    if (!events) return events.error();
    events->bindInt(1, cutoff);
    events->bindInt(2, keepUndelivered ? 1 : 0);
    int rc = events->step();
    if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
    const std::int64_t deleted = db_->changes();
    auto containers = db_->prepare(kDeleteContainers, kFailure);
    if (!containers) return containers.error();
    containers->bindInt(1, cutoff);
    rc = containers->step();
    if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
    auto prunedBefore = getMetaInteger("pruned_before_nano");
    if (!prunedBefore) return prunedBefore.error();
    if (cutoff > *prunedBefore) {
      auto saved = setMeta("pruned_before_nano", std::to_string(cutoff));
      if (!saved) return saved.error();
    }
    return deleted;
  };
  auto deleted = db_->inTransaction(deleteAll);
  if (deleted) eventCount_ -= *deleted;
  return deleted;
}

Result<std::vector<std::string>> SqliteStore::recordLines(std::int64_t afterRowid) {
  constexpr std::string_view kFailure = "cannot read events from";
  auto query = db_->prepare("SELECT record FROM events WHERE rowid > ?1 ORDER BY rowid", kFailure);
  if (!query) return query.error();
  query->bindInt(1, afterRowid);
  std::vector<std::string> lines;
  int rc = SQLITE_OK;
  while ((rc = query->step()) == SQLITE_ROW) lines.push_back(query->text(0));
  if (rc != SQLITE_DONE) return db_->error(rc, kFailure);
  return lines;
}

Result<std::optional<SqliteStore::StoredLine>> SqliteStore::findEvent(UnixNanos time,
                                                                      const std::string& eventId) {
  constexpr std::string_view kFailure = "cannot read events from";
  auto query = db_->prepare(
      "SELECT rowid, record FROM events WHERE time_nano = ?1 AND event_id = ?2", kFailure);
  if (!query) return query.error();
  query->bindInt(1, time);
  query->bindText(2, eventId);
  const int rc = query->step();
  if (rc == SQLITE_DONE) return std::optional<StoredLine>();
  if (rc != SQLITE_ROW) return db_->error(rc, kFailure);
  return std::optional<StoredLine>(StoredLine{query->integer(0), query->text(1)});
}

}  // namespace zastava
