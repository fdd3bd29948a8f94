#include "agent/records_command.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>

#include "buffer/record.h"
#include "buffer/segment_writer.h"
#include "config_test_util.h"
#include "tests/fixture_files.h"

namespace zastava {
namespace {

using testing::contains;

constexpr UnixNanos kNow = 1'796'533'200'000'000'000;  // 2026-12-06T05:00:00Z
constexpr std::int64_t kSecond = 1'000'000'000;

Result<RecordsCommandLine> parseRecords(std::vector<std::string> args,
                                        const Environment& env = {}) {
  std::vector<const char*> argv = {"records"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  return parseRecordsCommandLine(static_cast<int>(argv.size()), argv.data(), env, kNow);
}

RecordSummary summary(std::string kind, std::string name, std::string id) {
  RecordSummary record;
  record.time = kNow;
  record.source = "stream";
  record.kind = std::move(kind);
  record.containerName = std::move(name);
  record.containerId = std::move(id);
  return record;
}

// A private directory holding a runtime-events/ segment, removed at the end.
class Ledger {
 public:
  Ledger() {
    std::string pattern = (std::filesystem::temp_directory_path() / "zastava-records-XXXXXX");
    dir_ = ::mkdtemp(pattern.data());
    std::filesystem::create_directory(dir_ / "runtime-events");
  }
  ~Ledger() { std::filesystem::remove_all(dir_); }
  Ledger(const Ledger&) = delete;
  Ledger& operator=(const Ledger&) = delete;
  const std::filesystem::path& dir() const { return dir_; }
  std::filesystem::path segment() const {
    return dir_ / "runtime-events" / segmentFileName(kNow, 1);
  }
  void write(const std::string& bytes) const {
    std::ofstream(segment(), std::ios::app | std::ios::binary) << bytes;
  }
  void write(const Record& record) {
    ChainedLine chained = chainedLine(record, prevHash_);
    prevHash_ = chained.hash;
    write(chained.line + "\n");
  }

 private:
  std::filesystem::path dir_;
  std::string prevHash_ = std::string(kGenesisHash);
};

Record containerRecord(const std::string& id, const std::string& name, const std::string& action,
                       UnixNanos time) {
  Record record;
  record.eventId = eventIdForEngineEvent("container", action, id, time);
  record.kind = "container." + action;
  record.time = time;
  record.timeNano = time;
  record.observedAt = time;
  record.action = action;
  record.container.id = id;
  record.container.name = name;
  record.container.image = "busybox:1";
  return record;
}

// What printRecords wrote to its two streams, and its exit code.
struct Printed {
  int code = -1;
  std::string out;
  std::string err;
};

std::string drain(std::FILE* file) {
  std::rewind(file);
  std::string text;
  for (int c = std::fgetc(file); c != EOF; c = std::fgetc(file))
    text.push_back(static_cast<char>(c));
  std::fclose(file);
  return text;
}

Printed print(const RecordsOptions& options) {
  std::FILE* out = std::tmpfile();
  std::FILE* err = std::tmpfile();
  Printed printed;
  printed.code = printRecords(options, out, err);
  printed.out = drain(out);
  printed.err = drain(err);
  return printed;
}

TEST_CASE("--since takes a UTC time, a date or a duration ago") {
  CHECK(*parseSince("2026-12-06T05:00:00Z", 0) == kNow);
  CHECK(*parseSince("2026-12-06T04:59:59.5Z", 0) == kNow - kSecond / 2);
  CHECK(*parseSince("2026-12-06", 0) == kNow - 5 * 3600 * kSecond);
  CHECK(*parseSince("90s", kNow) == kNow - 90 * kSecond);
  CHECK(*parseSince("15m", kNow) == kNow - 900 * kSecond);
  CHECK(*parseSince("2h", kNow) == kNow - 7200 * kSecond);
  CHECK(*parseSince("7d", kNow) == kNow - 7 * 86400 * kSecond);
  for (const char* bad : {"", "m", "-5m", "5w", "yesterday", "2026-12-06 05:00:00", "2999-01-01"}) {
    CAPTURE(bad);
    auto since = parseSince(bad, kNow);
    REQUIRE_FALSE(since.ok());
    CHECK(since.error().code == ErrorCode::kInvalidArgument);
    CHECK(contains(since.error().message, "--since"));
    CHECK(contains(since.error().message, "15m"));
  }
}

TEST_CASE("fuzz finding: a duration whose nanoseconds do not fit in 64 bits is refused") {
  // 666666666662h: count * 3600 * 1e9 overflowed (undefined behaviour) and gave some time.
  const std::string hours = testing::readFuzzFixture("fuzz_time-since-hours-overflow.txt");
  for (const std::string& bad :
       {hours, std::string("9223372036854775807s"), std::string("106752d")}) {
    CAPTURE(bad);
    auto since = parseSince(bad, kNow);
    REQUIRE_FALSE(since.ok());
    CHECK(since.error().code == ErrorCode::kInvalidArgument);
    CHECK(contains(since.error().message, "15m"));
  }
  CHECK(*parseSince("106751d", kNow) == kNow - 106751LL * 86400 * kSecond);
}

TEST_CASE("filters: kind in full or by action, container by name or id prefix, time") {
  const RecordSummary start = summary("container.start", "web", "8c34aa");
  RecordsOptions options;
  CHECK(recordMatches(start, options));
  options.kinds = {"die", "start"};
  CHECK(recordMatches(start, options));
  options.kinds = {"container.start"};
  CHECK(recordMatches(start, options));
  options.kinds = {"container.die"};
  CHECK_FALSE(recordMatches(start, options));
  options.kinds.clear();
  options.containers = {"8c3"};
  CHECK(recordMatches(start, options));
  options.containers = {"we"};
  CHECK_FALSE(recordMatches(start, options));
  options.containers = {"db", "web"};
  CHECK(recordMatches(start, options));
  options.since = kNow + 1;
  CHECK_FALSE(recordMatches(start, options));
  options.since = kNow;
  CHECK(recordMatches(start, options));
  options.containers = {"8c3"};
  CHECK_FALSE(recordMatches(summary("agent.gap", "", ""), options));
}

TEST_CASE("one readable line: time, source, kind, container, then what applies") {
  RecordSummary inspect = summary("container.inspect", "web", "8c34aa");
  inspect.state = "running";
  inspect.failedChecks = {"5.5", "5.32"};
  CHECK(formatRecordLine(inspect) ==
        "2026-12-06T05:00:00.000Z  stream     container.inspect        web                   "
        "running  posture failed: 5.5, 5.32");
  inspect.failedChecks.clear();
  inspect.inspectError = "the container was gone before it could be inspected";
  CHECK(contains(formatRecordLine(inspect),
                 "running  no inspect: the container was gone before it could be inspected"));
  RecordSummary die = summary("container.die", "", "8c34aa0123456789");
  die.source = "reconcile";
  die.state = "exited";
  die.exitCode = 137;
  CHECK(formatRecordLine(die) ==
        "2026-12-06T05:00:00.000Z  reconcile  container.die            8c34aa012345          "
        "exited  exit=137");
  RecordSummary evidence = summary("container.evidence", "web", "8c34aa");
  evidence.evidenceScan = "start";
  evidence.evidenceStatus = "complete";
  CHECK(
      contains(formatRecordLine(evidence), "web                   evidence complete (start scan)"));
  RecordSummary gap = summary("agent.gap", "", "");
  gap.gapFrom = kNow - kSecond;
  gap.gapTo = kNow;
  gap.gapReason = "the engine restarted";
  CHECK(contains(formatRecordLine(gap),
                 "agent.gap                -                     gap 2026-12-06T04:59:59.000Z .. "
                 "2026-12-06T05:00:00.000Z: the engine restarted"));
  RecordSummary seal = summary("agent.seal", "", "");
  seal.source = "agent";
  seal.sealKeyId = "3f2a9c0d1e4b5a69";
  seal.sealEpoch = 41;
  seal.sealRecords = 17;
  CHECK(contains(formatRecordLine(seal),
                 "agent.seal               -                     "
                 "key 3f2a9c0d1e4b5a69 epoch 41, 17 records"));
  seal.kind = "agent.seal-key";
  seal.sealKeyChange = "lost";
  seal.sealKeyReason = "the key file is missing";
  CHECK(contains(formatRecordLine(seal),
                 "key 3f2a9c0d1e4b5a69 lost, next epoch 41: the key file is missing"));
}

TEST_CASE("records: the data directory comes from the agent's setting, flags override it") {
  auto parsed = parseRecords({});
  REQUIRE(parsed.ok());
  CHECK(parsed->options.dataDirectory == "/var/lib/zastava-agent");
  CHECK_FALSE(parsed->options.follow);
  parsed = parseRecords({}, {{"ZASTAVA_AGENT__DataDirectory", "/srv/z"}});
  REQUIRE(parsed.ok());
  CHECK(parsed->options.dataDirectory == "/srv/z");
  parsed = parseRecords({"--data-directory", "/tmp/d", "-f", "--kind", "start", "--kind", "die",
                         "--container", "web", "--since", "10m", "--output", "json"},
                        {{"ZASTAVA_AGENT__DataDirectory", "/srv/z"}});
  REQUIRE(parsed.ok());
  CHECK(parsed->options.dataDirectory == "/tmp/d");
  CHECK(parsed->options.follow);
  CHECK(parsed->options.kinds == std::vector<std::string>{"start", "die"});
  CHECK(parsed->options.containers == std::vector<std::string>{"web"});
  CHECK(parsed->options.since == kNow - 600 * kSecond);
  CHECK(parsed->options.json);
  parsed = parseRecords({"--help"});
  REQUIRE(parsed.ok());
  REQUIRE(parsed->help);
  CHECK(contains(*parsed->help, "--follow"));
  CHECK(contains(*parsed->help, "--since"));
}

TEST_CASE("records: bad arguments and bad settings are errors naming them") {
  struct Case {
    std::vector<std::string> args;
    Environment env;
    std::string names;
  };
  for (const Case& c :
       {Case{{"--output", "yaml"}, {}, "--output"}, Case{{"--since", "soon"}, {}, "--since"},
        Case{{"--bogus"}, {}, "--bogus"}, Case{{"extra"}, {}, "extra"},
        Case{{}, {{"ZASTAVA_AGENT__Bogus", "1"}}, "ZASTAVA_AGENT__Bogus"}}) {
    CAPTURE(c.names);
    auto parsed = parseRecords(c.args, c.env);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
    CHECK(contains(parsed.error().message, c.names));
  }
}

TEST_CASE("records prints each record once, filtered, and says which lines are not records") {
  Ledger ledger;
  ledger.write(containerRecord("aaa111", "web", "create", kNow - 2 * kSecond));
  ledger.write(containerRecord("aaa111", "web", "start", kNow - kSecond));
  ledger.write("not json\n");
  ledger.write(containerRecord("bbb222", "db", "start", kNow));
  RecordsOptions options;
  options.dataDirectory = ledger.dir();
  Printed all = print(options);
  CHECK(all.code == 0);
  CHECK(testing::contains(all.out, "container.create"));
  CHECK(std::count(all.out.begin(), all.out.end(), '\n') == 3);
  CHECK(contains(all.err, ledger.segment().string() + ":3: skipped, not a JSON object"));

  options.kinds = {"start"};
  options.containers = {"web"};
  Printed filtered = print(options);
  CHECK(std::count(filtered.out.begin(), filtered.out.end(), '\n') == 1);
  CHECK(contains(filtered.out, "container.start          web"));

  options.json = true;
  Printed json = print(options);
  CHECK(json.out ==
        chainedLine(containerRecord("aaa111", "web", "start", kNow - kSecond),
                    chainedLine(containerRecord("aaa111", "web", "create", kNow - 2 * kSecond),
                                kGenesisHash)
                        .hash)
                .line +
            "\n");
}

TEST_CASE("records on a directory without a ledger: exit 1 and where to look") {
  RecordsOptions options;
  options.dataDirectory = "/nonexistent/zastava";
  Printed printed = print(options);
  CHECK(printed.code == 1);
  CHECK(printed.out.empty());
  CHECK(contains(printed.err, "/nonexistent/zastava/runtime-events"));
  CHECK(contains(printed.err, "--data-directory"));
}

}  // namespace
}  // namespace zastava
