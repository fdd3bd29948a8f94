// The queue between the stream thread (zastava-stream), which only reads and decodes, and the
// enricher thread (zastava-enrich), which makes records: engine events and "the stream opened"
// markers, in the order the stream produced them, and the Inspector's answers, which are taken
// first (they complete records already written). Nothing else reaches into it.
//
// It is bounded by events and by bytes, and a push never waits: the stream must keep reading,
// because the engine silently skips events for a subscriber that falls 100 ms behind. When an
// event does not fit, pushEvent says so and the stream gives up its connection, waits for room
// and reopens from the last event it queued, so the engine replays what did not fit (and an
// agent.gap record covers what the engine no longer has).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <optional>
#include <string_view>
#include <variant>

#include "agent/inspector.h"
#include "agent/tracker.h"
#include "buffer/record.h"
#include "common/clock.h"

namespace zastava {

// The stream (re)opened, resuming after `since`.
struct StreamOpened {
  EventCursor since;
  UnixNanos openedAt = 0;
  MonoTime replayDeadline;  // on the pipeline's Clock
  // Reopened because the queue was full, not because the engine failed: when the replay holds
  // the cursor event nothing was lost, and there is nothing to reconcile.
  bool afterOverflow = false;
};

// The stream was closed because the queue was full: what the engine sent after the events
// queued before this marker comes again with the next stream.
struct StreamCut {};

using QueueItem = std::variant<ReceivedEvent, StreamOpened, StreamCut, InspectAnswer>;

// What the replay at the front of the queue says about the events after a cursor.
struct ReplayCheck {
  bool holdsCursor = false;  // the cursor event itself was replayed: nothing after it is lost
  UnixNanos firstAfter = 0;  // the earliest replayed event after the cursor; 0 when none
};

class EventQueue {
 public:
  // The defaults of EventQueue:MaxEvents and EventQueue:MaxMb (Config starts from these). A real
  // engine publishes far fewer than a thousand events a second; these absorb a burst of several
  // seconds while the writer is slow (an event takes ~0.5 KiB here).
  static constexpr int kDefaultMaxEvents = 4096;
  static constexpr int kDefaultMaxMb = 4;
  struct Limits {
    std::size_t maxEvents = kDefaultMaxEvents;
    std::size_t maxBytes = std::size_t{kDefaultMaxMb} * 1024 * 1024;
  };
  // Timed waits (pop, waitForReplayEnd, waitForEvent, sleepFor) wait on `clock`.
  EventQueue(Limits limits, const Clock& clock) : limits_(limits), clock_(clock) {}
  EventQueue(const EventQueue&) = delete;
  EventQueue& operator=(const EventQueue&) = delete;

  // Stream thread. Queues `event` and returns true, or returns false, queueing nothing, when
  // it would exceed either bound. Never waits.
  bool pushEvent(ReceivedEvent event);
  // Stream thread. Always queued (markers are not bounded: one per connection).
  void pushStreamOpened(StreamOpened opened);
  // Inspector threads. Always queued (the Inspector bounds how many are pending).
  void pushAnswer(InspectAnswer answer);
  // Stream thread, when pushEvent refused an event. Always queued.
  void pushStreamCut();
  // Stream thread, after pushEvent refused one: waits until at most half of either bound is
  // used, or stop(). Returns false when stopping.
  bool waitForRoom();

  // Enricher thread. The oldest answer, else the front item, waiting for one until `deadline`
  // (forever when nullopt) or stop(); nullopt when none came. After stop(), what is queued is
  // still returned, without waiting.
  std::optional<QueueItem> pop(std::optional<MonoTime> deadline);
  // Enricher thread. The front event when it was sent before `openedAt` (a replay), else
  // nullopt (and nothing is taken). Answers are not looked at.
  std::optional<ReceivedEvent> popReplayedBefore(UnixNanos openedAt);
  // Enricher thread. Waits until the replay of the stream opened at `openedAt` has all arrived,
  // or `deadline`, or stop(). The engine writes its whole replay before any live event, so an
  // event stamped at or after `openedAt` (or a newer stream's marker) behind it proves it
  // complete. Returns false when stopping.
  bool waitForReplayEnd(UnixNanos openedAt, MonoTime deadline);
  // Enricher thread. Waits until the event `eventId` is queued (the replay after an overflow
  // reached the cursor), or a marker is queued (the queue cut the stream, or a newer one
  // opened), or `deadline`, or stop(). Returns false when stopping.
  bool waitForEvent(const std::string& eventId, MonoTime deadline);
  // Enricher thread. Looks through the events queued before `openedAt` for `since`'s event.
  ReplayCheck checkReplay(const EventCursor& since, UnixNanos openedAt) const;
  // Enricher thread. True when the events at the front sent before `openedAt` (the replay) are
  // followed by a StreamCut: the queue cut the replay short.
  bool replayCut(UnixNanos openedAt) const;
  // Any thread. True when a StreamCut marker is waiting.
  bool holdsCut() const;
  // Any thread. True when the front item is a StreamOpened marker.
  bool frontIsStreamOpened() const;
  // Any thread. True when an event of container `id` with `action` is waiting.
  bool holds(std::string_view id, std::string_view action) const;

  // Any thread. Waits `duration`, returning false at once when stopping.
  bool sleepFor(std::chrono::milliseconds duration);
  // Any thread: wakes every waiter; later waits return at once.
  void stop();
  bool stopping() const { return stop_.load(); }
  // The flag stop() sets, for calls that poll one (DockerApi, takeInventory).
  const std::atomic<bool>& stopFlag() const { return stop_; }

  // Any thread, for metrics and tests.
  std::size_t events() const;
  std::size_t bytes() const;

 private:
  // An estimate of what an event holds in memory: its strings and attributes.
  static std::size_t sizeOf(const ReceivedEvent& event);
  void took(const QueueItem& item);  // holds mu_

  const Limits limits_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::condition_variable changed_;    // an item was pushed or taken, or stop()
  std::deque<QueueItem> items_;        // guarded by mu_: events and markers
  std::deque<InspectAnswer> answers_;  // guarded by mu_
  std::size_t events_ = 0;             // guarded by mu_: ReceivedEvent items
  std::size_t bytes_ = 0;              // guarded by mu_: sizeOf() of them
  std::atomic<bool> stop_{false};      // set under mu_, so no waiter misses it
};

}  // namespace zastava
