// The verifier on a ledger the Recorder and Sealer wrote, on records of schema version 6, on
// input it cannot use, and what it must never do: write into the data directory.
#include <doctest/doctest.h>

#include <chrono>
#include <string>
#include <vector>

#include "buffer/ledger_verifier.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "ledger_test_util.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;
using namespace ledger_testing;
using testing::kSecond;
using testing::kStart;

TEST_CASE("a ledger written by the Recorder, sealed by the Sealer, verifies with its seed") {
  using namespace std::chrono_literals;
  testing::TempDir tmp;
  const fs::path dataDir = tmp.path() / "data";
  ManualClock clock{kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, clock};
  auto run = [&](int records) {
    RecorderOptions options;
    options.dataDirectory = dataDir;
    options.sealInterval = 60s;
    auto recorder = Recorder::open(options, clock, metrics, health);
    REQUIRE_MESSAGE(recorder.ok(), (recorder.ok() ? std::string() : recorder.error().message));
    for (int i = 0; i < records; ++i) {
      (*recorder)->submit(testing::engineRecord("c" + std::to_string(i), "start", clock.now() + i));
    }
    (*recorder)->flush();
    (*recorder)->stop();
    clock.advance(1s);
  };
  run(5);
  run(3);
  run(0);
  auto seeds = listSeedFiles(dataDir);
  REQUIRE(seeds.ok());
  REQUIRE(seeds->size() == 1);
  auto report = verifyLedger({dataDir, *seeds});
  REQUIRE(report.ok());
  INFO(describe(*report));
  CHECK(report->valid());
  CHECK(report->segments == 3);
  CHECK(report->seals == 3);
  CHECK(report->sealsChecked == 3);
  CHECK(report->records == 1 + 5 + 1 + 3 + 1 + 1);

  SUBCASE("the key file lost: a new key, and the verifier says so") {
    fs::remove(dataDir / kSealKeyFileName);
    run(1);
    report = verifyLedger({dataDir, *seeds});
    REQUIRE(report.ok());
    INFO(describe(*report));
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message.starts_with("sealing key lost"));
    CHECK(hasFinding(report->notices, "1 seal of key"));
  }
  SUBCASE("the key file replaced by an older copy") {
    const std::string atEpoch3 = testing::readFile(dataDir / kSealKeyFileName);
    run(1);
    run(1);
    std::ofstream(dataDir / kSealKeyFileName, std::ios::trunc) << atEpoch3;
    report = verifyLedger({dataDir, *seeds});
    REQUIRE(report.ok());
    INFO(describe(*report));
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message ==
          "key file at epoch 3 is behind the ledger's last seal (epoch 4): it was replaced by an "
          "older copy");
  }
}

TEST_CASE("records of schema version 6 carry their own hash; the chain runs through them") {
  testing::TempDir tmp;
  const std::string body = R"({"schema":{"name":"zastava.runtime-event","version":6},)"
                           R"("eventId":"e1","kind":"container.start","source":"stream",)"
                           R"("time":"2026-11-22T14:34:47.782735455Z","prevHash":")" +
                           std::string(kGenesisHash) + "\"}";
  const std::string own = sha256Hex(body);
  Line old{body.substr(0, body.size() - 1) + R"(,"hash":")" + own + "\"}", "e1", "container.start",
           "stream", kStart};
  Record record = testing::engineRecord("c0ffee", "die", kStart + kSecond);
  ChainedLine chained = chainedLine(record, own);
  std::vector<Line> lines{old, {chained.line, record.eventId, record.kind, "stream", kStart}};
  SUBCASE("intact") {
    writeSegments(tmp.path(), lines, {});
    writeDatabase(tmp.path(), lines, chained.hash);
    auto report = verifyLedger({tmp.path(), {}});
    REQUIRE(report.ok());
    INFO(describe(*report));
    CHECK(report->valid());
  }
  SUBCASE("edited in both NDJSON and SQLite, its own hash kept") {
    lines[0].text = replaced(lines[0].text, "container.start", "container.stop");
    writeSegments(tmp.path(), lines, {});
    writeDatabase(tmp.path(), lines, chained.hash);
    auto report = verifyLedger({tmp.path(), {}});
    REQUIRE(report.ok());
    REQUIRE(report->problems.size() == 1);
    CHECK(report->problems[0].message.find("do not hash to its own \"hash\" key") !=
          std::string::npos);
  }
}

TEST_CASE("a line that is not a record, and segments without a database") {
  Fixture f;
  std::vector<Line> ndjson = f.lines();
  ndjson.insert(ndjson.begin() + 3, Line{"hello", "", "", "", 0});
  writeSegments(f.dir(), ndjson, f.segmentStarts);
  const LedgerReport report = f.verify(false);
  INFO(describe(report));
  REQUIRE_FALSE(report.valid());
  CHECK(report.problems[0].line == 4);
  CHECK(report.problems[0].message.starts_with("not a record"));
  CHECK(report.problems.back().file == kDatabaseFileName);
  CHECK(report.problems.back().message.starts_with("missing"));
}

TEST_CASE("input that cannot be used is an error, not a verdict") {
  Fixture f;
  SUBCASE("no such directory") {
    auto report = verifyLedger({f.dir() / "nope", {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kNotFound);
  }
  SUBCASE("nothing to read") {
    auto report = verifyLedger({f.dir(), {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kNotFound);
    CHECK(report.error().message.starts_with("nothing to read"));
  }
  SUBCASE("a bad seed file") {
    f.write(f.lines());
    const fs::path bad = f.seeds.path() / "seed";
    std::ofstream(bad) << "zastava-seal-seed v1 0123456789abcdef nothex\n";
    auto report = verifyLedger({f.dir(), {bad}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kMalformed);
    CHECK(report.error().message.find(bad.string()) != std::string::npos);
  }
  SUBCASE("a seed file that does not exist") {
    f.write(f.lines());
    auto report = verifyLedger({f.dir(), {f.seeds.path() / "none"}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().message.find("--seal-key") != std::string::npos);
  }
  SUBCASE("a database that is not one") {
    writeSegments(f.dir(), f.lines(), f.segmentStarts);
    std::ofstream(f.dir() / kDatabaseFileName) << "not a database, of course";
    auto report = verifyLedger({f.dir(), {}});
    REQUIRE_FALSE(report.ok());
    CHECK(report.error().code == ErrorCode::kIo);
    CHECK(report.error().message.find((f.dir() / kDatabaseFileName).string()) != std::string::npos);
  }
}

TEST_CASE("the data directory is never written") {
  Fixture f;
  f.write(f.lines());
  std::vector<std::string> before;
  for (const auto& entry : fs::recursive_directory_iterator(f.dir())) {
    before.push_back(entry.path().string() + " " +
                     std::to_string(fs::last_write_time(entry).time_since_epoch().count()));
  }
  CHECK(f.verify(true).valid());
  std::vector<std::string> after;
  for (const auto& entry : fs::recursive_directory_iterator(f.dir())) {
    after.push_back(entry.path().string() + " " +
                    std::to_string(fs::last_write_time(entry).time_since_epoch().count()));
  }
  std::sort(before.begin(), before.end());
  std::sort(after.begin(), after.end());
  CHECK(before == after);
}

}  // namespace
}  // namespace zastava
