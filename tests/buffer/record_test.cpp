#include "buffer/record.h"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "buffer_test_util.h"
#include "common/sha256.h"

namespace zastava {
namespace {

Record sampleRecord() {
  Record record;
  record.eventId = "0123456789abcdef0123456789abcdef";
  record.kind = "container.health_status";
  record.source = RecordSource::kStream;
  record.time = 1795358087782735455;
  record.timeNano = 1795358087782735455;
  record.observedAt = 1795358087800000000;
  record.action = "health_status";
  record.actionDetail = "healthy";
  record.container.id = "abc";
  record.container.name = "web";
  record.container.image = "busybox:1";
  record.container.state = "running";
  record.container.pid = 42;
  record.container.restartCount = 0;
  record.container.oomKilled = false;
  record.container.startedAt = "2026-11-22T14:00:00.123456789Z";
  record.container.labels = {{"a\"q", "line1\nline2"}, {"uni", "\u017elu\u0165 \U0001F680"}};
  record.attributes = {{"bad", "\xff\xfe ok"}, {"ctl", std::string("t\tb\\\x01", 5)}};
  return record;
}

const std::string kSampleLine =
    R"({"schema":{"name":"zastava.runtime-event","version":9},)"
    R"("eventId":"0123456789abcdef0123456789abcdef","kind":"container.health_status",)"
    R"("source":"stream","time":"2026-11-22T14:34:47.782735455Z",)"
    R"("observedAt":"2026-11-22T14:34:47.800000000Z",)"
    R"("actionDetail":"healthy","container":{"id":"abc","name":"web","image":"busybox:1",)"
    R"("state":"running","pid":42,"restartCount":0,"oomKilled":false,)"
    R"("startedAt":"2026-11-22T14:00:00.123456789Z",)"
    R"("labels":{"a\"q":"line1\nline2","uni":")"
    "\xc5\xbelu\xc5\xa5 \xf0\x9f\x9a\x80"
    R"("}},"attributes":{"bad":")"
    "\xef\xbf\xbd\xef\xbf\xbd ok"
    R"(","ctl":"t\tb\\\u0001"},)"
    R"("prevHash":"0000000000000000000000000000000000000000000000000000000000000000"})";

std::string lineOf(const Record& record) { return chainedLine(record, kGenesisHash).line; }

TEST_CASE("chainedLine writes the fixed key order, omissions and escapes byte for byte") {
  CHECK(lineOf(sampleRecord()) == kSampleLine);
}

TEST_CASE("a record's hash is the SHA-256 of its line, which holds no hash of its own") {
  const ChainedLine chained = chainedLine(sampleRecord(), kGenesisHash);
  CHECK(chained.hash == sha256Hex(kSampleLine));
  CHECK(chained.line.find(R"("hash")") == std::string::npos);
  CHECK(chained.line.find('\n') == std::string::npos);
}

TEST_CASE("the engine's time, verb and observation are each written once") {
  const std::string line = lineOf(sampleRecord());
  CHECK(line.find("timeNano") == std::string::npos);     // `time` holds its nanoseconds
  CHECK(line.find(R"("action")") == std::string::npos);  // the kind says it
  Record inspect = sampleRecord();
  inspect.timeNano = 0;
  inspect.observedAt = inspect.time;  // no engine event: observed when it happened
  CHECK(lineOf(inspect).find("observedAt") == std::string::npos);
}

TEST_CASE("an evidence record names the process it read once: evidence.initPid, not pid") {
  Record record = sampleRecord();
  record.evidence.emplace().initPid = 42;
  const auto parsed = nlohmann::json::parse(lineOf(record));
  CHECK_FALSE(parsed["container"].contains("pid"));
  CHECK(parsed["evidence"]["initPid"] == 42);
}

TEST_CASE("a snapshot record leaves out everything unknown") {
  Record record;
  record.eventId = eventIdForSnapshot("abc", 1795358087800000000);
  record.kind = "container.snapshot";
  record.source = RecordSource::kSnapshot;
  record.time = 1795358087800000000;
  record.observedAt = 1795358087800000000;
  record.container.id = "abc";
  record.container.name = "";
  record.container.image = "img";
  CHECK(lineOf(record) ==
        R"({"schema":{"name":"zastava.runtime-event","version":9},)"
        R"("eventId":"2174671d490e1673cae0757c6f1f1d2b","kind":"container.snapshot",)"
        R"("source":"snapshot","time":"2026-11-22T14:34:47.800000000Z",)"
        R"("container":{"id":"abc","name":"","image":"img"},)"
        R"("prevHash":"0000000000000000000000000000000000000000000000000000000000000000"})");
}

TEST_CASE("posture findings: failed with what failed them, waived with the label, then ids") {
  Record record;
  record.eventId = eventIdForSnapshot("abc", 1795358087800000000);
  record.kind = "container.snapshot";
  record.source = RecordSource::kSnapshot;
  record.time = record.observedAt = 1795358087800000000;
  record.container.id = "abc";
  record.container.image = "img";
  auto findings = std::make_shared<PostureFindings>();
  findings->checks = {
      {"4.1", "Ensure a user", Severity::kMedium, CheckResult::kFailed, "User= (root)"},
      {"5.2", "Ensure AppArmor", Severity::kHigh, CheckResult::kNotApplicable, ""},
      {"5.5", "Ensure not privileged", Severity::kCritical, CheckResult::kPassed, ""},
      {"5.10", "Ensure no host network", Severity::kCritical, CheckResult::kFailed,
       "NetworkMode=host", /*waived=*/true},
      {"5.11", "Ensure memory", Severity::kLow, CheckResult::kPassed, "", /*waived=*/true}};
  findings->skipped = {"5.19"};
  findings->waiver = "zastava.posture.ignore=5.10,5.11";
  record.container.posture = findings;
  CHECK(lineOf(record).find(
            R"("container":{"id":"abc","name":"","image":"img","posture":{)"
            R"("benchmark":"CIS Docker Benchmark v1.6.0",)"
            R"("failed":[{"id":"4.1","severity":"medium","title":"Ensure a user",)"
            R"j("value":"User= (root)"}],)j"
            R"("waived":[{"id":"5.10","severity":"critical","title":"Ensure no host network",)"
            R"("result":"failed","value":"NetworkMode=host",)"
            R"("waiver":"zastava.posture.ignore=5.10,5.11"},)"
            R"({"id":"5.11","severity":"low","title":"Ensure memory","result":"passed",)"
            R"("waiver":"zastava.posture.ignore=5.10,5.11"}],)"
            R"("passed":["5.5"],"notApplicable":["5.2"],"skipped":["5.19"]}})") !=
        std::string::npos);
  // Without waivers or skips those keys are left out; the lists are always there.
  findings->checks = {findings->checks[0]};
  findings->skipped.clear();
  findings->waiver.clear();
  CHECK(lineOf(record).find(R"(}],"passed":[],"notApplicable":[]}})") != std::string::npos);
}

TEST_CASE("engineAction follows actionDetail when the decoder mapped the action, else absent") {
  // Podman's `remove` of a container (tests/fixtures/engine/podman-4.3): a destroy whose id is
  // made of the Action as sent.
  Record remove;
  remove.eventId = eventIdForEngineEvent("container", "remove", "abc", 1795358087782735455);
  remove.kind = "container.destroy";
  remove.time = 1795358087782735455;
  remove.timeNano = 1795358087782735455;
  remove.observedAt = 1795358087800000000;
  remove.action = "destroy";
  remove.engineAction = "remove";
  remove.container.id = "abc";
  remove.container.name = "web";
  remove.container.image = "busybox:1";
  remove.container.state = "removed";
  CHECK(lineOf(remove) ==
        R"({"schema":{"name":"zastava.runtime-event","version":9},)"
        R"("eventId":"c1ecfcf9784541b86256260968fb5eb8","kind":"container.destroy",)"
        R"("source":"stream","time":"2026-11-22T14:34:47.782735455Z",)"
        R"("observedAt":"2026-11-22T14:34:47.800000000Z","engineAction":"remove",)"
        R"("container":{"id":"abc","name":"web","image":"busybox:1","state":"removed"},)"
        R"("prevHash":"0000000000000000000000000000000000000000000000000000000000000000"})");

  // Podman's health_status with its status in HealthStatus: after the detail.
  Record health = sampleRecord();
  health.engineAction = "health_status";
  std::string expected = kSampleLine;
  const std::string detail = R"("actionDetail":"healthy",)";
  expected.insert(expected.find(detail) + detail.size(), R"("engineAction":"health_status",)");
  CHECK(lineOf(health) == expected);

  // Docker's own "health_status: healthy", nothing mapped: no key at all (kSampleLine).
  CHECK(kSampleLine.find("engineAction") == std::string::npos);
}

TEST_CASE("the line parses back as JSON with the same values") {
  const auto parsed = nlohmann::json::parse(chainedLine(sampleRecord(), kGenesisHash).line);
  CHECK(parsed["container"]["labels"]["a\"q"] == "line1\nline2");
  CHECK(parsed["time"] == "2026-11-22T14:34:47.782735455Z");
  CHECK(parsed["attributes"]["bad"] == "\xef\xbf\xbd\xef\xbf\xbd ok");
}

TEST_CASE("eventIds are deterministic and depend on every input") {
  const std::string id = eventIdForEngineEvent("container", "start", "abc", 1795358087782735455);
  CHECK(id == "b32447a8f5c40420aeb6ac1512dde6c1");
  CHECK(eventIdForEngineEvent("container", "start", "abc", 1795358087782735455) == id);
  CHECK(eventIdForEngineEvent("container", "start", "abc", 1795358087782735456) != id);
  CHECK(eventIdForEngineEvent("container", "stop", "abc", 1795358087782735455) != id);
  CHECK(eventIdForEngineEvent("container", "start", "abd", 1795358087782735455) != id);
  CHECK(eventIdForEngineEvent("network", "start", "abc", 1795358087782735455) != id);
  CHECK(eventIdForSnapshot("abc", 1795358087800000000) == "2174671d490e1673cae0757c6f1f1d2b");
  CHECK(eventIdForSnapshot("abc", 1795358087800000001) != "2174671d490e1673cae0757c6f1f1d2b");
}

TEST_CASE("a chain of records verifies, and any changed byte breaks it") {
  std::string prev(kGenesisHash);
  std::vector<std::string> lines;
  for (int i = 0; i < 3; ++i) {
    ChainedLine chained =
        chainedLine(testing::engineRecord("abc", "start", testing::kStart + i), prev);
    prev = chained.hash;
    lines.push_back(std::move(chained.line));
  }
  auto verify = [](const std::vector<std::string>& chain) {
    std::string expectedPrev(kGenesisHash);
    for (const std::string& line : chain) {
      if (nlohmann::json::parse(line)["prevHash"] != expectedPrev) return false;
      expectedPrev = sha256Hex(line);
    }
    return true;
  };
  CHECK(verify(lines));
  auto tampered = lines;
  tampered[1].replace(tampered[1].find("web"), 3, "wob");
  CHECK_FALSE(verify(tampered));
  auto reordered = lines;
  std::swap(reordered[1], reordered[2]);
  CHECK_FALSE(verify(reordered));
}

}  // namespace
}  // namespace zastava
