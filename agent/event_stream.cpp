#include "agent/event_stream.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {

// The engine's ring, and a quarter of the queue at most: what a reopened stream replays of the
// events already queued fits the free half of the queue, beside new ones.
// How much earlier than events sent before it the engine may stamp an event (microseconds in the
// captured streams).
constexpr UnixNanos kReorderMargin = 100'000;

std::size_t overflowReplayBound(const EventQueue::Limits& limits) {
  return std::clamp<std::size_t>(limits.maxEvents / 4, 1, 256);
}

// Where a stream resumes after `last`, the last event seen: a little before it (see
// PipelineOptions::resumeOverlap). Without an event, from when the last stream opened.
UnixNanos resumePoint(const EventCursor& last, std::chrono::milliseconds overlap) {
  if (last.eventId.empty()) return last.timeNano;
  const auto overlapNanos = std::chrono::duration_cast<std::chrono::nanoseconds>(overlap).count();
  return std::max<UnixNanos>(last.timeNano - overlapNanos, 1);
}

}  // namespace

EventStream::EventStream(DockerApi& api, EventQueue& queue, HealthState& health, Metrics& metrics,
                         const Clock& clock, const PipelineOptions& options)
    : api_(api),
      queue_(queue),
      health_(health),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      overflowReplay_(overflowReplayBound(options.eventQueue)),
      backoff_(engineBackoff(options)) {}

EventStream::~EventStream() { stop(); }

void EventStream::start(EventCursor cursor) {
  lastSeen_ = std::move(cursor);
  thread_ = std::thread([this] {
    nameThisThread("zastava-stream");
    run();
  });
}

void EventStream::stop() {
  closeStream_ = true;
  if (thread_.joinable()) thread_.join();
}

void EventStream::run() {
  while (!queue_.stopping()) {
    Error ended = streamOnce();
    if (queue_.stopping()) break;
    if (overflowed_) {
      if (!afterQueueOverflow()) break;
      continue;
    }
    onStreamFailed(ended);
    ++failedAttempts_;
    if (!queue_.sleepFor(backoff_.next())) break;
  }
}

Error EventStream::streamOnce() {
  auto version = api_.negotiate();
  if (!version.ok()) return version.error();
  // `since` is inclusive: the engine sends the last event seen again if it still has it.
  const EventCursor since = lastSeen_;
  EventQuery query;
  query.sinceNano = resumePoint(since, options_.resumeOverlap);
  if (reopeningAfterOverflow_ && recentTimes_.size() == overflowReplay_) {
    // The refused event may be stamped a little before events queued ahead of it.
    const UnixNanos floor = std::min(recentTimes_.front(), refusedAt_) - kReorderMargin;
    query.sinceNano = std::max(query.sinceNano, floor);
  }
  query.silenceCheck = options_.silenceCheck;
  auto result = api_.streamEvents(
      query, [this, since] { onStreamOpen(since); },
      [this, since](Result<EngineEvent> event) { onStreamEvent(event, since.timeNano); },
      closeStream_);
  if (result.ok()) return Error{ErrorCode::kUnavailable, "event stream closed by the engine"};
  return result.error();
}

void EventStream::onStreamOpen(const EventCursor& since) {
  streamOpenedAt_ = clock_.now();
  health_.setEngineReachable(true);
  if (inIncident_) {
    spdlog::info("docker engine reachable again (API {}) after {} failed attempts; resuming",
                 api_.apiVersion(), failedAttempts_);
  } else {
    spdlog::info("watching container events (engine API {})", api_.apiVersion());
  }
  if (everOpened_) metrics_.countReconnect();
  everOpened_ = true;
  inIncident_ = false;
  failedAttempts_ = 0;
  backoff_.reset();
  // Even a stream opened without `since` (nothing to replay) is given the window, unless the
  // ledger is new (afterStreamOpened): a stream that dies within it is not reconciled against,
  // so its undelivered events, replayed by the next one, are not also written as reconciled
  // transitions.
  queue_.pushStreamOpened(StreamOpened{
      since, streamOpenedAt_, clock_.monotonic() + options_.replayWindow, reopeningAfterOverflow_});
  reopeningAfterOverflow_ = false;
}

void EventStream::onStreamEvent(Result<EngineEvent>& event, std::int64_t since) {
  health_.working(Worker::kStream);
  queueEvent(event, since);
  health_.waiting(Worker::kStream);
}

void EventStream::queueEvent(Result<EngineEvent>& event, std::int64_t since) {
  if (!event.ok()) {
    metrics_.countEngineError("decode");
    if (!decodeWarned_) {
      spdlog::warn(
          "skipping an engine event that does not decode (counted in "
          "zastava_agent_engine_errors_total{{kind=\"decode\"}}): {}",
          event.error().message);
      decodeWarned_ = true;
    }
    return;
  }
  if (overflowed_) return;  // the stream is closing; the next one replays this event
  const UnixNanos time = event->timeNano;
  // On a resumed stream the engine first replays what it kept since `since`.
  const RecordSource source =
      since != 0 && time < streamOpenedAt_ ? RecordSource::kReplay : RecordSource::kStream;
  ReceivedEvent received = receivedEvent(std::move(event.value()), source, clock_.now());
  EventCursor cursor{time, received.eventId};
  if (!queue_.pushEvent(std::move(received))) {
    refusedAt_ = time;
    onQueueOverflow();
    return;
  }
  if (time >= lastSeen_.timeNano) lastSeen_ = std::move(cursor);
  recentTimes_.push_back(time);
  if (recentTimes_.size() > overflowReplay_) recentTimes_.pop_front();
}

void EventStream::onQueueOverflow() {
  overflowed_ = true;
  closeStream_ = true;
  queue_.pushStreamCut();
  metrics_.countEventQueueOverflow();
  spdlog::warn(
      "event queue full ({} events, {} bytes waiting for the enricher): closing the event "
      "stream to reopen it from the last event queued ({}); the engine sends the rest again",
      queue_.events(), queue_.bytes(), formatRfc3339Nanos(lastSeen_.timeNano));
}

bool EventStream::afterQueueOverflow() {
  const bool room = queue_.waitForRoom();
  overflowed_ = false;
  reopeningAfterOverflow_ = true;
  closeStream_ = false;  // before the check: a stop() after it is seen by the next stream
  return room && !queue_.stopping();
}

void EventStream::onStreamFailed(const Error& error) {
  health_.setEngineReachable(false, error.message);
  metrics_.countEngineError(errorCodeName(error.code));
  if (!inIncident_) {
    spdlog::warn(
        "docker engine: {} (retrying with backoff up to {} s; further failures are "
        "logged at debug level)",
        error.message, options_.maxBackoff.count() / 1000);
    inIncident_ = true;
  } else {
    spdlog::debug("docker engine still failing (attempt {}): {}", failedAttempts_ + 1,
                  error.message);
  }
}

}  // namespace zastava
