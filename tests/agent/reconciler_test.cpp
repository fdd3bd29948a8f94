// Reconciliation on inspects captured from a real engine (tests/fixtures/engine).
#include "agent/reconciler.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "collectors/decoders.h"
#include "common/rfc3339.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using testing::readFixture;

const Redactor kRedactor;

// After both fixture containers were created, started and (one) exited.
const UnixNanos kStreamOpened = *parseRfc3339Nanos("2026-11-22T14:40:00Z");
const UnixNanos kNow = kStreamOpened + 2'000'000'000;

ContainerInspect fixture(const char* name) {
  auto inspect = decodeContainerInspect(readFixture(name));
  REQUIRE(inspect.ok());
  return *inspect;
}

struct Scenario {
  ManualClock clock{kNow};
  Tracker tracker{clock, kRedactor};
  ReconcileContext context;
  std::vector<std::pair<std::string, std::string>> queuedEvents;

  Scenario() {
    context.streamOpenedAt = kStreamOpened;
    context.now = kNow;
    context.queued = [this](std::string_view id, std::string_view action) {
      for (const auto& [queuedId, queuedAction] : queuedEvents) {
        if (queuedId == id && queuedAction == action) return true;
      }
      return false;
    };
  }

  std::vector<Record> run(const std::vector<ContainerInspect>& engine) {
    return reconcile(tracker, engine, context);
  }

  // The ledger saw `inspect` start and nothing after.
  void ledgerSawStart(const ContainerInspect& inspect) {
    ContainerFacts facts = tracker.factsOf(inspect);
    facts.state = "running";
    facts.exitCode.reset();
    facts.finishedAt.reset();
    tracker.restore({facts});
  }
};

std::vector<std::string> kinds(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& record : records) out.push_back(record.kind);
  return out;
}

TEST_CASE("a new ledger gets one snapshot per container and no transitions") {
  Scenario s;
  s.context.firstObservation = true;
  auto records = s.run({fixture("inspect-running.json"), fixture("inspect-exited.json")});
  CHECK(kinds(records) == std::vector<std::string>{"container.snapshot", "container.snapshot"});
  CHECK(records[0].source == RecordSource::kSnapshot);
}

TEST_CASE("a new ledger writes no destroy for a container only its stream has told of") {
  Scenario s;
  s.context.firstObservation = true;
  s.ledgerSawStart(fixture("inspect-exited.json"));  // as if the stream had delivered its start
  auto records = s.run({fixture("inspect-running.json")});
  CHECK(kinds(records) == std::vector<std::string>{"container.snapshot"});
}

TEST_CASE("a death the engine did not deliver is written with its exit code and time") {
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.ledgerSawStart(exited);
  auto records = s.run({exited});
  REQUIRE(kinds(records) == std::vector<std::string>{"container.die"});
  const Record& die = records[0];
  CHECK(die.source == RecordSource::kReconcile);
  CHECK(die.action == "die");
  CHECK(die.timeNano == 0);
  CHECK(die.time == *parseRfc3339Nanos("2026-11-22T14:37:48.889193231Z"));
  CHECK(die.container.state == "exited");
  CHECK(die.container.exitCode == 3);
  CHECK(die.container.finishedAt == "2026-11-22T14:37:48.889193231Z");
  CHECK(s.tracker.find(exited.id)->state == "exited");
}

TEST_CASE("a known container's transition carries its posture, secrets redacted") {
  Scenario s;
  const ContainerInspect posture = fixture("inspect-posture.json");
  ContainerFacts known = s.tracker.factsOf(posture);
  known.name = "lead-posture-before";
  s.tracker.restore({known});
  auto records = s.run({posture});
  REQUIRE(kinds(records) == std::vector<std::string>{"container.rename"});
  const ContainerFacts& renamed = records[0].container;
  CHECK(renamed.name == "lead-posture");
  CHECK(renamed.labels.at("aws_secret_key") == "<redacted>");
  CHECK(renamed.env.at("DB_PASSWORD") == "<redacted>");
  REQUIRE(renamed.security);
  CHECK(renamed.security->privileged);
  // The tracker keeps identity and state, not the posture: that lives in the records.
  CHECK_FALSE(s.tracker.find(posture.id)->security);
}

TEST_CASE("reconciling twice writes nothing the second time") {
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.ledgerSawStart(exited);
  CHECK(s.run({exited}).size() == 1);
  CHECK(s.run({exited}).empty());
}

TEST_CASE("the same transition found again gets the same eventId") {
  Scenario first;
  Scenario second;
  const ContainerInspect exited = fixture("inspect-exited.json");
  first.ledgerSawStart(exited);
  second.ledgerSawStart(exited);
  second.context.now += 5'000'000'000;
  CHECK(first.run({exited})[0].eventId == second.run({exited})[0].eventId);
}

TEST_CASE("a container the ledger never saw is created, started and died in order") {
  Scenario s;
  s.ledgerSawStart(fixture("inspect-running.json"));  // the ledger is not new
  auto records = s.run({fixture("inspect-running.json"), fixture("inspect-exited.json")});
  CHECK(kinds(records) ==
        std::vector<std::string>{"container.create", "container.start", "container.die"});
  CHECK(records[0].container.state == "created");
  CHECK(records[1].container.state == "running");
  CHECK(records[2].container.exitCode == 3);
  CHECK(records[0].time < records[1].time);
}

TEST_CASE("a container the ledger never saw whose create is queued is left to the stream") {
  // The engine dates Created before it stamps the create event, so Created alone may fall before
  // the stream opened while the event is still queued: the stream tells its whole life.
  Scenario s;
  const ContainerInspect running = fixture("inspect-running.json");
  s.ledgerSawStart(running);
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.queuedEvents = {{exited.id, "create"}};
  CHECK(s.run({running, exited}).empty());
  CHECK(s.tracker.find(exited.id) == nullptr);
}

TEST_CASE("transitions after the stream opened are left to the stream") {
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.ledgerSawStart(exited);
  s.context.streamOpenedAt = *parseRfc3339Nanos("2026-11-22T14:37:48.800000000Z");
  CHECK(s.run({exited}).empty());
}

TEST_CASE("a transition dated just before the stream opened is left to the stream too") {
  // The engine sets FinishedAt, then stamps and sends the die event: it may arrive after the
  // reconciliation, through the stream that had just opened.
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.ledgerSawStart(exited);
  const UnixNanos finished = *parseRfc3339Nanos(exited.state.finishedAt);
  s.context.streamOpenedAt = finished + 500'000'000;
  CHECK(anyTransitionInFlight({exited}, s.context));
  CHECK(s.run({exited}).empty());
  s.context.streamOpenedAt = finished + 1'500'000'000;
  CHECK_FALSE(anyTransitionInFlight({exited}, s.context));
  CHECK(kinds(s.run({exited})) == std::vector<std::string>{"container.die"});
}

TEST_CASE("the second look writes a transition left to the stream whose event never came") {
  // An engine that restarted as the container stopped (Podman does) has lost the die event.
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.ledgerSawStart(exited);
  s.context.streamOpenedAt = *parseRfc3339Nanos(exited.state.finishedAt) + 500'000'000;
  REQUIRE(s.run({exited}).empty());
  s.context.inFlight = {};
  CHECK_FALSE(anyTransitionInFlight({exited}, s.context));
  const auto records = s.run({exited});
  REQUIRE(kinds(records) == std::vector<std::string>{"container.die"});
  CHECK(records[0].container.finishedAt == exited.state.finishedAt);
}

TEST_CASE("a first observation leaves nothing in flight: it writes snapshots only") {
  Scenario s;
  const ContainerInspect exited = fixture("inspect-exited.json");
  s.context.firstObservation = true;
  s.context.streamOpenedAt = *parseRfc3339Nanos(exited.state.finishedAt) + 500'000'000;
  CHECK_FALSE(anyTransitionInFlight({exited}, s.context));
}

TEST_CASE("a known container the engine no longer lists was destroyed, unless queued") {
  Scenario s;
  const ContainerInspect running = fixture("inspect-running.json");
  s.ledgerSawStart(running);
  s.queuedEvents = {{running.id, "destroy"}};
  CHECK(s.run({}).empty());

  s.queuedEvents.clear();
  auto records = s.run({});
  REQUIRE(kinds(records) == std::vector<std::string>{"container.destroy"});
  CHECK(records[0].container.state == "removed");
  CHECK(records[0].time == kNow);
  CHECK(s.tracker.trackedCount() == 0);
}

TEST_CASE("a destroy reconciliation wrote is not written again when its event arrives late") {
  Scenario s;
  std::vector<ReceivedEvent> colExit;  // create, start, die, destroy
  for (const auto& line : testing::fixtureLines("events-lifecycle.ndjson")) {
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    if (event->attributes["name"] == "col-exit") {
      colExit.push_back(receivedEvent(*event, RecordSource::kStream, kNow));
    }
  }
  REQUIRE(colExit.size() == 4);
  s.tracker.fromEvent(colExit[0]);
  s.tracker.fromEvent(colExit[1]);
  // The stream opened after the start; the death and the destroy, before the list, were still
  // on their way when the reconciliation found the container gone.
  s.context.streamOpenedAt = colExit[1].event.timeNano + 1;
  auto records = s.run({});
  CHECK(kinds(records) == std::vector<std::string>{"container.destroy"});

  CHECK_FALSE(s.tracker.destroyAlreadyRecorded(colExit[2].event));
  const Record death = s.tracker.fromEvent(colExit[2]);
  CHECK(death.kind == "container.die");  // a transition the ledger lacks: recorded
  CHECK(death.container.state == "exited");
  CHECK(s.tracker.find(death.container.id) == nullptr);  // but not brought back
  CHECK(s.tracker.destroyAlreadyRecorded(colExit[3].event));
  CHECK(s.run({}).empty());  // nothing left to destroy again
}

TEST_CASE("a rename and a pause the engine did not deliver") {
  Scenario s;
  ContainerInspect running = fixture("inspect-running.json");
  s.ledgerSawStart(running);
  running.name = "renamed";
  running.state.paused = true;
  auto records = s.run({running});
  CHECK(kinds(records) == std::vector<std::string>{"container.rename", "container.pause"});
  CHECK(records[0].container.name == "renamed");
  CHECK(records[1].container.state == "paused");
}

TEST_CASE("a container renamed again to a name it had before gets a rename of its own") {
  Scenario s;
  ContainerInspect running = fixture("inspect-running.json");
  const std::string firstName = running.name;
  s.ledgerSawStart(running);
  running.name = "renamed";
  const auto first = s.run({running});
  REQUIRE(kinds(first) == std::vector<std::string>{"container.rename"});

  running.name = firstName;
  s.ledgerSawStart(running);  // the stream recorded the rename back
  running.name = "renamed";
  s.context.now += 60'000'000'000;
  const auto second = s.run({running});
  REQUIRE(kinds(second) == std::vector<std::string>{"container.rename"});
  CHECK(second[0].container.name == "renamed");
  CHECK(second[0].eventId != first[0].eventId);
}

TEST_CASE("a restart by policy: the missed death, then the restart") {
  Scenario s;
  ContainerInspect running = fixture("inspect-running.json");
  s.ledgerSawStart(running);
  running.state.startedAt = "2026-11-22T14:39:00.5Z";
  running.restartCount = 2;
  auto records = s.run({running});
  REQUIRE(kinds(records) == std::vector<std::string>{"container.die", "container.restart"});
  CHECK_FALSE(records[0].container.exitCode.has_value());  // the engine no longer says
  CHECK(records[1].container.restartCount == 2);
  CHECK(records[1].time == *parseRfc3339Nanos("2026-11-22T14:39:00.5Z"));
}

TEST_CASE("engine times parse to nanoseconds; anything else is refused") {
  CHECK(parseRfc3339Nanos("1970-01-01T00:00:01Z") == 1'000'000'000);
  CHECK(parseRfc3339Nanos("2026-11-22T14:37:48.889193231Z") == 1'795'358'268'889'193'231);
  CHECK(parseRfc3339Nanos("2026-11-22T14:37:48.5Z") == 1'795'358'268'500'000'000);
  CHECK(formatRfc3339Nanos(*parseRfc3339Nanos("2026-11-22T14:37:48.889193231Z")) ==
        "2026-11-22T14:37:48.889193231Z");
  CHECK_FALSE(parseRfc3339Nanos("0001-01-01T00:00:00Z"));
  CHECK_FALSE(parseRfc3339Nanos("2026-11-22T14:37:48+01:00"));
  CHECK_FALSE(parseRfc3339Nanos("2026-11-22T14:37:48.Z"));
  CHECK_FALSE(parseRfc3339Nanos("2026-11-22T14:37:48.1234567890Z"));
  CHECK_FALSE(parseRfc3339Nanos(""));
}

TEST_CASE("a gap record names its span and reason, and has no container") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  Record gap = tracker.gap(kStreamOpened - 10, kStreamOpened, "engine restarted");
  CHECK(gap.kind == "agent.gap");
  CHECK(gap.source == RecordSource::kReconcile);
  CHECK(gap.time == kStreamOpened);
  const std::string json = chainedLine(gap, kGenesisHash).line;
  CHECK(json.find("\"container\"") == std::string::npos);
  CHECK(json.find(R"("gap":{"from":"2026-11-22T14:39:59.999999990Z","to":"2026-11-22T14:40:00.)"
                  R"(000000000Z","fromTimeNano":1795358399999999990,"toTimeNano":)"
                  R"(1795358400000000000,"reason":"engine restarted"})") != std::string::npos);
  CHECK(tracker.gap(1, 2, "x").eventId == tracker.gap(1, 2, "y").eventId);
}

}  // namespace
}  // namespace zastava

namespace zastava {
namespace {

// The captured list (tests/fixtures/engine/containers-list.json): col-paused, col-created,
// col-exited, col-run, in the states their names say.
std::vector<ContainerSummary> capturedList() {
  auto list = decodeContainerList(testing::readFixture("containers-list.json"));
  REQUIRE(list.ok());
  REQUIRE(list->size() == 4);
  return *list;
}

// A ledger that agrees with `list`.
void restoreAgreeing(Tracker& tracker, const std::vector<ContainerSummary>& list) {
  std::vector<ContainerFacts> ledger;
  for (const ContainerSummary& container : list) {
    ContainerFacts facts;
    facts.id = container.id;
    facts.name = container.names.at(0).substr(1);
    facts.state = container.state;
    ledger.push_back(facts);
  }
  tracker.restore(ledger);
}

TEST_CASE("audit: a ledger that agrees with the engine's list has no disagreement") {
  ManualClock clock{kNow};
  Tracker tracker{clock, kRedactor};
  const auto list = capturedList();
  restoreAgreeing(tracker, list);
  CHECK(auditDisagreements(tracker, list).empty());
}

TEST_CASE("audit: another state, an unknown container and a vanished one disagree") {
  ManualClock clock{kNow};
  Tracker tracker{clock, kRedactor};
  auto list = capturedList();
  restoreAgreeing(tracker, list);
  std::vector<std::string> expected;

  list.at(3).state = "exited";  // col-run died unseen
  expected.push_back(list.at(3).id);
  ContainerSummary unseen = list.at(0);  // a container the ledger never heard of
  unseen.id = std::string(64, 'a');
  list.push_back(unseen);
  expected.push_back(unseen.id);
  const std::string vanished = list.at(1).id;  // col-created removed unseen
  list.erase(list.begin() + 1);
  expected.push_back(vanished);

  std::sort(expected.begin(), expected.end());
  CHECK(auditDisagreements(tracker, list) == expected);
}

TEST_CASE("audit: a container between states is not compared; dead counts as exited") {
  ManualClock clock{kNow};
  Tracker tracker{clock, kRedactor};
  auto list = capturedList();
  restoreAgreeing(tracker, list);
  list.at(0).state = "restarting";
  list.at(1).state = "removing";
  list.at(2).state = "dead";  // col-exited, exited in the ledger
  CHECK(auditDisagreements(tracker, list).empty());
}

}  // namespace
}  // namespace zastava
