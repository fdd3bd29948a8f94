// Backend delivery below the network: the contract's table of answers, Retry-After, the backend
// files, quarantine, and a Dispatcher whose backend is down long enough for records to expire.
// The ledger side (DeliveryLedger) is tested in tests/buffer/delivery_ledger_test.cpp; delivery
// over real HTTP(S) end to end in tests/integration/test_backend_delivery.py.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <thread>
#include <vector>

#include "buffer/delivery_ledger.h"
#include "buffer/recorder.h"
#include "buffer/sqlite_store.h"
#include "common/rfc3339.h"
#include "common/sha256.h"
#include "delivery/backend_client.h"
#include "delivery/delivery_backlog.h"
#include "delivery/dispatcher.h"
#include "delivery/quarantine.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/buffer/buffer_test_util.h"
#include "tests/support/manual_clock.h"

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
      {204, DeliveryVerdict::kAccepted, ""},         {301, DeliveryVerdict::kRefused, "refused"},
      {400, DeliveryVerdict::kRejected, "rejected"}, {401, DeliveryVerdict::kRefused, "refused"},
      {403, DeliveryVerdict::kRefused, "refused"},   {404, DeliveryVerdict::kRefused, "refused"},
      {405, DeliveryVerdict::kRefused, "refused"},   {408, DeliveryVerdict::kRetry, "http_408"},
      {409, DeliveryVerdict::kRejected, "rejected"}, {413, DeliveryVerdict::kTooLarge, "too_large"},
      {422, DeliveryVerdict::kRejected, "rejected"}, {429, DeliveryVerdict::kRetry, "http_429"},
      {500, DeliveryVerdict::kRetry, "http_5xx"},    {503, DeliveryVerdict::kRetry, "http_5xx"},
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
  CHECK(missing.error().message ==
        "Backend:TokenFile " + options.tokenFile.string() + ": cannot be read");
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

TEST_CASE("a batch's identity: its first and last eventId, the chain around it, an id of both") {
  PendingBatch batch;
  const std::string first = R"({"eventId":"e1","prevHash":")" + std::string(64, 'a') + R"("})";
  const std::string last = R"({"eventId":"e2","prevHash":"b"})";
  batch.body = first + "\n" + last + "\n";
  batch.records = 2;
  batch.rows = {BatchRecord{1, "e1", 0, first.size()},
                BatchRecord{2, "e2", first.size() + 1, last.size()}};
  const BatchIdentity identity = batchIdentity(batch, "web-1");
  CHECK(identity.batch ==
        "first=e1, last=e2, prev-hash=" + std::string(64, 'a') + ", last-hash=" + sha256Hex(last));
  CHECK(identity.id == sha256Hex("zastava.batch\nweb-1\n" + identity.batch).substr(0, 32));
  CHECK(batchIdentity(batch, "web-1").id == identity.id);
  CHECK(batchIdentity(batch, "web-2").id != identity.id);
  batch.records = 1;
  batch.rows.pop_back();
  CHECK(batchIdentity(batch, "web-1").id != identity.id);
}

// Port 1 on the loopback: nothing listens there, the connect is refused at once.
TEST_CASE("a request that gets no answer carries net/'s Error and its cause label") {
  BackendClientOptions options;
  options.url = "http://127.0.0.1:1/ingest";
  auto client = BackendClient::create(options);
  REQUIRE(client.ok());
  const std::atomic<bool> cancel{false};
  PendingBatch batch;
  batch.records = 1;
  batch.body = "{}\n";
  batch.rows.push_back(BatchRecord{1, "e1", 0, 2});
  const BackendAnswer answer = (*client)->send(batch, cancel);
  CHECK(answer.verdict == DeliveryVerdict::kRetry);
  CHECK(answer.status == 0);
  REQUIRE(answer.error.has_value());
  CHECK(answer.error->code == ErrorCode::kUnavailable);
  CHECK(answer.error->message.starts_with("cannot connect to the backend: "));
  CHECK(answer.cause == "connect");
  CHECK(answer.detail == answer.error->message);

  CHECK(causeOfError(Error{ErrorCode::kTls, "t"}) == "tls");
  CHECK(causeOfError(Error{ErrorCode::kTimeout, "t"}) == "timeout");
  CHECK(causeOfError(Error{ErrorCode::kProtocol, "t"}) == "other");
  CHECK(causeOfError(Error{ErrorCode::kInvalidArgument, "token"}) == "other");
}

TEST_CASE("the backlog adds commits, takes away what left, and wakes its waiter until closed") {
  Metrics metrics{testing::testBuild()};
  DeliveryBacklog backlog{metrics};
  backlog.set(Backlog{2, 100});
  backlog.recordsCommitted(3, 50);
  CHECK(backlog.current().records == 5);
  CHECK(backlog.current().bytes == 150);
  CHECK(metricValue(metrics, "zastava_agent_backend_backlog_records") == 5);
  CHECK(metricValue(metrics, "zastava_agent_backend_backlog_bytes") == 150);
  backlog.remove(10, 10);  // never below 0
  CHECK(backlog.current().records == 0);
  CHECK(backlog.current().bytes == 140);

  // A commit on the writer's thread wakes the delivery thread's wait.
  ManualClock clock;
  const MonoTime deadline = clock.monotonic() + 60s;
  bool woken = false;
  std::thread delivery([&] {
    woken = backlog.waitUntil(clock, deadline, [](const Backlog& now) { return now.records == 1; });
  });
  REQUIRE(clock.awaitWaits(1));
  backlog.recordsCommitted(1, 10);
  delivery.join();
  CHECK(woken);

  // The deadline ends a wait: the clock passes it.
  delivery = std::thread(
      [&] { woken = backlog.waitUntil(clock, deadline, [](const Backlog&) { return false; }); });
  REQUIRE(clock.awaitWaits(1));
  CHECK(clock.waitsLeft().front() == 60s);
  clock.advance(60s);
  delivery.join();
  CHECK(woken);  // not closed

  // close() ends a wait in progress and every later one.
  delivery = std::thread([&] {
    woken = backlog.waitUntil(clock, deadline + 1h, [](const Backlog&) { return false; });
  });
  REQUIRE(clock.awaitWaits(1));
  backlog.close();
  delivery.join();
  CHECK_FALSE(woken);
  CHECK(backlog.closed());
  CHECK_FALSE(backlog.waitUntil(clock, deadline + 1h, [](const Backlog&) { return false; }));
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
    CHECK(file->filename() ==
          "batch-" + std::to_string(first * 10) + "-" + std::to_string(first * 10 + 1) + ".ndjson");
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

// Keeps what the Dispatcher submits (its agent.gap records).
struct KeptRecords final : RecordSink {
  bool submit(Record record) override {
    std::lock_guard lock(mu);
    records.push_back(std::move(record));
    return true;
  }
  std::mutex mu;
  std::vector<Record> records;
};

// Delivery to a port nothing listens on (every POST fails at once), sending each record as soon
// as it is committed, for a ledger in `dataDirectory`.
DispatcherOptions unreachableBackend(const std::filesystem::path& dataDirectory) {
  DispatcherOptions options;
  options.backend.url = "http://127.0.0.1:1/ingest";
  options.batchMaxWait = 0ms;
  options.dataDirectory = dataDirectory;
  return options;
}

// What the Dispatcher finds once the engine is up: ready, unless the backend says otherwise.
void engineReady(HealthState& health) {
  health.setEngineReachable(true);
  health.setInventoryDone();
}

// Nothing listens on the port: every POST fails at once, and the Dispatcher waits its back-off
// on the clock before the next one.
TEST_CASE("delivery retries after a jittered back-off that doubles up to Backend:RetryMaxSeconds") {
  testing::TempDir tmp;
  {
    auto store = SqliteStore::open(tmp.path() / kDatabaseFileName);
    REQUIRE(store.ok());
    REQUIRE((*store)->commit(std::vector<Record>{engineRecord("c1", "start", kStart)}).ok());
  }
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};
  engineReady(health);
  DispatcherOptions options = unreachableBackend(tmp.path());
  options.retryMax = 4s;
  options.failuresBeforeUnready = 3;
  auto client = BackendClient::create(options.backend);
  REQUIRE(client.ok());
  DeliveryBacklog backlog{metrics};
  KeptRecords gaps;
  auto dispatcher =
      Dispatcher::start(options, std::move(*client), backlog, gaps, clock, metrics, health);
  REQUIRE(dispatcher.ok());

  // The only thread waiting on this clock is the Dispatcher's; after an advance its old wait
  // (0 left) may still be listed until it wakes.
  const auto waitingAgain = [](const std::vector<std::chrono::nanoseconds>& left) {
    return !left.empty() && left.back() > 0ns;
  };
  const std::chrono::seconds steps[] = {1s, 2s, 4s, 4s, 4s};
  int attempts = 0;
  for (const std::chrono::seconds step : steps) {
    CAPTURE(step.count());
    REQUIRE(clock.awaitWaits(waitingAgain));
    ++attempts;
    const std::chrono::nanoseconds left = clock.waitsLeft().back();
    CHECK(left >= step / 2);
    CHECK(left <= step);
    CHECK(metricValue(metrics, "zastava_agent_backend_consecutive_failures") == attempts);
    CHECK(health.readiness().reason.starts_with("backend connection failed: connect: ") ==
          (attempts >= 3));
    clock.advance(left);
  }
  CHECK(metricValue(metrics, "zastava_agent_backend_failures_total{cause=\"connect\"}") >=
        attempts);
  (*dispatcher)->stop();
  CHECK(gaps.records.empty());
}

// The backend is down (nothing listens on the port) for longer than the retention.
TEST_CASE("records that expire undelivered are counted and announced by an agent.gap record") {
  testing::TempDir tmp;
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};
  engineReady(health);
  DispatcherOptions options = unreachableBackend(tmp.path());
  options.retryMax = 1s;
  options.failuresBeforeUnready = 1;
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
  auto dispatcher =
      Dispatcher::start(options, std::move(*client), backlog, **recorder, clock, metrics, health);
  REQUIRE(dispatcher.ok());
  for (int i = 0; i < 5; ++i) {
    REQUIRE((*recorder)->submit(engineRecord("old" + std::to_string(i), "start", kStart + i)));
  }
  // The newest record is never expired: commit it before the clock moves, or an expiry run in
  // between would take old0..old3 and keep old4 as the newest.
  REQUIRE((*recorder)->submit(engineRecord("new", "start", kStart + 2 * 3600 * kSecond)));
  (*recorder)->flush();
  // Both threads wait on the clock before it moves (the writer idle, the Dispatcher after a
  // failed POST): a wait that began after the advance would never end.
  REQUIRE(clock.awaitWaits(2));
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

  auto store = SqliteStore::open(tmp.path() / kDatabaseFileName);
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

namespace zastava {
namespace {

// A destination that keeps the position, as NATS JetStream does: it holds `held` (the lines it
// says it has, the last one its position) and accepts every batch, keeping what it was sent.
// Scripted here because what is tested is the Dispatcher's policy; the NATS transport itself
// runs against real servers in tests/integration/test_nats_delivery.py.
struct PositionKeepingDestination final : DeliveryTransport {
  std::optional<std::string> last;
  std::mutex mu;
  std::vector<std::string> sent;  // eventIds

  bool keepsPosition() const override { return true; }
  PositionAnswer position(const std::atomic<bool>&) override {
    PositionAnswer answer;
    answer.answer.verdict = DeliveryVerdict::kAccepted;
    answer.lastRecord = last;
    return answer;
  }
  BackendAnswer send(const PendingBatch& batch, const std::atomic<bool>&) override {
    std::lock_guard lock(mu);
    for (const BatchRecord& row : batch.rows) sent.push_back(row.eventId);
    BackendAnswer answer;
    answer.verdict = DeliveryVerdict::kAccepted;
    answer.delivered = batch.records;
    return answer;
  }
  std::string describe() const override { return "a destination that keeps the position"; }
  std::size_t sentCount() {
    std::lock_guard lock(mu);
    return sent.size();
  }
};

struct EarlierRun {
  testing::TempDir tmp;
  std::vector<std::string> lines;  // what an earlier run recorded, none of it delivered
  std::vector<std::string> eventIds;

  EarlierRun() {
    auto store = SqliteStore::open(tmp.path() / kDatabaseFileName);
    REQUIRE(store.ok());
    std::vector<Record> records;
    for (int i = 0; i < 5; ++i) {
      records.push_back(engineRecord("c" + std::to_string(i), "start", kStart + i * kSecond));
    }
    auto committed = (*store)->commit(records);
    REQUIRE(committed.ok());
    for (const auto& record : committed->records) lines.push_back(record.line);
    for (const Record& record : records) eventIds.push_back(record.eventId);
  }

  // Starts a Dispatcher to `destination` and waits until it sent `expected` records.
  std::vector<std::string> deliver(std::unique_ptr<PositionKeepingDestination> destination,
                                   std::size_t expected) {
    ManualClock clock{kStart + 100 * kSecond};
    Metrics metrics{testing::testBuild()};
    HealthState health{metrics, clock};
    DeliveryBacklog backlog{metrics};
    KeptRecords gaps;
    PositionKeepingDestination& kept = *destination;
    DispatcherOptions options = unreachableBackend(tmp.path());
    auto dispatcher =
        Dispatcher::start(options, std::move(destination), backlog, gaps, clock, metrics, health);
    REQUIRE(dispatcher.ok());
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (kept.sentCount() < expected && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(10ms);
    }
    std::this_thread::sleep_for(50ms);  // nothing more should come
    (*dispatcher)->stop();
    CHECK(metricValue(metrics, "zastava_agent_backend_backlog_records") == 0);
    return kept.sent;
  }
};

TEST_CASE("a destination that keeps the position decides where delivery resumes") {
  EarlierRun run;
  SUBCASE("its last record is in the ledger: delivery goes on after it") {
    auto destination = std::make_unique<PositionKeepingDestination>();
    destination->last = run.lines[2];
    CHECK(run.deliver(std::move(destination), 2) ==
          std::vector<std::string>{run.eventIds[3], run.eventIds[4]});
  }
  SUBCASE("it holds nothing of this host: everything after the cursor is sent") {
    CHECK(run.deliver(std::make_unique<PositionKeepingDestination>(), 5) == run.eventIds);
  }
  SUBCASE(
      "its last record is not in the ledger (restored from an older copy): the waiting "
      "records not newer than it are taken as delivered") {
    auto destination = std::make_unique<PositionKeepingDestination>();
    Record newer = engineRecord("gone", "start", kStart + 3 * kSecond + 500);
    destination->last = chainedLine(newer, kGenesisHash).line;
    CHECK(run.deliver(std::move(destination), 1) == std::vector<std::string>{run.eventIds[4]});
  }
}

}  // namespace
}  // namespace zastava
