// EventQueue: the bounds (events and bytes) refuse without waiting, markers always fit, the
// replay at the front is found and taken, and stop() ends every wait. Events are the ones
// captured from Docker 20.10 (tests/fixtures/engine/events-lifecycle.ndjson).
#include "agent/event_queue.h"

#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <thread>
#include <vector>

#include "collectors/decoders.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using std::chrono::milliseconds;

constexpr UnixNanos kNow = 1'796'537'800'000'000'000;  // after the capture

std::vector<ReceivedEvent> capturedEvents() {
  std::vector<ReceivedEvent> events;
  for (const auto& line : testing::fixtureLines("events-lifecycle.ndjson")) {
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    events.push_back(receivedEvent(*event, RecordSource::kStream, kNow));
  }
  REQUIRE(events.size() == 42);
  return events;
}

const ReceivedEvent& eventOf(const std::optional<QueueItem>& item) {
  REQUIRE(item.has_value());
  REQUIRE(std::holds_alternative<ReceivedEvent>(*item));
  return std::get<ReceivedEvent>(*item);
}

TEST_CASE("event queue: the event bound refuses without queueing; markers always fit") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue queue({3, 1 << 20}, clock);
  for (int i = 0; i < 3; ++i) CHECK(queue.pushEvent(events[i]));
  CHECK_FALSE(queue.pushEvent(events[3]));
  CHECK(queue.events() == 3);
  queue.pushStreamOpened(StreamOpened{});
  CHECK(eventOf(queue.pop(clock.monotonic())).eventId == events[0].eventId);
  CHECK(queue.pushEvent(events[3]));  // room again
  CHECK(eventOf(queue.pop(std::nullopt)).eventId == events[1].eventId);
  CHECK(eventOf(queue.pop(std::nullopt)).eventId == events[2].eventId);
  CHECK(queue.frontIsStreamOpened());
  CHECK(std::holds_alternative<StreamOpened>(*queue.pop(std::nullopt)));
  CHECK(eventOf(queue.pop(std::nullopt)).eventId == events[3].eventId);
  CHECK(queue.events() == 0);
  CHECK(queue.bytes() == 0);
}

TEST_CASE("event queue: the byte bound refuses an event that does not fit") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue probe({100, 1 << 20}, clock);
  REQUIRE(probe.pushEvent(events[0]));
  const std::size_t one = probe.bytes();
  CHECK(one > events[0].eventId.size());
  EventQueue queue({100, one + one / 2}, clock);
  CHECK(queue.pushEvent(events[0]));
  CHECK_FALSE(queue.pushEvent(events[0]));
  CHECK(queue.events() == 1);
}

TEST_CASE("event queue: the replay before the stream opened is checked and taken in order") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue queue({100, 1 << 20}, clock);
  for (int i = 0; i < 5; ++i) REQUIRE(queue.pushEvent(events[i]));
  const UnixNanos openedAt = events[3].event.timeNano;  // events 0..2 are the replay

  const EventCursor held{events[1].event.timeNano, events[1].eventId};
  CHECK(queue.checkReplay(held, openedAt).holdsCursor);
  // A cursor the replay does not have: the first replayed event after it says where it resumes.
  const EventCursor lost{events[0].event.timeNano, "not-replayed"};
  const ReplayCheck check = queue.checkReplay(lost, openedAt);
  CHECK_FALSE(check.holdsCursor);
  CHECK(check.firstAfter == events[1].event.timeNano);

  std::vector<std::string> taken;
  while (auto replayed = queue.popReplayedBefore(openedAt)) taken.push_back(replayed->eventId);
  CHECK(taken == std::vector<std::string>{events[0].eventId, events[1].eventId, events[2].eventId});
  CHECK(queue.events() == 2);
  CHECK(queue.holds(events[4].event.actorId, events[4].event.action));
  CHECK_FALSE(queue.holds(events[4].event.actorId, "no-such-action"));
}

TEST_CASE("event queue: a cut marker behind the replay says the queue cut it short") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue queue({100, 1 << 20}, clock);
  for (int i = 0; i < 3; ++i) REQUIRE(queue.pushEvent(events[i]));
  const UnixNanos openedAt = events[5].event.timeNano;  // all three are replay
  CHECK_FALSE(queue.replayCut(openedAt));
  CHECK_FALSE(queue.holdsCut());
  queue.pushStreamCut();
  CHECK(queue.replayCut(openedAt));
  CHECK(queue.holdsCut());
  // A live event between the replay and the marker: the replay itself arrived whole.
  EventQueue live({100, 1 << 20}, clock);
  REQUIRE(live.pushEvent(events[0]));
  REQUIRE(live.pushEvent(events[5]));
  live.pushStreamCut();
  CHECK_FALSE(live.replayCut(openedAt));
  CHECK(live.holdsCut());
  // Waiting for an event the cut stream will never deliver ends at the marker.
  CHECK(queue.waitForEvent("never-delivered", clock.monotonic() + std::chrono::hours(1)));
}

TEST_CASE("event queue: waitForRoom returns once half is free, and on stop") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue queue({4, 1 << 20}, clock);
  for (int i = 0; i < 4; ++i) REQUIRE(queue.pushEvent(events[i]));
  bool room = false;
  std::thread stream([&] { room = queue.waitForRoom(); });
  queue.pop(std::nullopt);  // 3 left: not yet
  queue.pop(std::nullopt);  // 2 of 4: room
  stream.join();
  CHECK(room);

  for (int i = 0; i < 2; ++i) REQUIRE(queue.pushEvent(events[i]));
  std::thread stopped([&] { room = queue.waitForRoom(); });
  queue.stop();
  stopped.join();
  CHECK_FALSE(room);
}

TEST_CASE("event queue: after stop, what is queued is still taken, then nothing without waiting") {
  const auto events = capturedEvents();
  ManualClock clock;
  EventQueue queue({10, 1 << 20}, clock);
  // Nothing comes: the wait ends when the clock passes its deadline.
  std::optional<QueueItem> none;
  std::thread enricher([&] { none = queue.pop(clock.monotonic() + milliseconds(10)); });
  REQUIRE(clock.awaitWaits(1));
  CHECK(clock.waitsLeft().front() == milliseconds(10));
  clock.advance(milliseconds(10));
  enricher.join();
  CHECK_FALSE(none.has_value());
  REQUIRE(queue.pushEvent(events[0]));
  queue.stop();
  CHECK(queue.stopping());
  CHECK(queue.stopFlag().load());
  CHECK(eventOf(queue.pop(std::nullopt)).eventId == events[0].eventId);
  CHECK_FALSE(queue.pop(std::nullopt).has_value());
  CHECK_FALSE(queue.sleepFor(milliseconds(60'000)));
}

}  // namespace
}  // namespace zastava
