// The ledger seen from backend delivery (DeliveryLedger) on a real ledger database: the records
// after the delivery cursor, bounded by count and bytes, the cursor kept across a reopen, and
// the retention's treatment of undelivered records. The Dispatcher that uses it is tested in
// tests/delivery/delivery_test.cpp.
#include "buffer/delivery_ledger.h"

#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "buffer/sqlite_store.h"
#include "buffer_test_util.h"

namespace zastava {
namespace {

using testing::engineRecord;
using testing::kSecond;
using testing::kStart;

struct Ledger {
  testing::TempDir tmp;
  std::filesystem::path db = tmp.path() / "zastava-agent.db";
  std::unique_ptr<SqliteStore> store;

  Ledger() {
    auto opened = SqliteStore::open(db);
    REQUIRE(opened.ok());
    store = std::move(*opened);
  }
  // Commits `count` records at kStart + i seconds; returns their lines.
  std::vector<std::string> commit(int count, int from = 0) {
    std::vector<Record> records;
    for (int i = from; i < from + count; ++i) {
      records.push_back(engineRecord("c" + std::to_string(i), "start", kStart + i * kSecond));
    }
    auto committed = store->commit(records);
    REQUIRE(committed.ok());
    std::vector<std::string> lines;
    for (const auto& record : committed->records) lines.push_back(record.line);
    return lines;
  }
  std::unique_ptr<DeliveryLedger> delivery() {
    auto opened = DeliveryLedger::open(db);
    REQUIRE(opened.ok());
    return std::move(*opened);
  }
};

std::string joined(const std::vector<std::string>& lines, std::size_t from, std::size_t to) {
  std::string body;
  for (std::size_t i = from; i < to; ++i) body += lines[i] + "\n";
  return body;
}

TEST_CASE("delivery is handed the records after the cursor, bounded by count and bytes") {
  Ledger ledger;
  const auto lines = ledger.commit(5);
  auto delivery = ledger.delivery();
  CHECK(delivery->cursor() == 0);
  auto backlog = delivery->backlog();
  REQUIRE(backlog.ok());
  CHECK(backlog->records == 5);
  CHECK(backlog->bytes == static_cast<std::int64_t>(joined(lines, 0, 5).size()));

  auto byCount = delivery->next(2, 1 << 20);
  REQUIRE(byCount.ok());
  CHECK(byCount->records == 2);
  CHECK(byCount->full);
  CHECK(byCount->body == joined(lines, 0, 2));

  const std::size_t twoAndABit = joined(lines, 0, 2).size() + 10;
  auto byBytes = delivery->next(100, twoAndABit);
  REQUIRE(byBytes.ok());
  CHECK(byBytes->records == 2);
  CHECK(byBytes->full);

  auto oversized = delivery->next(100, 1);  // a record longer than the limit goes alone
  REQUIRE(oversized.ok());
  CHECK(oversized->records == 1);

  auto all = delivery->next(100, 1 << 20);
  REQUIRE(all.ok());
  CHECK(all->records == 5);
  CHECK_FALSE(all->full);
  REQUIRE(delivery->markDelivered(all->lastRowid).ok());
  auto empty = delivery->next(100, 1 << 20);
  REQUIRE(empty.ok());
  CHECK(empty->records == 0);
}

TEST_CASE("a batch names each record: rowid, eventId and where its line is in the body") {
  Ledger ledger;
  const auto lines = ledger.commit(3);
  auto delivery = ledger.delivery();
  auto batch = delivery->next(100, 1 << 20);
  REQUIRE(batch.ok());
  REQUIRE(batch->rows.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CAPTURE(i);
    CHECK(batch->line(i) == lines[i]);
    CHECK(lines[i].find("\"eventId\":\"" + batch->rows[i].eventId + "\"") != std::string::npos);
  }
  CHECK(batch->rows.front().rowid == batch->firstRowid);
  CHECK(batch->rows.back().rowid == batch->lastRowid);
}

// Where a destination that keeps the position (NATS) says delivery stands.
TEST_CASE("the destination's last record: found by eventId and time, or by time alone") {
  Ledger ledger;
  ledger.commit(5);
  auto delivery = ledger.delivery();
  auto batch = delivery->next(100, 1 << 20);
  REQUIRE(batch.ok());
  const BatchRecord& third = batch->rows[2];
  auto found = delivery->rowidOf(third.eventId, kStart + 2 * kSecond);
  REQUIRE(found.ok());
  CHECK(*found == third.rowid);
  auto otherTime = delivery->rowidOf(third.eventId, kStart);
  REQUIRE(otherTime.ok());
  CHECK_FALSE(*otherTime);

  // Not in the ledger (restored from an older copy): the run of records not newer than it.
  auto notNewer = delivery->lastNotNewerThan(kStart + 3 * kSecond + 500);
  REQUIRE(notNewer.ok());
  CHECK(*notNewer == batch->rows[3].rowid);
  auto older = delivery->lastNotNewerThan(kStart - kSecond);
  REQUIRE(older.ok());
  CHECK(*older == 0);

  auto skipped = delivery->skipTo(third.rowid);
  REQUIRE(skipped.ok());
  CHECK(skipped->records == 3);
  CHECK(skipped->bytes == static_cast<std::int64_t>(third.offset + third.length + 1));
  CHECK(delivery->cursor() == third.rowid);
  auto backwards = delivery->skipTo(1);
  REQUIRE(backwards.ok());
  CHECK(backwards->records == 0);
  CHECK(delivery->cursor() == third.rowid);
  auto reopened = ledger.delivery();
  CHECK(reopened->cursor() == third.rowid);
  auto afterCursor = reopened->lastNotNewerThan(kStart + 100 * kSecond);
  REQUIRE(afterCursor.ok());
  CHECK(*afterCursor == batch->rows[4].rowid);
}

TEST_CASE("the delivery cursor survives a reopen and the records behind it are not sent again") {
  Ledger ledger;
  const auto lines = ledger.commit(4);
  {
    auto delivery = ledger.delivery();
    auto first = delivery->next(3, 1 << 20);
    REQUIRE(first.ok());
    REQUIRE(delivery->markDelivered(first->lastRowid).ok());
  }
  auto reopened = ledger.delivery();
  auto rest = reopened->next(100, 1 << 20);
  REQUIRE(rest.ok());
  CHECK(rest->body == joined(lines, 3, 4));
  auto observed = reopened->observedAt(rest->firstRowid);
  REQUIRE(observed.ok());
  CHECK(*observed == kStart + 3 * kSecond + 1000);
}

TEST_CASE("the retention keeps undelivered records for the dispatcher, which expires them") {
  Ledger ledger;
  const auto lines = ledger.commit(6);
  auto delivery = ledger.delivery();
  auto first = delivery->next(2, 1 << 20);
  REQUIRE(first.ok());
  REQUIRE(delivery->markDelivered(first->lastRowid).ok());

  // Everything but the newest record is past the retention; only the delivered ones go.
  const UnixNanos cutoff = kStart + 10 * kSecond;
  auto pruned = ledger.store->pruneOlderThan(cutoff, /*keepUndelivered=*/true);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
  auto expired = delivery->expireOlderThan(cutoff);
  REQUIRE(expired.ok());
  CHECK(expired->records == 3);  // the newest row stays, so rowids never go back
  CHECK(expired->oldest == kStart + 2 * kSecond);
  CHECK(expired->newest == kStart + 4 * kSecond);
  CHECK(expired->bytes == static_cast<std::int64_t>(joined(lines, 2, 5).size()));

  const auto later = ledger.commit(1, 6);
  auto rest = delivery->next(100, 1 << 20);
  REQUIRE(rest.ok());
  CHECK(rest->body == joined(lines, 5, 6) + later[0] + "\n");
}

TEST_CASE("without delivery the retention deletes old records whether sent or not") {
  Ledger ledger;
  ledger.commit(3);
  auto pruned = ledger.store->pruneOlderThan(kStart + 10 * kSecond, /*keepUndelivered=*/false);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
}

}  // namespace
}  // namespace zastava
