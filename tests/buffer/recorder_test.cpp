#include "buffer/recorder.h"

#include <doctest/doctest.h>
#include <sys/resource.h>

#include <chrono>
#include <csignal>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "buffer/commit_observer.h"
#include "buffer/sqlite_store.h"
#include "buffer_test_util.h"
#include "common/sha256.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;
using testing::allSegmentLines;
using testing::engineRecord;
using testing::kStart;
using testing::metricValue;

struct Fixture {
  testing::TempDir tmp;
  std::filesystem::path dataDir = tmp.path() / "data";
  std::filesystem::path segmentDir = dataDir / "runtime-events";
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};

  std::unique_ptr<Recorder> open(std::size_t queueCapacity = 65536, std::size_t maxBatch = 4096,
                                 std::size_t failingQueueCapacity = 65536) {
    RecorderOptions options;
    options.dataDirectory = dataDir;
    options.queueCapacity = queueCapacity;
    options.failingQueueCapacity = failingQueueCapacity;
    options.maxBatch = maxBatch;
    auto recorder = Recorder::open(options, clock, metrics, health);
    REQUIRE_MESSAGE(recorder.ok(), (recorder.ok() ? "" : recorder.error().message));
    return std::move(*recorder);
  }

  std::vector<std::string> storedLines() {
    auto store = SqliteStore::open(dataDir / "zastava-agent.db");
    REQUIRE(store.ok());
    auto lines = (*store)->recordLines();
    REQUIRE(lines.ok());
    return *lines;
  }
};

// True when every line links to the previous line (its prevHash is the SHA-256 of that line),
// from the genesis.
bool chainVerifies(const std::vector<std::string>& lines) {
  std::string previous(kGenesisHash);
  for (const std::string& line : lines) {
    const auto parsed = nlohmann::json::parse(line, nullptr, false);
    if (parsed.is_discarded() || parsed["prevHash"] != previous) return false;
    previous = sha256Hex(line);
  }
  return true;
}

// Polls `condition` for up to ~20 s; the tests assert on the outcome, never on the time.
template <typename Condition>
bool eventually(Condition condition) {
  for (int i = 0; i < 4000; ++i) {
    if (condition()) return true;
    std::this_thread::sleep_for(5ms);
  }
  return condition();
}

bool writerThreadRunning() { return testing::threadsNamed("zastava-writer") == 1; }

TEST_CASE("submitted records end up in SQLite and NDJSON, identical, in order, chained") {
  Fixture f;
  auto recorder = f.open();
  CHECK(eventually(writerThreadRunning));
  constexpr int kCount = 300;
  for (int i = 0; i < kCount; ++i) {
    CHECK(recorder->submit(engineRecord("c" + std::to_string(i % 7), "start", kStart + i)));
    if (i % 50 == 0) CHECK(recorder->submit(engineRecord("c0", "start", kStart)));  // duplicate
  }
  Record reconcile = engineRecord("c1", "die", kStart + 10 * kCount);
  reconcile.source = RecordSource::kReconcile;
  CHECK(recorder->submit(reconcile));
  recorder->flush();
  CHECK(recorder->cursor().timeNano == kStart + kCount - 1);
  CHECK(metricValue(f.metrics, "zastava_agent_events_buffered") == kCount + 1);
  CHECK(metricValue(f.metrics,
                    R"(zastava_agent_events_total{kind="container.start",source="stream"})") ==
        kCount);
  CHECK(metricValue(f.metrics, "zastava_agent_duplicates_suppressed_total") == 6);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_writable") == 1);
  recorder->stop();
  recorder->stop();
  CHECK_FALSE(recorder->submit(engineRecord("c9", "start", kStart)));

  const auto ndjson = allSegmentLines(f.segmentDir);
  CHECK(ndjson.size() == kCount + 1);
  CHECK(ndjson == f.storedLines());
  CHECK(chainVerifies(ndjson));
  CHECK(testing::fileMode(f.dataDir / "zastava-agent.db") == 0600);
  CHECK(testing::fileMode(f.dataDir) == 0750);
  CHECK(testing::fileMode(f.segmentDir) == 0750);
}

// Adds up what the writer tells it, and checks each time that the lines are in NDJSON already.
class CountingObserver final : public CommitObserver {
 public:
  explicit CountingObserver(std::filesystem::path segmentDir)
      : segmentDir_(std::move(segmentDir)) {}
  void recordsCommitted(std::size_t records, std::uint64_t bytes) override {
    std::lock_guard lock(mu_);
    records_ += records;
    bytes_ += bytes;
    if (records == 0) toldOfNothing_ = true;
    if (allSegmentLines(segmentDir_).size() < records_) toldEarly_ = true;
  }
  std::size_t records() {
    std::lock_guard lock(mu_);
    return records_;
  }
  std::uint64_t bytes() {
    std::lock_guard lock(mu_);
    return bytes_;
  }
  bool toldEarly() {
    std::lock_guard lock(mu_);
    return toldEarly_;
  }
  bool toldOfNothing() {
    std::lock_guard lock(mu_);
    return toldOfNothing_;
  }

 private:
  const std::filesystem::path segmentDir_;
  std::mutex mu_;
  std::size_t records_ = 0;     // guarded by mu_
  std::uint64_t bytes_ = 0;     // guarded by mu_
  bool toldEarly_ = false;      // guarded by mu_
  bool toldOfNothing_ = false;  // guarded by mu_
};

TEST_CASE("the commit observer is told of new records once they are durable, not of duplicates") {
  Fixture f;
  CountingObserver observer(f.segmentDir);
  RecorderOptions options;
  options.dataDirectory = f.dataDir;
  options.commitObserver = &observer;
  auto recorder = Recorder::open(options, f.clock, f.metrics, f.health);
  REQUIRE(recorder.ok());
  for (int i = 0; i < 20; ++i) {
    CHECK((*recorder)->submit(engineRecord("c" + std::to_string(i), "start", kStart + i)));
  }
  (*recorder)->flush();
  CHECK((*recorder)->submit(engineRecord("c0", "start", kStart)));  // a duplicate alone
  (*recorder)->stop();

  const auto lines = allSegmentLines(f.segmentDir);
  REQUIRE(lines.size() == 20);
  std::uint64_t bytes = 0;
  for (const auto& line : lines) bytes += line.size() + 1;
  CHECK(observer.records() == 20);
  CHECK(observer.bytes() == bytes);
  CHECK_FALSE(observer.toldEarly());
  CHECK_FALSE(observer.toldOfNothing());
}

TEST_CASE("the chain and cursor continue in new segments after a restart") {
  Fixture f;
  {
    auto recorder = f.open();
    recorder->submit(engineRecord("c1", "start", kStart));
    recorder->flush();
  }
  f.clock.advance(2s);
  auto recorder = f.open();
  CHECK(recorder->cursor().timeNano == kStart);
  recorder->submit(engineRecord("c1", "start", kStart));  // a replayed duplicate
  recorder->submit(engineRecord("c1", "die", kStart + 1));
  recorder->stop();
  CHECK(testing::segmentFiles(f.segmentDir).size() == 2);
  const auto ndjson = allSegmentLines(f.segmentDir);
  CHECK(ndjson.size() == 2);
  CHECK(chainVerifies(ndjson));
  CHECK(ndjson == f.storedLines());
}

TEST_CASE("the last engine events committed are known at the next start, in commit order") {
  Fixture f;
  std::vector<std::string> engineIds;
  {
    auto recorder = f.open();
    CHECK(recorder->recentEngineEventsAtOpen().empty());
    const int count = static_cast<int>(kRecentEngineEvents) + 10;
    for (int i = 0; i < count; ++i) {
      // Commit order is not time order: the engine delivers some events late.
      Record record = engineRecord("c" + std::to_string(i % 5), "start", kStart + (i ^ 1));
      engineIds.push_back(record.eventId);
      CHECK(recorder->submit(std::move(record)));
      Record reconciled = engineRecord("c9", "die", kStart + count + i);
      reconciled.source = RecordSource::kReconcile;
      CHECK(recorder->submit(std::move(reconciled)));
    }
  }
  auto recorder = f.open();
  const std::vector<std::string> expected(engineIds.end() - kRecentEngineEvents, engineIds.end());
  CHECK(recorder->recentEngineEventsAtOpen() == expected);
}

TEST_CASE("records only SQLite holds are appended to NDJSON at the next start") {
  Fixture f;
  {
    auto recorder = f.open();
    for (int i = 0; i < 3; ++i) recorder->submit(engineRecord("c1", "start", kStart + i));
    recorder->flush();
  }
  const auto files = testing::segmentFiles(f.segmentDir);
  REQUIRE(files.size() == 1);
  const auto lines = allSegmentLines(f.segmentDir);
  {
    std::ofstream torn(files[0], std::ios::binary | std::ios::trunc);
    torn << lines[0] << "\n" << lines[1].substr(0, 20);  // a crash mid-write
  }
  auto recorder = f.open();
  recorder->stop();
  CHECK(testing::readFile(files[0]) == lines[0] + "\n");
  CHECK(allSegmentLines(f.segmentDir) == lines);
  CHECK(chainVerifies(allSegmentLines(f.segmentDir)));
}

TEST_CASE("a failing disk degrades health, queues, refuses beyond capacity with a gap record") {
  Fixture f;
  f.health.setInventoryDone();
  f.health.setEngineReachable(true);
  auto recorder = f.open(/*queueCapacity=*/2, /*maxBatch=*/4, /*failingQueueCapacity=*/4);
  for (int i = 0; i < 5; ++i) {
    REQUIRE(recorder->submit(engineRecord("c1", "start", kStart + i)));
    recorder->flush();
  }
  REQUIRE(f.health.readiness().ok);

  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 1024;  // below both the WAL and the NDJSON segment: every append fails
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);

  REQUIRE(recorder->submit(engineRecord("c1", "die", kStart + 5)));
  // The writer is the only thread waiting on the clock: idle, it waits 1 s for work; failing, it
  // retries after 100 ms, then twice as long each time. No REQUIRE before the limit is restored.
  const auto writerWaits = [&](std::chrono::nanoseconds wait) {
    return f.clock.awaitWaits(
        [wait](const auto& left) { return left.size() == 1 && left.front() == wait; });
  };
  const bool firstRetry = writerWaits(100ms);
  const bool degraded = !f.health.readiness().ok;
  f.clock.advance(100ms);
  const bool secondRetry = writerWaits(200ms);
  f.clock.advance(200ms);
  const bool thirdRetry = writerWaits(400ms);
  recorder->flush();  // returns while failing
  int accepted = 0;
  for (int i = 6; i < 11; ++i)
    accepted += recorder->submit(engineRecord("c1", "start", kStart + i));
  const double writableWhileFailing = metricValue(f.metrics, "zastava_agent_buffer_writable");

  REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
  std::signal(SIGXFSZ, previous);

  CHECK(firstRetry);
  CHECK(secondRetry);
  CHECK(thirdRetry);
  CHECK(degraded);
  CHECK(writableWhileFailing == 0);
  CHECK(accepted == 4);
  f.clock.advance(400ms);  // the next retry succeeds
  CHECK(writerWaits(1s));  // idle again
  CHECK(f.health.readiness().ok);
  CHECK(metricValue(f.metrics, R"(zastava_agent_events_dropped_total{reason="queue_full"})") == 1);
  recorder->flush();
  recorder->stop();
  const auto ndjson = allSegmentLines(f.segmentDir);
  REQUIRE(ndjson.size() == 11);  // the 10 accepted, then the gap of the one refused
  CHECK(ndjson == f.storedLines());
  CHECK(chainVerifies(ndjson));
  const auto gap = nlohmann::json::parse(ndjson.back());
  CHECK(gap["kind"] == "agent.gap");
  CHECK(gap["gap"]["fromTimeNano"] == kStart + 10);
  CHECK(gap["gap"]["toTimeNano"] == kStart + 10);
  const std::string reason = gap["gap"]["reason"];
  CHECK(reason.find("1 record refused while the buffer was not writable (") == 0);
  CHECK(metricValue(f.metrics, "zastava_agent_gaps_total") == 1);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_writable") == 1);
}

}  // namespace
}  // namespace zastava
