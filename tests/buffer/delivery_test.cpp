// Backend delivery below the network: the contract's table of answers, Retry-After, the
// delivery queue on a real ledger database, the retention's treatment of undelivered records,
// and a Dispatcher whose backend is down long enough for records to expire. Delivery over real
// HTTP(S) is tested end to end in tests/integration/test_backend_delivery.py.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "buffer/backend_client.h"
#include "buffer/delivery_backlog.h"
#include "buffer/delivery_ledger.h"
#include "buffer/dispatcher.h"
#include "buffer/quarantine.h"
#include "buffer/recorder.h"
#include "buffer/sqlite_store.h"
#include "buffer_test_util.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;
using testing::engineRecord;
using testing::kSecond;
using testing::kStart;
using testing::metricValue;

TEST_CASE("each answer gets the verdict and cause of docs/backend.md") {
  struct Row {
    long status;
    DeliveryVerdict verdict;
    std::string_view cause;
  };
  const Row table[] = {
      {204, DeliveryVerdict::kAccepted, ""},       {301, DeliveryVerdict::kRefused, "refused"},
      {400, DeliveryVerdict::kRejected, "rejected"}, {401, DeliveryVerdict::kRefused, "refused"},
      {403, DeliveryVerdict::kRefused, "refused"}, {404, DeliveryVerdict::kRefused, "refused"},
      {405, DeliveryVerdict::kRefused, "refused"}, {408, DeliveryVerdict::kRetry, "http_408"},
      {409, DeliveryVerdict::kRejected, "rejected"}, {413, DeliveryVerdict::kTooLarge, "too_large"},
      {422, DeliveryVerdict::kRejected, "rejected"}, {429, DeliveryVerdict::kRetry, "http_429"},
      {500, DeliveryVerdict::kRetry, "http_5xx"},  {503, DeliveryVerdict::kRetry, "http_5xx"},
  };
  for (const Row& row : table) {
    CAPTURE(row.status);
    CHECK(verdictOfStatus(row.status) == row.verdict);
    if (!row.cause.empty()) CHECK(causeOfStatus(row.status) == row.cause);
  }
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date") {
  const std::time_t now = 1795358087;  // 2026-11-22T14:34:47Z
  CHECK(parseRetryAfter("120", now) == std::chrono::seconds(120));
  CHECK(parseRetryAfter("0", now) == std::chrono::seconds(0));
  CHECK(parseRetryAfter("Sun, 22 Nov 2026 14:35:17 GMT", now) == std::chrono::seconds(30));
  CHECK(parseRetryAfter("Sun, 22 Nov 2026 14:00:00 GMT", now) == std::chrono::seconds(0));
  CHECK_FALSE(parseRetryAfter("", now).has_value());
  CHECK_FALSE(parseRetryAfter("-5", now).has_value());
  CHECK_FALSE(parseRetryAfter("12 seconds", now).has_value());
  CHECK_FALSE(parseRetryAfter("soon", now).has_value());
}

TEST_CASE("a token file that cannot be used stops start-up naming the key") {
  testing::TempDir tmp;
  BackendClientOptions options;
  options.url = "http://127.0.0.1:1/";
  options.tokenFile = tmp.path() / "missing";
  auto missing = BackendClient::create(options);
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.error().message == "Backend:TokenFile " + options.tokenFile.string() +
                                       ": cannot be read");
  options.tokenFile = tmp.path() / "empty";
  std::ofstream(options.tokenFile) << " \n";
  auto empty = BackendClient::create(options);
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().message.ends_with(": is empty"));
  options.tokenFile = tmp.path() / "two-lines";
  std::ofstream(options.tokenFile) << "abc\ndef\n";
  auto twoLines = BackendClient::create(options);
  REQUIRE_FALSE(twoLines.ok());
  CHECK(twoLines.error().message.ends_with(": holds more than one line"));
  options.tokenFile.clear();
  options.caFile = tmp.path() / "no-ca.pem";
  auto noCa = BackendClient::create(options);
  REQUIRE_FALSE(noCa.ok());
  CHECK(noCa.error().message.starts_with("Backend:CaFile "));
}

struct Ledger {
  testing::TempDir tmp;
  std::filesystem::path db = tmp.path() / "zastava-agent.db";
  Metrics metrics{testing::testBuild()};
  std::unique_ptr<SqliteStore> store;

  Ledger() {
    auto opened = SqliteStore::open(db, metrics);
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
    for (const auto& record : *committed) lines.push_back(record.line);
    return lines;
  }
  std::unique_ptr<DeliveryLedger> queue() {
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

TEST_CASE("the queue hands out the records after the cursor, bounded by count and bytes") {
  Ledger ledger;
  const auto lines = ledger.commit(5);
  auto queue = ledger.queue();
  CHECK(queue->cursor() == 0);
  auto backlog = queue->backlog();
  REQUIRE(backlog.ok());
  CHECK(backlog->records == 5);
  CHECK(backlog->bytes == static_cast<std::int64_t>(joined(lines, 0, 5).size()));

  auto byCount = queue->next(2, 1 << 20);
  REQUIRE(byCount.ok());
  CHECK(byCount->records == 2);
  CHECK(byCount->full);
  CHECK(byCount->body == joined(lines, 0, 2));

  const std::size_t twoAndABit = joined(lines, 0, 2).size() + 10;
  auto byBytes = queue->next(100, twoAndABit);
  REQUIRE(byBytes.ok());
  CHECK(byBytes->records == 2);
  CHECK(byBytes->full);

  auto oversized = queue->next(100, 1);  // a record longer than the limit goes alone
  REQUIRE(oversized.ok());
  CHECK(oversized->records == 1);

  auto all = queue->next(100, 1 << 20);
  REQUIRE(all.ok());
  CHECK(all->records == 5);
  CHECK_FALSE(all->full);
  REQUIRE(queue->markDelivered(all->lastRowid).ok());
  auto empty = queue->next(100, 1 << 20);
  REQUIRE(empty.ok());
  CHECK(empty->records == 0);
}

TEST_CASE("the delivery cursor survives a reopen and the records behind it are not sent again") {
  Ledger ledger;
  const auto lines = ledger.commit(4);
  {
    auto queue = ledger.queue();
    auto first = queue->next(3, 1 << 20);
    REQUIRE(first.ok());
    REQUIRE(queue->markDelivered(first->lastRowid).ok());
  }
  auto reopened = ledger.queue();
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
  auto queue = ledger.queue();
  auto first = queue->next(2, 1 << 20);
  REQUIRE(first.ok());
  REQUIRE(queue->markDelivered(first->lastRowid).ok());

  // Everything but the newest record is past the retention; only the delivered ones go.
  const UnixNanos cutoff = kStart + 10 * kSecond;
  auto pruned = ledger.store->pruneOlderThan(cutoff, /*keepUndelivered=*/true);
  REQUIRE(pruned.ok());
  CHECK(*pruned == 2);
  auto expired = queue->expireOlderThan(cutoff);
  REQUIRE(expired.ok());
  CHECK(expired->records == 3);  // the newest row stays, so rowids never go back
  CHECK(expired->oldest == kStart + 2 * kSecond);
  CHECK(expired->newest == kStart + 4 * kSecond);
  CHECK(expired->bytes == static_cast<std::int64_t>(joined(lines, 2, 5).size()));

  const auto later = ledger.commit(1, 6);
  auto rest = queue->next(100, 1 << 20);
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

TEST_CASE("a quarantined batch is kept exactly as sent, and only the newest 100 are kept") {
  testing::TempDir tmp;
  PendingBatch batch;
  batch.records = 2;
  batch.body = "{\"a\":1}\n{\"b\":2}\n";
  for (std::int64_t first = 1; first <= 102; ++first) {
    batch.firstRowid = first * 10;
    batch.lastRowid = first * 10 + 1;
    auto file = quarantineBatch(tmp.path(), batch);
    REQUIRE(file.ok());
    CHECK(file->filename() == "batch-" + std::to_string(first * 10) + "-" +
                                  std::to_string(first * 10 + 1) + ".ndjson");
  }
  const auto dir = tmp.path() / "backend-quarantine";
  CHECK(std::distance(std::filesystem::directory_iterator(dir),
                      std::filesystem::directory_iterator()) == 100);
  CHECK_FALSE(std::filesystem::exists(dir / "batch-10-11.ndjson"));
  CHECK_FALSE(std::filesystem::exists(dir / "batch-20-21.ndjson"));
  CHECK(testing::readFile(dir / "batch-1020-1021.ndjson") == batch.body);
  struct stat info {};
  REQUIRE(::stat((dir / "batch-30-31.ndjson").c_str(), &info) == 0);
  CHECK((info.st_mode & 0777) == 0640);
}

// The backend is down (nothing listens on the port) for longer than the retention.
TEST_CASE("records that expire undelivered are counted and announced by an agent.gap record") {
  testing::TempDir tmp;
  FakeClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics};
  health.setEngineReachable(true);
  health.setInventoryDone();
  DispatcherOptions options;
  options.backend.url = "http://127.0.0.1:1/ingest";
  options.batchMaxWait = 0ms;
  options.retryMax = 1s;
  options.failuresBeforeUnready = 1;
  options.dataDirectory = tmp.path();
  options.retentionNanos = 3600 * kSecond;
  auto client = BackendClient::create(options.backend);
  REQUIRE(client.ok());
  DeliveryBacklog backlog{metrics};
  RecorderOptions recorderOptions;
  recorderOptions.dataDirectory = tmp.path();
  recorderOptions.keepUndelivered = true;
  recorderOptions.commitObserver = &backlog;
  auto recorder = Recorder::open(recorderOptions, clock, metrics, health);
  REQUIRE(recorder.ok());
  auto dispatcher = Dispatcher::start(options, std::move(*client), backlog, **recorder, clock,
                                      metrics, health);
  REQUIRE(dispatcher.ok());
  for (int i = 0; i < 5; ++i) {
    REQUIRE((*recorder)->submit(engineRecord("old" + std::to_string(i), "start", kStart + i)));
  }
  // The newest record is never expired: commit it before the clock moves, or an expiry run in
  // between would take old0..old3 and keep old4 as the newest.
  REQUIRE((*recorder)->submit(engineRecord("new", "start", kStart + 2 * 3600 * kSecond)));
  (*recorder)->flush();
  clock.advance(2h);

  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (metricValue(metrics, "zastava_agent_backend_expired_records_total") < 5 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(50ms);
  }
  CHECK(metricValue(metrics, "zastava_agent_backend_expired_records_total") == 5);
  CHECK(metricValue(metrics, "zastava_agent_backend_failures_total{cause=\"connect\"}") >= 1);
  CHECK(health.readiness().reason.starts_with("backend connection failed: connect: "));
  (*dispatcher)->stop();
  (*recorder)->stop();

  Metrics scratch{testing::testBuild()};
  auto store = SqliteStore::open(tmp.path() / kDatabaseFileName, scratch);
  REQUIRE(store.ok());
  auto lines = (*store)->recordLines();
  REQUIRE(lines.ok());
  REQUIRE(lines->size() == 2);  // the new record and the gap; the five old ones are gone
  const auto gap = nlohmann::json::parse(lines->back());
  CHECK(gap["kind"] == "agent.gap");
  CHECK(gap["gap"]["undeliveredRecords"] == 5);
  CHECK(gap["gap"]["fromTimeNano"] == kStart);
  CHECK(gap["gap"]["toTimeNano"] == kStart + 4);
  CHECK(gap["time"] == formatRfc3339Nanos(clock.now()));
  CHECK(metricValue(metrics, "zastava_agent_backend_backlog_records") == 2);
}

}  // namespace
}  // namespace zastava
