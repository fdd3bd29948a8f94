#include "buffer/sqlite_store.h"

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/resource.h>

#include <csignal>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "buffer/sqlite_connection.h"
#include "buffer_test_util.h"
#include "common/invariant.h"
#include "common/sha256.h"

namespace zastava {
namespace {

// A committed record's place in the chain, read from its line as a verifier reads it.
std::string prevHashOf(const CommittedRecord& record) {
  return nlohmann::json::parse(record.line)["prevHash"];
}
std::string hashOf(const CommittedRecord& record) { return sha256Hex(record.line); }
std::string eventIdOf(const CommittedRecord& record) {
  return nlohmann::json::parse(record.line)["eventId"];
}

using testing::engineRecord;
using testing::kStart;

struct Fixture {
  testing::TempDir tmp;
  std::filesystem::path path = tmp.path() / "zastava-agent.db";

  std::unique_ptr<SqliteStore> open() {
    auto store = SqliteStore::open(path);
    REQUIRE_MESSAGE(store.ok(), (store.ok() ? "" : store.error().message));
    return std::move(*store);
  }

  // Runs `sql` on a second connection; returns the first column of each row, joined by ",".
  std::string query(const std::string& sql) {
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open(path.c_str(), &db) == SQLITE_OK);
    std::string out;
    char* error = nullptr;
    const int rc = sqlite3_exec(
        db, sql.c_str(),
        [](void* sink, int columns, char** values, char**) {
          auto& text = *static_cast<std::string*>(sink);
          for (int i = 0; i < columns; ++i) {
            if (!text.empty()) text += ",";
            text += values[i] != nullptr ? values[i] : "NULL";
          }
          return 0;
        },
        &out, &error);
    const std::string message = error != nullptr ? error : "";
    sqlite3_free(error);
    sqlite3_close(db);
    REQUIRE_MESSAGE(rc == SQLITE_OK, message);
    return out;
  }
};

TEST_CASE("commit chains hashes, skips and counts duplicates") {
  Fixture f;
  auto store = f.open();
  CHECK(testing::fileMode(f.path) == 0600);
  CHECK(f.query("PRAGMA journal_mode") == "wal");
  CHECK(store->lastHash() == kGenesisHash);

  const Record a = engineRecord("c1", "create", kStart);
  const Record b = engineRecord("c1", "start", kStart + 1);
  const Record c = engineRecord("c1", "die", kStart + 2);
  auto first = store->commit(std::vector<Record>{a, b});
  REQUIRE(first.ok());
  REQUIRE(first->records.size() == 2);
  CHECK(prevHashOf(first->records[0]) == kGenesisHash);
  CHECK(prevHashOf(first->records[1]) == hashOf(first->records[0]));

  auto second = store->commit(std::vector<Record>{b, c, c});
  REQUIRE(second.ok());
  REQUIRE(second->records.size() == 1);
  CHECK(eventIdOf(second->records[0]) == c.eventId);
  CHECK(prevHashOf(second->records[0]) == hashOf(first->records[1]));
  CHECK(store->lastHash() == hashOf(second->records[0]));
  CHECK(store->eventCount() == 3);
  CHECK(first->duplicates == 0);
  CHECK(second->duplicates == 2);

  auto lines = store->recordLines();
  REQUIRE(lines.ok());
  CHECK(*lines == std::vector<std::string>{first->records[0].line, first->records[1].line,
                                           second->records[0].line});
  CHECK(first->records[1].line == chainedLine(b, hashOf(first->records[0])).line);
}

TEST_CASE("the chain, cursor and count continue after a reopen") {
  Fixture f;
  std::string lastHash;
  {
    auto store = f.open();
    Record reconcile = engineRecord("c1", "die", kStart + 50);
    reconcile.source = RecordSource::kReconcile;
    auto done =
        store->commit(std::vector<Record>{engineRecord("c1", "start", kStart + 10), reconcile});
    REQUIRE(done.ok());
    lastHash = store->lastHash();
    CHECK(store->cursor().timeNano == kStart + 10);
  }
  CHECK(f.query("SELECT value FROM meta WHERE key = 'cursor_time_nano'") ==
        std::to_string(kStart + 10));
  auto store = f.open();
  CHECK(store->lastHash() == lastHash);
  CHECK(store->eventCount() == 2);
  auto cursor = store->loadCursor();
  REQUIRE(cursor.ok());
  CHECK(cursor->timeNano == kStart + 10);
  auto next = store->commit(std::vector<Record>{engineRecord("c1", "start", kStart + 60)});
  REQUIRE(next.ok());
  CHECK(prevHashOf(next->records[0]) == lastHash);
  CHECK(store->cursor().timeNano == kStart + 60);
}

TEST_CASE("a failed batch rolls back events, cursor and hash together") {
  Fixture f;
  auto store = f.open();
  REQUIRE(store->commit(std::vector<Record>{engineRecord("c1", "start", kStart)}).ok());
  const std::string hashBefore = store->lastHash();
  f.query(
      "CREATE TRIGGER refuse BEFORE INSERT ON containers WHEN NEW.container_id = 'bad' "
      "BEGIN SELECT RAISE(ABORT, 'refused by test'); END");

  auto failed = store->commit(std::vector<Record>{engineRecord("c2", "start", kStart + 5),
                                                  engineRecord("bad", "start", kStart + 6)});
  REQUIRE_FALSE(failed.ok());
  INFO(failed.error().message);
  CHECK(failed.error().code == ErrorCode::kIo);
  CHECK(failed.error().message.find("refused by test") != std::string::npos);
  CHECK(store->lastHash() == hashBefore);
  CHECK(store->cursor().timeNano == kStart);
  CHECK(store->eventCount() == 1);
  CHECK(f.query("SELECT count(*) FROM events") == "1");
  CHECK(f.query("SELECT value FROM meta WHERE key = 'cursor_time_nano'") == std::to_string(kStart));

  f.query("DROP TRIGGER refuse");
  auto retried = store->commit(std::vector<Record>{engineRecord("c2", "start", kStart + 5),
                                                   engineRecord("bad", "start", kStart + 6)});
  REQUIRE(retried.ok());
  REQUIRE(retried->records.size() == 2);
  CHECK(prevHashOf(retried->records[0]) == hashBefore);
  CHECK(store->cursor().timeNano == kStart + 6);
}

// Identity (name, image, image ID) is kept when a record does not know it; state, exit code, pid
// and finish time are what the latest record says, since the Tracker carries them forward.
TEST_CASE("the containers table keeps each container's last known state") {
  Fixture f;
  auto store = f.open();
  Record start = engineRecord("c1", "start", kStart);
  start.container.imageId = "sha256:abc";
  start.container.state = "running";
  start.container.pid = 42;
  Record die = engineRecord("c1", "die", kStart + 1);
  die.container.state = "exited";
  die.container.exitCode = 3;
  die.container.pid = 0;
  die.container.image = "";
  REQUIRE(store->commit(std::vector<Record>{start}).ok());
  CHECK(f.query("SELECT state, pid, image_id, last_event_id FROM containers") ==
        "running,42,sha256:abc," + start.eventId);
  REQUIRE(store->commit(std::vector<Record>{die}).ok());
  CHECK(f.query("SELECT state, exit_code, pid, image, image_id, updated_nano FROM containers") ==
        "exited,3,0,zastava-test/busybox:1,sha256:abc," + std::to_string(kStart + 1));

  Record restart = engineRecord("c1", "start", kStart + 2);
  restart.container.state = "running";
  REQUIRE(store->commit(std::vector<Record>{restart}).ok());
  CHECK(f.query("SELECT state, exit_code, pid, image_id FROM containers") ==
        "running,NULL,NULL,sha256:abc");

  Record destroy = engineRecord("c1", "destroy", kStart + 3);
  destroy.container.exitCode = 3;
  REQUIRE(store->commit(std::vector<Record>{destroy}).ok());
  CHECK(f.query("SELECT state, exit_code FROM containers WHERE container_id = 'c1'") ==
        "removed,3");
}

TEST_CASE("a removed container's row is final: a record committed after its destroy leaves it") {
  Fixture f;
  auto store = f.open();
  Record destroy = engineRecord("c1", "destroy", kStart + 2);
  REQUIRE(store->commit(std::vector<Record>{destroy}).ok());
  Record lateDeath = engineRecord("c1", "die", kStart + 1);  // its event arrived after
  lateDeath.container.state = "exited";
  lateDeath.container.exitCode = 137;
  REQUIRE(store->commit(std::vector<Record>{lateDeath}).ok());
  CHECK(store->eventCount() == 2);
  CHECK(f.query("SELECT state, exit_code, last_event_id FROM containers") ==
        "removed,NULL," + destroy.eventId);
}

TEST_CASE("pruning deletes old events and old removed containers only") {
  Fixture f;
  auto store = f.open();
  REQUIRE(store
              ->commit(std::vector<Record>{engineRecord("c1", "destroy", kStart),
                                           engineRecord("c2", "start", kStart + 1),
                                           engineRecord("c3", "start", kStart + 100)})
              .ok());
  const std::string hash = store->lastHash();
  auto pruned = store->pruneOlderThan(kStart + 50, false);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
  CHECK(store->eventCount() == 1);
  CHECK(f.query("SELECT container_id FROM containers ORDER BY container_id") == "c2,c3");
  CHECK(store->lastHash() == hash);
  auto next = store->commit(std::vector<Record>{engineRecord("c3", "die", kStart + 101)});
  REQUIRE(next.ok());
  CHECK(prevHashOf(next->records[0]) == hash);
}

// The batch's records of one container are folded into one upsert: the table must be the same
// as when each record is committed on its own, in the same order.
TEST_CASE("a batch leaves the containers table as committing its records one by one does") {
  // Before the batch: c1 running, c2 already removed, c5 with an exit code the batch clears.
  Record c1Start = engineRecord("c1", "start", kStart);
  c1Start.container.imageId = "sha256:one";
  c1Start.container.state = "running";
  c1Start.container.pid = 10;
  c1Start.container.startedAt = "2026-11-22T10:00:00Z";
  c1Start.container.restartCount = 0;
  Record c2Destroy = engineRecord("c2", "destroy", kStart + 1);
  Record c5Die = engineRecord("c5", "die", kStart + 2);
  c5Die.container.state = "exited";
  c5Die.container.exitCode = 1;
  c5Die.container.finishedAt = "2026-11-22T10:00:01Z";
  const std::vector<Record> before{c1Start, c2Destroy, c5Die};

  std::vector<Record> batch;
  batch.reserve(16);  // the references below stay valid
  auto add = [&](const std::string& id, const std::string& action, std::int64_t at) -> Record& {
    batch.push_back(engineRecord(id, action, kStart + at));
    return batch.back();
  };
  Record& c1Die = add("c1", "die", 10);  // c1: die, a name change, restart, inspect
  c1Die.container.state = "exited";
  c1Die.container.exitCode = 137;
  c1Die.container.pid = 0;
  c1Die.container.finishedAt = "2026-11-22T10:00:10Z";
  Record& c3Create = add("c3", "create", 11);  // c3: new, then destroyed, then a late die
  c3Create.container.state = "created";
  c3Create.container.imageId = "sha256:three";
  Record& c1Rename = add("c1", "rename", 12);
  c1Rename.container.name = "renamed";
  c1Rename.container.image = "";
  Record& c4Create = add("c4", "create", 13);  // c4: only an evidence record after its create
  c4Create.container.state = "created";
  Record& c3Destroy = add("c3", "destroy", 14);
  c3Destroy.container.exitCode = 0;
  Record& c1Restart = add("c1", "start", 15);
  c1Restart.container.name = "renamed";
  c1Restart.container.state = "running";
  c1Restart.container.pid = 11;
  c1Restart.container.startedAt = "2026-11-22T10:00:15Z";
  c1Restart.container.restartCount = 1;
  Record& c3LateDie = add("c3", "die", 16);  // committed after the destroy: changes nothing
  c3LateDie.container.state = "exited";
  c3LateDie.container.exitCode = 2;
  Record& c2LateDie = add("c2", "die", 17);  // removed before the batch: changes nothing
  c2LateDie.container.state = "exited";
  Record& c4Evidence = add("c4", "evidence", 18);
  c4Evidence.kind = std::string(kEvidenceKind);
  c4Evidence.evidence = EvidenceFacts{};
  c4Evidence.container.state = "running";
  Record& c1Inspect = add("c1", "inspect", 19);  // knows less: COALESCE keeps what it lacks
  c1Inspect.kind = std::string(kInspectKind);
  c1Inspect.container.name = "";
  c1Inspect.container.image = "";
  Record& c5Start = add("c5", "start", 20);
  c5Start.container.state = "running";
  Record& c6Snapshot = add("c6", "snapshot", 21);  // a state "removed" not from a destroy
  c6Snapshot.container.state = "removed";
  Record& c6Late = add("c6", "start", 22);
  c6Late.container.state = "running";
  const Record again = batch[0];
  batch.push_back(again);  // a duplicate within the batch changes nothing either

  const std::string allColumns = "SELECT * FROM containers ORDER BY container_id";
  Fixture oneByOne;
  Fixture together;
  {
    auto single = oneByOne.open();
    auto batched = together.open();
    REQUIRE(single->commit(before).ok());
    REQUIRE(batched->commit(before).ok());
    for (const Record& record : batch) REQUIRE(single->commit(std::vector<Record>{record}).ok());
    auto committed = batched->commit(batch);
    REQUIRE(committed.ok());
    CHECK(committed->duplicates == 1);
  }
  const std::string expected = oneByOne.query(allColumns);
  CHECK(together.query(allColumns) == expected);
  CHECK(together.query("SELECT state, exit_code, last_event_id FROM containers WHERE "
                       "container_id = 'c3'") == "removed,0," + c3Destroy.eventId);
  CHECK(together.query("SELECT name, image, state, pid, restart_count, exit_code, updated_nano "
                       "FROM containers WHERE container_id = 'c1'") ==
        "renamed,zastava-test/busybox:1,running,NULL,1,NULL," + std::to_string(kStart + 19));
  CHECK(together.query("SELECT state FROM containers WHERE container_id IN ('c2', 'c4', 'c6') "
                       "ORDER BY container_id") == "removed,created,removed");
}

Record snapshotOpenedAt(const std::string& containerId, UnixNanos observedAt, UnixNanos opened) {
  Record record = engineRecord(containerId, "snapshot", observedAt);
  record.eventId = eventIdForSnapshot(containerId, observedAt);
  record.kind = "container.snapshot";
  record.source = RecordSource::kSnapshot;
  record.timeNano = 0;
  record.action.clear();
  record.attributes.clear();
  record.streamOpenedAt = opened;
  return record;
}

TEST_CASE("until an engine event anchors it, the cursor is when the stream last opened") {
  Fixture f;
  auto store = f.open();
  REQUIRE(store->commit(std::vector<Record>{snapshotOpenedAt("c1", kStart + 5, kStart)}).ok());
  CHECK(store->cursor().timeNano == kStart);
  CHECK(store->cursor().eventId.empty());
  CHECK(f.query("SELECT value FROM meta WHERE key = 'cursor_time_nano'") == std::to_string(kStart));

  Record start = engineRecord("c1", "start", kStart + 10);
  REQUIRE(store->commit(std::vector<Record>{start}).ok());
  CHECK(store->cursor().timeNano == kStart + 10);
  CHECK(store->cursor().eventId == start.eventId);

  // A later reconciliation does not move an anchored cursor: the replay must still show it.
  REQUIRE(
      store->commit(std::vector<Record>{snapshotOpenedAt("c2", kStart + 50, kStart + 40)}).ok());
  CHECK(store->cursor().eventId == start.eventId);
  store.reset();
  auto reopened = f.open();
  auto loaded = reopened->loadCursor();
  REQUIRE(loaded.ok());
  CHECK(loaded->timeNano == kStart + 10);
  CHECK(loaded->eventId == start.eventId);
}

TEST_CASE("a reconciled transition is stored once, whenever it is written again") {
  // Reconcile ids do not contain the record's time (a destroy's is the container and action).
  Fixture f;
  auto store = f.open();
  Record destroy = engineRecord("c1", "destroy", kStart + 10);
  destroy.source = RecordSource::kReconcile;
  REQUIRE(store->commit(std::vector<Record>{destroy}).ok());
  destroy.time = kStart + 99;
  auto again = store->commit(std::vector<Record>{destroy});
  REQUIRE(again.ok());
  CHECK(again->records.empty());
  CHECK(store->eventCount() == 1);
  CHECK(again->duplicates == 1);
}

// Version 1 as the agent created it, with a gap in the rowids (pruned rows) and a cursor.
void createVersion1(Fixture& f, const Record& a, const Record& b) {
  f.query(R"sql(
    PRAGMA journal_mode = WAL;
    CREATE TABLE events(event_id TEXT PRIMARY KEY, kind TEXT NOT NULL, container_id TEXT,
      time_nano INTEGER, source TEXT NOT NULL, record TEXT NOT NULL);
    CREATE INDEX events_time_nano ON events(time_nano);
    CREATE TABLE containers(container_id TEXT PRIMARY KEY, name TEXT, image TEXT,
      image_id TEXT, state TEXT, exit_code INTEGER, pid INTEGER, restart_count INTEGER,
      started_at TEXT, finished_at TEXT, updated_nano INTEGER, last_event_id TEXT);
    CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT);
    PRAGMA user_version = 1;)sql");
  f.query(
      "INSERT INTO events(rowid, event_id, kind, container_id, time_nano, source, record) "
      "VALUES (7, '" +
      a.eventId + "', 'container.create', 'c1', " + std::to_string(a.time) +
      ", 'stream', 'line a'), (9, '" + b.eventId + "', 'container.start', 'c1', " +
      std::to_string(b.time) +
      ", 'stream', 'line b');"
      "INSERT INTO meta VALUES ('last_hash', 'h9'), ('delivery_rowid', '7');");
}

TEST_CASE(
    "a version 1 ledger is moved to the current version with its rowids, and dedups as before") {
  Fixture f;
  const Record a = engineRecord("c1", "create", kStart);
  const Record b = engineRecord("c1", "start", kStart + 1);
  createVersion1(f, a, b);

  auto store = f.open();
  CHECK(f.query("PRAGMA user_version") == "2");
  CHECK(f.query("SELECT rowid, record FROM events ORDER BY rowid") == "7,line a,9,line b");
  CHECK(f.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' "
                "ORDER BY name") == "events_reconcile_id,events_time_id");
  CHECK(f.query("SELECT value FROM meta WHERE key = 'delivery_rowid'") == "7");
  CHECK(store->lastHash() == "h9");
  CHECK(store->eventCount() == 2);

  auto next = store->commit(std::vector<Record>{b, engineRecord("c1", "die", kStart + 2)});
  REQUIRE(next.ok());
  REQUIRE(next->records.size() == 1);
  CHECK(prevHashOf(next->records[0]) == "h9");
  CHECK(f.query("SELECT max(rowid) FROM events") == "10");
  auto found = store->findEvent(a.time, a.eventId);
  REQUIRE(found.ok());
  REQUIRE(found->has_value());
  CHECK((*found)->rowid == 7);
}

TEST_CASE("a version 1 ledger on a full disk stays as it was, with a clear error") {
  Fixture f;
  const Record a = engineRecord("c1", "create", kStart);
  const Record b = engineRecord("c1", "start", kStart + 1);
  createVersion1(f, a, b);
  f.query(
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200) "
      "INSERT INTO events(event_id, kind, container_id, time_nano, source, record) "
      "SELECT printf('%032x', i), 'container.start', 'c2', i, 'stream', printf('%01000d', i) "
      "FROM n");  // ~200 KiB to copy
  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 32768;  // room for the WAL index (-shm), not for a copy of the events
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  auto failed = SqliteStore::open(f.path);
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
  std::signal(SIGXFSZ, previous);

  REQUIRE_FALSE(failed.ok());
  INFO(failed.error().message);
  CHECK(failed.error().message.find("cannot move the events to store schema 2 (a copy of them "
                                    "needs room on the disk) in " +
                                    f.path.string() + ": ") == 0);
  CHECK(f.query("PRAGMA user_version") == "1");
  CHECK(f.query("SELECT count(*), min(rowid) FROM events") == "202,7");
  auto store = f.open();  // with room again
  CHECK(f.query("PRAGMA user_version") == "2");
  CHECK(store->eventCount() == 202);
}

struct InvariantBroke {};

TEST_CASE("a bind SQLite refuses is a broken invariant, not a NULL stored") {
  testing::TempDir tmp;
  SqliteConnection db(tmp.path() / "binds.db");
  REQUIRE(db.open(SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE).ok());
  auto statement = db.prepare("SELECT ?1", "cannot prepare");
  REQUIRE(statement.ok());
  statement->bindInt(1, 7);  // fine
  setInvariantEnd([](const InvariantFailure& failure) {
    CHECK(failure.what == "SQLite refused parameter 2 of \"SELECT ?1\": column index out of range");
    throw InvariantBroke{};
  });
  CHECK_THROWS_AS(statement->bindText(2, "no such parameter"), InvariantBroke);
  setInvariantEnd(nullptr);
}

}  // namespace
}  // namespace zastava
