// The Tracker and reconciliation on the event stream captured from Podman 4.3
// (tests/fixtures/engine/podman-4.3): its records are in the same vocabulary as Docker's, and
// a removed container is destroyed once.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "agent/reconciler.h"
#include "agent/tracker.h"
#include "collectors/decoders.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

const Redactor kRedactor;
constexpr UnixNanos kNow = 1'796'537'800'000'000'000;  // after the capture
constexpr const char* kLifeId = "bc55cbf33636e8bcee7907a27869edc95246a2f149cbcffdd2fb8817fae8bdd7";

std::vector<ReceivedEvent> podmanEvents() {
  std::vector<ReceivedEvent> events;
  for (const auto& line : testing::fixtureLines("podman-4.3/events-lifecycle.ndjson")) {
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    events.push_back(receivedEvent(*event, RecordSource::kStream, kNow));
  }
  REQUIRE(events.size() == 53);
  return events;
}

std::vector<std::string> kinds(const std::vector<Record>& records) {
  std::vector<std::string> out;
  for (const auto& record : records) out.push_back(record.kind);
  return out;
}

ReconcileContext afterTheCapture() {
  ReconcileContext context;
  context.streamOpenedAt = kNow - 1'000'000'000;
  context.now = kNow;
  context.queued = [](std::string_view, std::string_view) { return false; };
  return context;
}

TEST_CASE("Podman's lifecycle: Docker's kinds, the engine's action kept, removed and forgotten") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  std::vector<Record> life;
  std::vector<std::string> states;
  for (const ReceivedEvent& received : podmanEvents()) {
    Record record = tracker.fromEvent(received);
    CHECK(record.eventId == eventIdForEngineEvent("container", received.event.rawAction,
                                                  received.event.actorId, received.event.timeNano));
    if (record.container.id != kLifeId) continue;
    states.push_back(record.container.state.value_or("?"));
    life.push_back(std::move(record));
  }
  CHECK(kinds(life) ==
        std::vector<std::string>{"container.create",   "container.init",    "container.start",
                                 "container.pause",    "container.unpause", "container.exec_start",
                                 "container.exec_die", "container.rename",  "container.kill",
                                 "container.die",      "container.cleanup", "container.restart",
                                 "container.init",     "container.start",   "container.die",
                                 "container.cleanup",  "container.cleanup", "container.init",
                                 "container.start",    "container.die",     "container.destroy"});
  // init and cleanup change nothing: created stays created, exited stays exited.
  CHECK(states == std::vector<std::string>{
                      "created", "created", "running", "paused", "running", "running", "running",
                      "running", "running", "exited",  "exited", "running", "running", "running",
                      "exited",  "exited",  "exited",  "exited", "running", "exited",  "removed"});
  CHECK(life[5].action == "exec_start");
  CHECK(life[5].engineAction == "exec");
  CHECK(life[6].engineAction == "exec_died");
  CHECK(life[1].engineAction.empty());   // init: Podman's own name, recorded as is
  CHECK(life[10].engineAction.empty());  // cleanup
  const Record& destroy = life.back();
  CHECK(destroy.action == "destroy");
  CHECK(destroy.engineAction == "remove");
  CHECK(destroy.container.exitCode == 137);  // what the death before it said

  CHECK(tracker.trackedCount() == 0);  // all six containers were removed
  CHECK(tracker.find(kLifeId) == nullptr);
  // A reconciliation afterwards, the engine listing none of them, destroys nothing again.
  CHECK(reconcile(tracker, {}, afterTheCapture()).empty());
}

TEST_CASE("Podman's health checks are health_status records with the status as detail") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  std::vector<std::string> details;
  for (const ReceivedEvent& received : podmanEvents()) {
    Record record = tracker.fromEvent(received);
    if (record.kind != "container.health_status") continue;
    CHECK(record.action == "health_status");
    CHECK(record.engineAction == "health_status");
    CHECK(record.container.state == "running");
    details.push_back(record.actionDetail);
  }
  CHECK(details == std::vector<std::string>{"starting", "healthy"});
}

TEST_CASE("a Podman remove after reconciliation destroyed the container is a duplicate") {
  ManualClock clock(kNow);
  Tracker tracker(clock, kRedactor);
  std::vector<ReceivedEvent> colExit;  // create, init, start, die, cleanup, remove
  for (ReceivedEvent& received : podmanEvents()) {
    if (received.event.attributes["name"] == "col-exit") colExit.push_back(std::move(received));
  }
  REQUIRE(colExit.size() == 6);
  for (std::size_t i = 0; i < 3; ++i) tracker.fromEvent(colExit[i]);
  // The stream opened after the start; the rest was on its way when the list found it gone.
  ReconcileContext context = afterTheCapture();
  context.streamOpenedAt = colExit[2].event.timeNano + 1;
  CHECK(kinds(reconcile(tracker, {}, context)) == std::vector<std::string>{"container.destroy"});
  CHECK_FALSE(tracker.destroyAlreadyRecorded(colExit[3].event));  // the die is recorded
  CHECK(tracker.destroyAlreadyRecorded(colExit[5].event));        // the remove is not
}

}  // namespace
}  // namespace zastava
