// The Pipeline on its own threads (zastava-stream, zastava-enrich, zastava-inspect) with a real
// Recorder on a temporary data directory, a real EventQueue, Tracker and Inspector, and an
// engine whose every answer is a capture (scripted_docker_api.h says what the script decides).
// Nothing is timed: each test waits, with a bound, for what the ledger or the engine shows.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "common/rfc3339.h"
#include "tests/agent/pipeline_test_util.h"

namespace zastava::testing {
namespace {

using Connection = ScriptedDockerApi::Connection;

TEST_CASE("pipeline: the captured lifecycle is recorded once, in order, then each inspect") {
  const Capture& capture = testing::docker20();
  Scenario s(capture);
  s.start();
  REQUIRE(eventually([&] { return s.engineRecords() == 42 && s.inspectRecords() == 5; }));
  REQUIRE(eventually([&] { return s.reconciledOnce(); }));
  s.stop();

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 41)));
  CHECK(recordedSources(records) == expectedSources(capture, lines(0, 41), {}));
  // col-life was created, then started three times (lines 1, 10 and 16), col-exit and
  // col-health were run: each one's inspect, asked at its create and held by the engine until
  // the container was gone, completes its first start; col-life's last start is asked about on
  // its own, and its second says it could not be inspected.
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
  CHECK(records.size() == 42 + 5);  // no gap, snapshot or reconciled transition
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") == 0);
  CHECK(s.metric("zastava_agent_gaps_total") == 0);
  // col-life's create and last start were asked about; its second start was not.
  CHECK(s.metric("zastava_agent_inspects_total{result=\"gone\"}") == 4);
  const auto connections = s.api().connections();
  REQUIRE(connections.size() == 1);
  CHECK(connections[0].since == 0);
}

TEST_CASE("pipeline: a stream the engine closes is resumed before the cursor, without duplicates") {
  const Capture& capture = testing::docker20();
  Scenario s(capture);
  // The engine closes the stream after line 9; the agent comes back once the lifecycle is over
  // (before the four listed containers were created: the list is empty).
  s.api().script({Connection{.endAfter = 9}, Connection{.publishedBefore = 41}});
  s.start();
  REQUIRE(eventually([&] { return s.engineRecords() == 42 && s.inspectRecords() == 5; }));
  REQUIRE(eventually([&] { return s.reconciledAtTheEnd(); }));
  s.stop();

  const auto connections = s.api().connections();
  REQUIRE(connections.size() == 2);
  CHECK(connections[0].closedByEngine);
  CHECK(connections[0].sent == lines(0, 9));
  const std::int64_t since = capture.at(9) - overlapNanos(s.options());
  CHECK(connections[1].since == since);
  const std::vector<std::size_t> replayed = fromSince(capture, lines(0, 41), since);
  CHECK(connections[1].sent == replayed);
  REQUIRE(replayed.front() <= 9);  // the cursor event and some before it, sent again

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 41)));
  CHECK(recordedSources(records) == expectedSources(capture, lines(0, 9), lines(10, 41)));
  const auto again = static_cast<double>(fromSince(capture, lines(0, 9), since).size());
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") == again);
  CHECK(withKind(records, "agent.gap").empty());
  CHECK(s.metric("zastava_agent_gaps_total") == 0);
  CHECK(withSource(records, "reconcile").empty());
  CHECK(s.metric("zastava_agent_stream_reconnects_total") == 1);
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
}

TEST_CASE("pipeline: a replay without the cursor event leaves one gap record, then reconciles") {
  const Capture& capture = testing::docker20();
  Scenario s(capture);
  // The engine closes the stream after line 19. When the agent comes back, after col-run and
  // col-exited were created, the engine has forgotten lines 20..23 (other traffic pushed them
  // out of its last 256 events): col-exit's create, start and death, col-health's create.
  s.api().script(
      {Connection{.endAfter = 19}, Connection{.publishedBefore = 41,
                                              .openAt = *parseRfc3339Nanos("2026-11-22T14:37:55Z"),
                                              .has = [](std::size_t line) { return line >= 24; }}});
  s.start();
  // col-life's (one per start) and col-health's inspects; col-exit's create and start were lost.
  REQUIRE(eventually([&] { return s.engineRecords() == 20 + 18 && s.inspectRecords() == 4; }));
  REQUIRE(eventually([&] { return s.reconciledAtTheEnd(); }));
  s.stop();

  const auto connections = s.api().connections();
  REQUIRE(connections.size() == 2);
  CHECK(connections[1].since == capture.at(19) - overlapNanos(s.options()));
  CHECK(connections[1].sent == lines(24, 41));

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 19) + lines(24, 41)));
  CHECK(recordedSources(records) == expectedSources(capture, lines(0, 19), lines(24, 41)));
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") == 0);

  const std::vector<json> gaps = withKind(records, "agent.gap");
  REQUIRE(gaps.size() == 1);
  CHECK(s.metric("zastava_agent_gaps_total") == 1);
  const json& gap = gaps[0]["gap"];
  CHECK(gap["fromTimeNano"].get<std::int64_t>() == capture.at(19));  // the cursor
  CHECK(gap["toTimeNano"].get<std::int64_t>() == capture.at(24));    // the first replayed
  // Written before the replay it precedes.
  CHECK(positionOf(records, text(gaps[0], "eventId")) <
        positionOf(records, eventIdOf(capture, 24)));

  // What the list and inspects say changed meanwhile, in the order the engine listed them:
  // col-exited was created, started and exited 3, col-run created and started. Written after
  // the replay.
  const std::vector<json> reconciled = withSource(records, "reconcile");
  std::string transitions;
  for (const json& record : reconciled) {
    if (text(record, "kind") == "agent.gap") continue;
    transitions += text(record["container"], "name") + " " + text(record, "kind") + " " +
                   stateOf(record) + "\n";
    CHECK(positionOf(records, text(record, "eventId")) >
          positionOf(records, eventIdOf(capture, 41)));
  }
  CHECK(transitions ==
        "col-exited container.create created\n"
        "col-exited container.start running\n"
        "col-exited container.die exited\n"
        "col-run container.create created\n"
        "col-run container.start running\n");
  const json die = withKind(reconciled, "container.die").at(0);
  CHECK(die["container"]["exitCode"] == 3);
  checkInspectsAfterDestroy(capture, records, idsOf(capture, {"col-life", "col-health"}));
}

TEST_CASE("pipeline: events arriving while a resumed stream replays a burst are recorded once") {
  const Capture& capture = testing::docker20();
  Scenario s(capture);
  // `docker rm -f` of three containers: lines 35..41 within 70 ms. The engine closes the stream
  // after line 37 and the agent is back at once: the engine replays the second before line 37,
  // then sends 38..41 as they happen.
  s.api().script({Connection{.endAfter = 37}, Connection{}});
  s.start();
  REQUIRE(eventually([&] { return s.engineRecords() == 42 && s.inspectRecords() == 5; }));
  REQUIRE(eventually([&] { return s.reconciledAtTheEnd(); }));
  s.stop();

  const auto connections = s.api().connections();
  REQUIRE(connections.size() == 2);
  const std::int64_t since = capture.at(37) - overlapNanos(s.options());
  CHECK(connections[1].since == since);
  const std::vector<std::size_t> replayed = fromSince(capture, lines(0, 37), since);
  REQUIRE(replayed.size() > 1);
  CHECK(connections[1].sent == replayed + lines(38, 41));

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 41)));
  CHECK(recordedSources(records) == expectedSources(capture, lines(0, 41), {}));
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") ==
        static_cast<double>(replayed.size()));
  CHECK(withKind(records, "agent.gap").empty());
  // The list that answered (once the engine had destroyed them) lacked col-life2 and
  // col-health: their destroys, recorded or queued, were left to the stream.
  CHECK(withSource(records, "reconcile").empty());
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
}

// How many of the events queued last a stream reopened after an overflow may replay: a quarter
// of the queue (agent/event_stream.cpp), 1 for tinyQueue().
constexpr std::size_t kOverflowReplay = 1;

// The queue refuses an event: the stream closes, waits for room and reopens a little before the
// last event queued: `overlap` before it, but not before the kOverflowReplay-th last event
// queued. `connections` are the engine's; all but the last were closed by the agent. Checks
// every reopen's `since`, and returns the lines refused (the last one each closed connection
// sent).
std::vector<std::size_t> checkResumedFromLastQueued(
    const Capture& capture, const std::vector<ScriptedDockerApi::Opened>& connections,
    std::int64_t overlap) {
  std::vector<std::size_t> refused;
  UnixNanos lastQueued = 0;
  std::vector<UnixNanos> queued;  // in the order queued
  for (std::size_t k = 0; k < connections.size(); ++k) {
    CAPTURE(k);
    if (k > 0) {
      UnixNanos expected = lastQueued - overlap;
      if (queued.size() >= kOverflowReplay) {
        // no earlier than that event or the one refused, less 100 us for events out of order
        const UnixNanos refusedAt = capture.at(refused.back());
        expected = std::max(expected,
                            std::min(queued[queued.size() - kOverflowReplay], refusedAt) - 100'000);
      }
      CHECK(connections[k].since == expected);
    }
    const auto& sent = connections[k].sent;
    const bool last = k + 1 == connections.size();
    if (!last) {
      CHECK(connections[k].cancelled);
      REQUIRE(!sent.empty());
      refused.push_back(sent.back());
    }
    for (std::size_t i = 0; i < sent.size(); ++i) {
      if (!last && i + 1 == sent.size()) break;
      lastQueued = std::max(lastQueued, capture.at(sent[i]));
      queued.push_back(capture.at(sent[i]));
    }
  }
  return refused;
}

std::size_t totalSent(const std::vector<ScriptedDockerApi::Opened>& connections) {
  std::size_t total = 0;
  for (const auto& connection : connections) total += connection.sent.size();
  return total;
}

// "since: lines sent" of each connection, for failure messages.
std::string describe(const std::vector<ScriptedDockerApi::Opened>& connections) {
  std::string out;
  for (const auto& connection : connections) {
    out += formatRfc3339Nanos(connection.since) + ":";
    for (std::size_t line : connection.sent) out += " " + std::to_string(line);
    out += "\n";
  }
  return out;
}

// The last `count` connections all resumed from the same point: the stream goes round in
// circles.
bool goingRound(const std::vector<ScriptedDockerApi::Opened>& connections, std::size_t count) {
  if (connections.size() < count + 1) return false;
  for (std::size_t k = connections.size() - count; k < connections.size(); ++k) {
    if (connections[k].since != connections.back().since) return false;
  }
  return true;
}

PipelineOptions tinyQueue() {
  PipelineOptions options = testOptions();
  options.eventQueue.maxEvents = 4;
  return options;
}

// The enricher is held in its first reconciliation by a list the engine is slow to answer, so
// the stream fills the queue with lines 0..3 and line 4 does not fit. Tests that use it wait
// until the engine has sent every line and every container's inspect is recorded: each waited
// for the container's destroy in the ledger, and the last line is a destroy, so every line went
// through the queue by then (in order, a refused one sent again before those after it) and what
// is missing after stop() was lost.
void overflowOnce(Scenario& s) {
  s.api().holdList();
  s.api().listWaitsForLedger();
  s.start();
  REQUIRE(eventually([&] { return s.metric("zastava_agent_event_queue_overflows_total") >= 1; }));
  REQUIRE(s.api().connections().size() >= 1);
  CHECK(s.api().connections()[0].sent == lines(0, 4));
  s.api().releaseList();
}

TEST_CASE("pipeline: a full event queue closes the stream, which resumes from the last queued") {
  const Capture& capture = testing::docker20();
  Scenario s(capture, tinyQueue());
  overflowOnce(s);
  // Waits until everything is in (see overflowOnce), or the stream is seen resuming from the same
  // point ten times over.
  REQUIRE(eventually([&] {
    return (s.inspectRecords() == 5 && s.api().allSent()) || goingRound(s.api().connections(), 10);
  }));
  const auto connections = s.api().connections();
  INFO("connections (since: lines sent):\n" << describe(connections));
  REQUIRE(connections.size() >= 2);
  // the last line queued (or the one refused, if stamped earlier), less 100 us: a short replay
  CHECK(connections[1].since == std::min(capture.at(3), capture.at(4)) - 100'000);
  // Lines 0..3 lie within 180 ms: resumed a second before line 3, the engine would replay them
  // all ahead of line 4 and fill the queue again, refusing line 4 every time; the stream
  // resumes no earlier than the last line queued instead.
  CHECK_FALSE(goingRound(connections, 10));
  checkResumedFromLastQueued(capture, connections, overlapNanos(s.options()));
  CHECK(recordedEvents(s.ledger().records()) == expectedEvents(capture, lines(0, 41)));
}

// With the overlap shortened to a millisecond (the captured events are at most 2 us out of
// order), a replay after an overflow is the cursor, the line refused and at most one more.
TEST_CASE("pipeline: overflows resume from the last queued; every event is recorded once") {
  const Capture& capture = testing::docker20();
  PipelineOptions options = tinyQueue();
  options.resumeOverlap = std::chrono::milliseconds(1);
  Scenario s(capture, options);
  overflowOnce(s);
  const bool done = eventually([&] { return s.inspectRecords() == 5 && s.api().allSent(); });
  INFO("engine records " << s.engineRecords() << ", inspect records " << s.inspectRecords()
                         << ", all sent " << s.api().allSent() << "\n"
                         << describe(s.api().connections()));
  REQUIRE(done);
  s.stop();

  const auto connections = s.api().connections();
  INFO("connections (since: lines sent):\n" << describe(connections));
  REQUIRE(connections.size() >= 2);
  CHECK(connections[1].since == std::min(capture.at(3), capture.at(4)) - 100'000);
  const std::vector<std::size_t> refused =
      checkResumedFromLastQueued(capture, connections, overlapNanos(options));
  CHECK(s.metric("zastava_agent_event_queue_overflows_total") ==
        static_cast<double>(refused.size()));

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 41)));
  CHECK(withKind(records, "agent.gap").empty());
  // Every line sent was refused, recorded, or recognised as recorded already.
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") ==
        static_cast<double>(totalSent(connections) - refused.size() - 42));
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
}

TEST_CASE("pipeline: events a full queue refused that the engine no longer has leave a gap") {
  const Capture& capture = testing::docker20();
  PipelineOptions options = tinyQueue();
  options.resumeOverlap = std::chrono::milliseconds(1);
  Scenario s(capture, options);
  // While the agent waits for room the engine publishes lines 5..9 and forgets everything
  // before line 8 (other traffic pushed it out of its last 256 events).
  s.api().script({Connection{}, Connection{.publishedBefore = 9,
                                           .has = [](std::size_t line) { return line >= 8; }}});
  overflowOnce(s);
  REQUIRE(eventually([&] { return s.inspectRecords() == 5 && s.api().allSent(); }));
  s.stop();

  const auto connections = s.api().connections();
  INFO("connections (since: lines sent):\n" << describe(connections));
  REQUIRE(connections.size() >= 2);
  CHECK(connections[1].since == std::min(capture.at(3), capture.at(4)) - 100'000);
  CHECK(connections[1].sent.front() == 8);
  checkResumedFromLastQueued(capture, connections, overlapNanos(options));

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 3) + lines(8, 41)));
  const std::vector<json> gaps = withKind(records, "agent.gap");
  REQUIRE(gaps.size() == 1);
  CHECK(s.metric("zastava_agent_gaps_total") == 1);
  CHECK(gaps[0]["gap"]["fromTimeNano"].get<std::int64_t>() == capture.at(3));
  CHECK(gaps[0]["gap"]["toTimeNano"].get<std::int64_t>() == capture.at(8));
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
}

TEST_CASE("pipeline: an event a full queue refused is replayed even if stamped before the cursor") {
  const Capture& capture = testing::docker20();
  Scenario s(capture, tinyQueue());
  // The engine delivered line 23 (col-health's create, 14:37:36.452988821) after line 22
  // (col-exit's death, 14:37:36.452990934): stamped 2 us earlier, published later. The agent's
  // first stream opens after line 18; with the enricher held in its first reconciliation, lines
  // 19..22 fill the queue and line 23 is refused. The engine still has every line: the resumed
  // stream must bring line 23 again, and nothing may be missing without a gap record.
  s.api().script({Connection{.publishedBefore = 18}});
  s.api().holdList();
  s.api().listWaitsForLedger();
  s.start();
  REQUIRE(eventually([&] { return s.metric("zastava_agent_event_queue_overflows_total") >= 1; }));
  REQUIRE(s.api().connections().size() == 1);
  CHECK(s.api().connections()[0].sent == lines(19, 23));
  s.api().releaseList();
  // col-exit's and col-health's inspects (col-life's create and starts came before line 19).
  REQUIRE(eventually([&] { return s.inspectRecords() == 2 && s.api().allSent(); }));
  s.stop();

  const auto connections = s.api().connections();
  INFO("connections (since: lines sent):\n" << describe(connections));
  REQUIRE(connections.size() >= 2);
  CHECK(connections[1].since <= capture.at(23));  // else the engine cannot send line 23 again
  const std::vector<json> records = s.ledger().records();
  CHECK(withKind(records, "agent.gap").empty());
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(19, 41)));
}

TEST_CASE("pipeline: a held inspect delays no other record; its answer follows when released") {
  const Capture& capture = testing::docker20();
  Scenario s(capture);
  const std::string colLife = capture.idOf("col-life");
  s.api().holdInspect(colLife);
  s.start();
  const std::vector<std::string> others = idsOf(capture, {"col-exit", "col-health"});
  REQUIRE(eventually([&] { return s.engineRecords() == 42 && s.inspectRecords() == 2; }));
  REQUIRE(eventually([&] { return s.reconciledOnce(); }));
  {
    const std::vector<json> records = s.ledger().records();
    // Every other container's records, inspects included, while col-life's inspect, asked at
    // its create (line 0), is still on its way, after col-life's own destroy.
    CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 41)));
    checkInspectsAfterDestroy(capture, records, others);
    CHECK(s.api().inspectCalls()[colLife] == 1);
  }
  s.api().releaseInspect(colLife);
  REQUIRE(eventually([&] { return s.inspectRecords() == 5; }));
  s.stop();

  // col-life started three times (lines 1, 10 and 16) while its create's inspect was held:
  // the answer completes the first start, the newest is asked about on its own, and the one
  // between says it could not be inspected. Every start has its container.inspect record.
  const std::vector<json> records = s.ledger().records();
  CHECK(records.size() == 42 + 5);
  std::vector<std::pair<std::string, std::string>> completed;  // completes, inspectError
  for (const json& record : records) {
    if (text(record, "kind") == kInspectKind && containerOf(record) == colLife) {
      completed.emplace_back(text(record, "completes"), text(record, "inspectError"));
    }
  }
  CHECK(completed == std::vector<std::pair<std::string, std::string>>{
                         {eventIdOf(capture, 1), kGone},
                         {eventIdOf(capture, 10), std::string(kStartedAgainBeforeInspect)},
                         {eventIdOf(capture, 16), kGone}});
  CHECK(startsOf(capture, colLife) == std::vector<std::size_t>{1, 10, 16});
  CHECK(s.api().inspectCalls()[colLife] == 2);
  CHECK(s.metric("zastava_agent_inspects_total{result=\"gone\"}") == 4);  // asked: 2 + 2
  checkInspectsAfterDestroy(capture, records,
                            idsOf(capture, {"col-life", "col-exit", "col-health"}));
}

TEST_CASE("pipeline: an inspect answered 404 says the container was gone") {
  const Capture& capture = testing::docker26();
  Scenario s(capture);
  s.start();
  // col-life (three starts), col-exit, col-health, col-oom, col-rm and col-rm2.
  REQUIRE(eventually([&] { return s.engineRecords() == 62 && s.inspectRecords() == 8; }));
  s.stop();

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 61)));
  // `docker run --rm` (col-rm): create, attach, start, die and destroy within 0.7 s, all
  // recorded before the engine answered its inspect, asked at the create.
  const std::string colRm = capture.idOf("col-rm");
  std::vector<json> mine;
  for (const json& record : records) {
    if (containerOf(record) == colRm) mine.push_back(record);
  }
  std::string kinds;
  for (const json& record : mine) kinds += text(record, "kind") + " ";
  CHECK(kinds ==
        "container.create container.attach container.start container.die container.destroy "
        "container.inspect ");
  const json& inspect = mine.back();
  CHECK(text(inspect, "inspectError") == kGone);
  CHECK(text(inspect, "completes") == eventIdOf(capture, 43));  // its start
  CHECK(text(inspect, "source") == "stream");
  CHECK(stateOf(inspect) == "removed");
  for (const char* fact : {"imageDigest", "env", "security", "pid"}) {
    CAPTURE(fact);
    CHECK_FALSE(inspect["container"].contains(fact));
  }
  CHECK(s.api().inspectCalls()[colRm] == 1);  // gone is not asked again
  // col-life's create and last start were asked about; its second start was not.
  CHECK(s.metric("zastava_agent_inspects_total{result=\"gone\"}") == 7);
  CHECK(s.metric("zastava_agent_inspects_total{result=\"failed\"}") == 0);
  checkInspectsAfterDestroy(
      capture, records,
      idsOf(capture, {"col-life", "col-exit", "col-health", "col-oom", "col-rm", "col-rm2"}));
}

TEST_CASE("pipeline: Podman's remove is one container.destroy; reconciliation adds none") {
  const Capture& capture = testing::podman43();
  Scenario s(capture);
  // The engine closes the stream before col-life2's remove (line 52), which the resumed stream
  // sends after its replay; it closes that one too, and the agent resumes once more. Each
  // reconciliation lists nothing (the listed containers were removed before the lifecycle).
  s.api().script({Connection{.endAfter = 51}, Connection{.endAfter = 52}, Connection{}});
  s.start();
  REQUIRE(eventually([&] { return s.engineRecords() == 53 && s.inspectRecords() == 8; }));
  REQUIRE(eventually([&] {
    const auto connections = s.api().connections();
    return connections.size() == 3 && connections[2].replayed && s.reconciledAtTheEnd();
  }));
  s.stop();

  const auto connections = s.api().connections();
  const std::int64_t overlap = overlapNanos(s.options());
  const std::vector<std::size_t> first = fromSince(capture, lines(0, 51), capture.at(51) - overlap);
  const std::vector<std::size_t> second =
      fromSince(capture, lines(0, 52), capture.at(52) - overlap);
  CHECK(connections[1].sent == first + std::vector<std::size_t>{52});
  CHECK(connections[2].sent == second);

  const std::vector<json> records = s.ledger().records();
  CHECK(recordedEvents(records) == expectedEvents(capture, lines(0, 52)));
  CHECK(recordedSources(records) == expectedSources(capture, lines(0, 52), {}));
  CHECK(s.metric("zastava_agent_duplicates_suppressed_total") ==
        static_cast<double>(first.size() + second.size()));
  const std::vector<std::string> ids =
      idsOf(capture, {"col-life2", "col-exit", "col-health", "col-oom", "col-rm", "col-rm2"});
  const std::vector<json> destroys = withKind(records, "container.destroy");
  CHECK(destroys.size() == ids.size());
  for (const std::string& id : ids) {
    CAPTURE(id);
    std::vector<json> mine;
    for (const json& destroy : destroys) {
      if (containerOf(destroy) == id) mine.push_back(destroy);
    }
    REQUIRE(mine.size() == 1);
    CHECK(text(mine[0], "engineAction") == "remove");
    CHECK(text(mine[0], "source") == "stream");
  }
  CHECK(withSource(records, "reconcile").empty());
  CHECK(withKind(records, "agent.gap").empty());
  checkInspectsAfterDestroy(capture, records, ids);
}

}  // namespace
}  // namespace zastava::testing
