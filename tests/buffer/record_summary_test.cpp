#include "buffer/record_summary.h"

#include <doctest/doctest.h>

#include "buffer/record.h"
#include "buffer_test_util.h"

namespace zastava {
namespace {

// The summary of the line the Recorder would write for `record`.
RecordSummary summaryOf(const Record& record) {
  auto summary = summarizeRecord(chainedLine(record, kGenesisHash).line);
  REQUIRE(summary.ok());
  return *summary;
}

TEST_CASE("an inspect record: time, source, kind, container, state, failed posture checks") {
  Record record = testing::engineRecord("8c34aa", "start", testing::kStart);
  record.kind = std::string(kInspectKind);
  record.action.clear();
  record.timeNano = 0;
  record.attributes.clear();
  record.completes = record.eventId;
  record.container.state = "running";
  record.container.security = std::make_shared<SecurityPosture>();
  auto findings = std::make_shared<PostureFindings>();
  findings->checks = {
      {"5.4", "capabilities", Severity::kHigh, CheckResult::kFailed, "CapAdd=CAP_NET_ADMIN"},
      {"5.5", "privileged", Severity::kCritical, CheckResult::kFailed, "Privileged=true"},
      {"5.10", "host network", Severity::kCritical, CheckResult::kPassed, ""},
      {"5.13", "read-only root", Severity::kMedium, CheckResult::kFailed, "ReadonlyRootfs=false",
       /*waived=*/true}};
  findings->waiver = "zastava.posture.ignore=5.13";
  record.container.posture = findings;
  const RecordSummary summary = summaryOf(record);
  CHECK(summary.time == testing::kStart);
  CHECK(summary.source == "stream");
  CHECK(summary.kind == "container.inspect");
  CHECK(summary.containerId == "8c34aa");
  CHECK(summary.containerName == "web");
  CHECK(summary.state == "running");
  CHECK_FALSE(summary.exitCode);
  // A waived failure is not among them.
  CHECK(summary.failedChecks == std::vector<std::string>{"5.4", "5.5"});
  CHECK(summary.inspectError.empty());

  record.container.security.reset();
  record.container.posture.reset();
  record.inspectError = "the container was gone before it could be inspected";
  CHECK(summaryOf(record).inspectError == record.inspectError);
  CHECK(summaryOf(record).failedChecks.empty());
}

TEST_CASE("a death's exit code and a health status's detail") {
  Record die = testing::engineRecord("8c34aa", "die", testing::kStart);
  die.container.state = "exited";
  die.container.exitCode = 3;
  CHECK(summaryOf(die).exitCode == 3);
  Record health = testing::engineRecord("8c34aa", "health_status", testing::kStart);
  health.actionDetail = "unhealthy";
  CHECK(summaryOf(health).actionDetail == "unhealthy");
  CHECK(summaryOf(health).failedChecks.empty());
}

TEST_CASE("evidence and gap records say what they are about") {
  Record evidence = testing::engineRecord("8c34aa", "start", testing::kStart);
  evidence.kind = std::string(kEvidenceKind);
  evidence.source = RecordSource::kReplay;
  evidence.evidence = EvidenceFacts{};
  evidence.evidence->scan = EvidenceScan::kRescan;
  evidence.evidence->status = EvidenceStatus::kExited;
  evidence.evidence->reason = "gone";
  const RecordSummary scanned = summaryOf(evidence);
  CHECK(scanned.source == "replay");
  CHECK(scanned.evidenceScan == "rescan");
  CHECK(scanned.evidenceStatus == "exited");

  const Record gap =
      gapRecord(GapFacts{testing::kStart, testing::kStart + testing::kSecond,
                         "the engine restarted", std::nullopt},
                testing::kStart + 2 * testing::kSecond, testing::kStart + 2 * testing::kSecond);
  const RecordSummary summary = summaryOf(gap);
  CHECK(summary.kind == "agent.gap");
  CHECK(summary.containerId.empty());
  CHECK(summary.gapFrom == testing::kStart);
  CHECK(summary.gapTo == testing::kStart + testing::kSecond);
  CHECK(summary.gapReason == "the engine restarted");
}

TEST_CASE("seal and seal-key records name their key, epoch and what happened") {
  const RecordSummary seal = summaryOf(
      sealRecord(SealFacts{"3f2a9c0d1e4b5a69", 41, 17, std::string(64, 'a'), std::string(64, 'b')},
                 testing::kStart));
  CHECK(seal.kind == "agent.seal");
  CHECK(seal.source == "agent");
  CHECK(seal.sealKeyId == "3f2a9c0d1e4b5a69");
  CHECK(seal.sealEpoch == 41);
  CHECK(seal.sealRecords == 17);
  CHECK(seal.sealKeyChange.empty());
  const RecordSummary key = summaryOf(
      sealKeyRecord(SealKeyFacts{"3f2a9c0d1e4b5a69", 9, SealKeyChange::kRewound, "an older copy"},
                    testing::kStart));
  CHECK(key.kind == "agent.seal-key");
  CHECK(key.sealEpoch == 9);
  CHECK(key.sealKeyChange == "rewound");
  CHECK(key.sealKeyReason == "an older copy");
}

TEST_CASE("a line that is not a record is kMalformed, saying why") {
  for (const char* line : {"", "{\"kind\":", "[1,2]", "{\"kind\":\"container.start\"}",
                           "{\"time\":\"yesterday\",\"source\":\"stream\",\"kind\":\"x\"}"}) {
    CAPTURE(line);
    auto summary = summarizeRecord(line);
    REQUIRE_FALSE(summary.ok());
    CHECK(summary.error().code == ErrorCode::kMalformed);
    CHECK_FALSE(summary.error().message.empty());
  }
}

}  // namespace
}  // namespace zastava
