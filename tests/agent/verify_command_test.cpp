#include "agent/verify_command.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "buffer/record.h"
#include "buffer/recorder.h"
#include "buffer/segment_writer.h"
#include "buffer/sqlite_store.h"
#include "config_test_util.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;
using testing::contains;

constexpr UnixNanos kTime = 1'796'533'200'000'000'000;  // 2026-12-06T05:00:00Z

Result<VerifyCommandLine> parseVerify(std::vector<std::string> args, const Environment& env = {}) {
  std::vector<const char*> argv = {"verify"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parseVerifyCommandLine(static_cast<int>(argv.size()), argv.data(), env);
}

int runVerify(std::vector<std::string> args) {
  std::vector<const char*> argv = {"verify"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return runVerifyCommand(static_cast<int>(argv.size()), argv.data(), {});
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "zastava-verify-test-XXXXXX").string();
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

// A data directory with one record, committed to SQLite and written to a segment.
void writeOneRecord(const fs::path& dataDir, bool withDatabase) {
  Record record = gapRecord(GapFacts{kTime, kTime + 1, "test", std::nullopt}, kTime, kTime);
  std::string line = chainedLine(record, kGenesisHash).line;
  if (withDatabase) {
    auto store = SqliteStore::open(dataDir / kDatabaseFileName);
    REQUIRE(store.ok());
    auto committed = (*store)->commit(std::vector<Record>{record});
    REQUIRE(committed.ok());
    REQUIRE(committed->records.size() == 1);
    line = committed->records[0].line;
  }
  fs::create_directories(dataDir / "runtime-events");
  std::ofstream(dataDir / "runtime-events" / segmentFileName(kTime, 1)) << line << "\n";
}

TEST_CASE("verify: the data directory defaults to the agent's, --seal-key repeats") {
  auto parsed = parseVerify({}, {{"ZASTAVA_AGENT__DataDirectory", "/srv/zastava"}});
  REQUIRE(parsed.ok());
  CHECK(parsed->options.dataDirectory == "/srv/zastava");
  CHECK(parsed->options.sealKeyFiles.empty());
  CHECK(parseVerify({})->options.dataDirectory == "/var/lib/zastava-agent");

  parsed = parseVerify({"--data-directory", "/copy", "--seal-key", "a", "--seal-key", "b"});
  REQUIRE(parsed.ok());
  CHECK(parsed->options.dataDirectory == "/copy");
  CHECK(parsed->options.sealKeyFiles == std::vector<fs::path>{"a", "b"});
}

TEST_CASE("verify: --help, and a bad argument named") {
  auto help = parseVerify({"--help"});
  REQUIRE(help.ok());
  REQUIRE(help->help);
  CHECK(contains(*help->help, "--seal-key"));
  CHECK(contains(*help->help, "--data-directory"));
  auto bad = parseVerify({"--sealkey", "x"});
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().code == ErrorCode::kInvalidArgument);
  CHECK(contains(bad.error().message, "--sealkey"));
  CHECK(runVerify({"--sealkey", "x"}) == kVerifyUnusable);
}

TEST_CASE("verify: exit 0 for a valid ledger, 1 for a tampered one, 2 for unusable input") {
  TempDir tmp;
  SUBCASE("valid") {
    writeOneRecord(tmp.path(), true);
    CHECK(runVerify({"--data-directory", tmp.path().string()}) == kVerifyValid);
  }
  SUBCASE("tampered: segments without their database") {
    writeOneRecord(tmp.path(), false);
    CHECK(runVerify({"--data-directory", tmp.path().string()}) == kVerifyTampered);
  }
  SUBCASE("no such directory") {
    CHECK(runVerify({"--data-directory", (tmp.path() / "nope").string()}) == kVerifyUnusable);
  }
  SUBCASE("nothing to read") {
    CHECK(runVerify({"--data-directory", tmp.path().string()}) == kVerifyUnusable);
  }
  SUBCASE("a bad seed file") {
    writeOneRecord(tmp.path(), true);
    const fs::path seed = tmp.path() / "seed";
    std::ofstream(seed) << "not a seed\n";
    CHECK(runVerify({"--data-directory", tmp.path().string(), "--seal-key", seed.string()}) ==
          kVerifyUnusable);
  }
}

TEST_CASE("verify: the report names each problem's file, line and eventId, the first first") {
  LedgerReport report;
  report.records = 3;
  report.segments = 1;
  report.sqliteRows = 3;
  report.seals = 2;
  report.sealsChecked = 1;
  report.sealsUnchecked = 1;
  report.sealKeys = {{"0123456789abcdef", 0, 1, 2, false}};
  report.firstTime = "2026-12-06T05:00:00.000000000Z";
  report.lastTime = "2026-12-06T05:01:00.000000000Z";
  report.notices = {{"", 0, 0, "", "2 seals of key 0123456789abcdef not checked"}};
  report.problems = {
      {"runtime-events/events-20261206T050000Z-000001.ndjson", 2, 0, "abc", "line edited"},
      {"zastava-agent.db", 0, 4, "", "not a record"},
      {"seal-key", 0, 0, "", "key file at epoch 1 is behind"}};
  std::FILE* out = std::tmpfile();
  REQUIRE(out != nullptr);
  printLedgerReport(report, LedgerVerifyOptions{"/data", {}}, out);
  std::rewind(out);
  std::string text(4096, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), out));
  std::fclose(out);
  CHECK(contains(text, "Ledger of /data\n"));
  CHECK(contains(text, "ledger: 3 records in 1 NDJSON segment; SQLite holds 3 rows"));
  CHECK(contains(text, "time: 2026-12-06T05:00:00.000000000Z .. 2026-12-06T05:01:00.000000000Z"));
  CHECK(contains(text, "seals: 2, 1 checked with a seed, 1 not checked"));
  CHECK(contains(text, "key 0123456789abcdef: 2 seals, epochs 0-1, not checked"));
  CHECK(contains(text, "  2 seals of key 0123456789abcdef not checked\n"));
  CHECK(contains(text,
                 "Problems (3), the first one first:\n"
                 "  runtime-events/events-20261206T050000Z-000001.ndjson:2 (eventId abc): "
                 "line edited\n"
                 "  zastava-agent.db rowid 4: not a record\n"
                 "  seal-key: key file at epoch 1 is behind\n"
                 "Tampered: 3 problems.\n"));
}

}  // namespace
}  // namespace zastava
