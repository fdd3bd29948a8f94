// The Tracker on events and inspects captured from a real engine (tests/fixtures/engine).
#include "agent/tracker.h"

#include <doctest/doctest.h>

#include <set>
#include <vector>

#include "collectors/decoders.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using testing::fixtureLines;
using testing::readFixture;

const Redactor kRedactor;
constexpr UnixNanos kNow = 1'795'358'100'000'000'000;

std::vector<Record> recordLifecycle(Tracker& tracker) {
  std::vector<Record> records;
  for (const auto& line : fixtureLines("events-lifecycle.ndjson")) {
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    records.push_back(tracker.fromEvent(receivedEvent(*event, RecordSource::kStream, kNow)));
  }
  return records;
}

TEST_CASE("every captured event becomes one record with a distinct, repeatable id") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto records = recordLifecycle(tracker);
  REQUIRE(records.size() == 42);
  std::set<std::string> ids;
  for (const auto& record : records) ids.insert(record.eventId);
  CHECK(ids.size() == records.size());

  Tracker again(clock, kRedactor);
  auto replayed = recordLifecycle(again);
  for (std::size_t i = 0; i < records.size(); ++i) CHECK(replayed[i].eventId == records[i].eventId);
}

TEST_CASE("records carry kind, action, engine time and the state the event left") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto records = recordLifecycle(tracker);

  const Record& create = records[0];
  CHECK(create.kind == "container.create");
  CHECK(create.source == RecordSource::kStream);
  CHECK(create.timeNano > 0);
  CHECK(create.time == create.timeNano);
  CHECK(create.observedAt == kNow);
  CHECK(create.container.name == "col-life");
  CHECK(create.container.image == "zastava-test/busybox:1");
  CHECK(create.container.state == "created");

  CHECK(records[2].container.state == "paused");
  CHECK(records[3].container.state == "running");

  const Record& exec = records[4];
  CHECK(exec.kind == "container.exec_create");
  CHECK(exec.action == "exec_create");
  CHECK(exec.actionDetail == "true ");
  CHECK(exec.container.state == "running");

  const Record& rename = records[7];
  CHECK(rename.container.name == "col-life2");
  CHECK(rename.attributes.at("oldName") == "/col-life");

  const Record& killed = records[9];
  CHECK(killed.kind == "container.die");
  CHECK(killed.container.state == "exited");
  CHECK(killed.container.exitCode == 137);
  CHECK_FALSE(records[10].container.exitCode.has_value());  // started again

  const Record& exit3 = records[22];
  CHECK(exit3.container.name == "col-exit");
  CHECK(exit3.container.exitCode == 3);

  const Record& health = records[28];
  CHECK(health.kind == "container.health_status");
  CHECK(health.actionDetail == "healthy");

  CHECK(records[35].container.state == "removed");
}

TEST_CASE("an exec's exit code is not the container's") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto records = recordLifecycle(tracker);
  CHECK(records[6].kind == "container.exec_die");
  CHECK(records[6].attributes.at("exitCode") == "0");
  CHECK_FALSE(records[6].container.exitCode.has_value());
}

// Each fact once per record (docs/records.md): the labels on the create record, never again on
// the container's later events; attributes only with what the container block does not say.
TEST_CASE("labels are said once per container, and attributes only what nothing else says") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto records = recordLifecycle(tracker);
  const std::map<std::string, std::string> labels{{"zastava.fixture", "col"}};

  const Record& create = records[0];
  CHECK(create.container.labels == labels);
  CHECK(create.attributes.empty());  // image, name and the labels: all in `container`
  for (std::size_t i = 1; i < 9; ++i) {
    CAPTURE(records[i].kind);
    CHECK(records[i].container.labels.empty());
    CHECK_FALSE(records[i].attributes.contains("zastava.fixture"));
    CHECK_FALSE(records[i].attributes.contains("image"));
    CHECK_FALSE(records[i].attributes.contains("name"));
  }
  CHECK(records[4].attributes.contains("execID"));            // exec_create
  CHECK(records[7].attributes.at("oldName") == "/col-life");  // rename
  CHECK(records[8].attributes.at("signal") == "9");           // kill
  CHECK(records[9].kind == "container.die");
  CHECK(records[9].container.exitCode == 137);
  CHECK(records[9].attributes.empty());  // its exitCode is the container's
}

TEST_CASE("an inspect record without an answer does not repeat the create's labels") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto event = decodeEvent(fixtureLines("events-lifecycle.ndjson").front());
  REQUIRE(event.ok());
  const Record create = tracker.fromEvent(receivedEvent(*event, RecordSource::kStream, kNow));
  REQUIRE_FALSE(create.container.labels.empty());
  InspectAnswer answer;
  answer.request =
      InspectRequest{create.container.id, create.eventId, "create", RecordSource::kStream};
  answer.result = InspectResult::kGone;
  answer.problem = "the container was gone before it could be inspected";
  const Record inspect = tracker.inspected(answer);
  CHECK(inspect.container.name == create.container.name);
  CHECK(inspect.container.labels.empty());
}

TEST_CASE("a Podman create's own attributes are not taken for labels") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto event = decodeEvent(fixtureLines("podman-4.3/events-lifecycle.ndjson").front());
  REQUIRE(event.ok());
  REQUIRE(event->action == "create");
  const Record create = tracker.fromEvent(receivedEvent(*event, RecordSource::kStream, kNow));
  CHECK(create.container.labels == std::map<std::string, std::string>{{"zastava.fixture", "col"}});
  CHECK(create.attributes.contains("podId"));
  CHECK(create.attributes.contains("containerExitCode"));
}

TEST_CASE("destroyed containers are forgotten") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto records = recordLifecycle(tracker);
  CHECK(tracker.trackedCount() == 0);
}

TEST_CASE("an event is recorded from itself; the inspect's answer completes it in its own record") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto inspect = decodeContainerInspect(readFixture("inspect-running.json"));
  REQUIRE(inspect.ok());
  EngineEvent start;
  start.type = "container";
  start.action = start.rawAction = "start";
  start.actorId = inspect->id;
  start.attributes = {{"name", "col-run"}, {"image", "zastava-test/busybox:1"}};
  start.timeNano = kNow - 5;

  const ReceivedEvent received = receivedEvent(start, RecordSource::kReplay, kNow);
  Record started = tracker.fromEvent(received);
  CHECK(started.source == RecordSource::kReplay);
  CHECK(started.container.state == "running");
  CHECK(started.container.imageId.empty());  // not known yet
  CHECK_FALSE(started.container.security);

  clock.advance(std::chrono::milliseconds(3));
  InspectAnswer answer;
  answer.request = InspectRequest{inspect->id, received.eventId, "start", RecordSource::kReplay};
  answer.inspect = *inspect;
  Record record = tracker.inspected(answer);
  CHECK(record.kind == "container.inspect");
  CHECK(record.completes == received.eventId);
  CHECK(record.eventId == eventIdForInspect(inspect->id, received.eventId));
  CHECK(record.source == RecordSource::kReplay);
  CHECK(record.time == kNow + 3'000'000);
  CHECK(record.timeNano == 0);
  CHECK(record.action.empty());
  CHECK(record.inspectError.empty());
  CHECK(record.container.imageId ==
        "sha256:31db03b08020d054ab408407b5705a62c8c6a4bf614b0e2b7b2925679b1c74ee");
  CHECK(record.container.pid == 5905);
  CHECK(record.container.restartCount == 0);
  CHECK(record.container.labels.at("app") == "web");
  CHECK(record.container.security);
  REQUIRE(record.container.posture);  // the findings of every check an inspect decides
  CHECK(record.container.posture->input == PostureInput::kInspect);
  CHECK(record.container.posture->checks.size() == 26);
  CHECK(record.container.startedAt.has_value());
  CHECK_FALSE(record.container.finishedAt.has_value());  // "0001-01-01T00:00:00Z" means never

  EngineEvent pause = start;
  pause.action = pause.rawAction = "pause";
  pause.timeNano = kNow - 4;
  Record paused = tracker.fromEvent(receivedEvent(pause, RecordSource::kStream, kNow));
  CHECK(paused.container.imageId == record.container.imageId);  // remembered from the inspect
  CHECK(paused.container.state == "paused");
  CHECK_FALSE(paused.container.security);  // posture only in the inspect record
  CHECK_FALSE(paused.container.posture);

  EngineEvent die = start;
  die.action = die.rawAction = "die";
  die.attributes["exitCode"] = "2";
  die.timeNano = kNow - 3;
  Record died = tracker.fromEvent(receivedEvent(die, RecordSource::kStream, kNow));
  CHECK(died.container.imageId == record.container.imageId);
  CHECK(died.container.exitCode == 2);
  CHECK(died.container.state == "exited");
  CHECK_FALSE(died.container.pid.has_value());
}

TEST_CASE("posture findings follow the configuration and the container's waiver label") {
  ManualClock clock(kNow);
  PosturePolicy policy;
  policy.skip = {"5.19"};
  policy.severities = {{"5.13", Severity::kCritical}};
  Tracker tracker(clock, kRedactor, policy);
  auto inspect = decodeContainerInspect(readFixture("posture/inspect-host-network.json"));
  REQUIRE(inspect.ok());
  inspect->labels[std::string(kPostureWaiverLabel)] = "5.10";
  const Record snapshot = tracker.snapshot(*inspect);
  REQUIRE(snapshot.container.posture);
  const PostureFindings& findings = *snapshot.container.posture;
  CHECK(findings.skipped == std::vector<std::string_view>{"5.19"});
  CHECK(findings.waiver == "zastava.posture.ignore=5.10");
  for (const CheckFinding& finding : findings.checks) {
    CAPTURE(finding.id);
    CHECK(finding.waived == (finding.id == "5.10"));
    if (finding.id == "5.13") CHECK(finding.severity == Severity::kCritical);
  }
  // A reconciliation's records carry them too.
  ContainerFacts facts = tracker.factsOf(*inspect);
  CHECK(facts.posture);
  const Record started = tracker.reconciled(facts, "start", kNow, "t");
  CHECK(started.container.posture == facts.posture);
  CHECK_FALSE(tracker.find(inspect->id)->posture);  // not remembered: said once per record
}

TEST_CASE("an answer older than the container's last event keeps the state the events gave") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto inspect = decodeContainerInspect(readFixture("inspect-running.json"));
  REQUIRE(inspect.ok());
  EngineEvent start;
  start.type = "container";
  start.action = start.rawAction = "start";
  start.actorId = inspect->id;
  start.attributes = {{"name", "renamed"}};
  start.timeNano = kNow - 5;
  const ReceivedEvent received = receivedEvent(start, RecordSource::kStream, kNow);
  tracker.fromEvent(received);
  EngineEvent die = start;
  die.action = die.rawAction = "die";
  die.attributes["exitCode"] = "137";
  die.timeNano = kNow - 4;
  tracker.fromEvent(receivedEvent(die, RecordSource::kStream, kNow));

  InspectAnswer answer;  // says running, pid 5905: older than the death
  answer.request = InspectRequest{inspect->id, received.eventId, "start", RecordSource::kStream};
  answer.inspect = *inspect;
  Record record = tracker.inspected(answer);
  CHECK(record.container.state == "exited");
  CHECK(record.container.exitCode == 137);
  CHECK_FALSE(record.container.pid.has_value());
  CHECK(record.container.name == "renamed");
  CHECK(record.container.security);
  CHECK(tracker.find(inspect->id)->imageId == inspect->imageId);
}

TEST_CASE("an answer without facts says why; a destroyed container is not remembered again") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  InspectAnswer answer;
  answer.request = InspectRequest{"gone-id", "0123456789abcdef0123456789abcdef", "create",
                                  RecordSource::kStream};
  answer.result = InspectResult::kGone;
  answer.problem = "the container was gone before it could be inspected";
  Record record = tracker.inspected(answer);
  CHECK(record.kind == "container.inspect");
  CHECK(record.inspectError == answer.problem);
  CHECK(record.container.id == "gone-id");
  CHECK(record.container.state == "removed");
  CHECK_FALSE(record.container.security);
  CHECK(tracker.find("gone-id") == nullptr);
  CHECK(tracker.trackedCount() == 0);
}

TEST_CASE("snapshots describe the inspected state, one id per observation") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  auto running = decodeContainerInspect(readFixture("inspect-running.json"));
  auto exited = decodeContainerInspect(readFixture("inspect-exited.json"));
  REQUIRE(running.ok());
  REQUIRE(exited.ok());

  Record first = tracker.snapshot(*running);
  CHECK(first.kind == "container.snapshot");
  CHECK(first.source == RecordSource::kSnapshot);
  CHECK(first.timeNano == 0);
  CHECK(first.time == kNow);
  CHECK(first.container.name == "col-run");
  CHECK(first.container.state == "running");
  CHECK_FALSE(first.container.exitCode.has_value());

  Record dead = tracker.snapshot(*exited);
  CHECK(dead.container.state == "exited");
  CHECK(dead.container.exitCode == 3);
  CHECK_FALSE(dead.container.pid.has_value());
  CHECK(tracker.trackedCount() == 2);

  clock.advance(std::chrono::seconds(1));
  CHECK(tracker.snapshot(*running).eventId != first.eventId);
}

}  // namespace
}  // namespace zastava
