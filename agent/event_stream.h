// The stream thread (zastava-stream): keeps the engine's /events stream open (negotiate, stream,
// back off, resume a little before the last event queued) and only decodes and queues. It never
// waits for the enricher: when an event does not fit in the EventQueue it closes the stream,
// waits for room and reopens it from the last event it queued, so the engine replays the rest
// (zastava_agent_event_queue_overflows_total). Each (re)opening is queued as a StreamOpened
// marker, for the enricher to check the replay and reconcile.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <thread>

#include "agent/event_queue.h"
#include "agent/pipeline_options.h"
#include "collectors/docker_api.h"
#include "common/clock.h"

namespace zastava {

class HealthState;
class Metrics;

class EventStream {
 public:
  EventStream(DockerApi& api, EventQueue& queue, HealthState& health, Metrics& metrics,
              const Clock& clock, const PipelineOptions& options);
  ~EventStream();
  EventStream(const EventStream&) = delete;
  EventStream& operator=(const EventStream&) = delete;

  // Starts the thread, resuming after `cursor` (the ledger's newest engine event). Main thread,
  // once.
  void start(EventCursor cursor);
  // Closes the stream and joins the thread; the queue is stopped first. Idempotent. Main thread.
  void stop();

 private:
  void run();
  Error streamOnce();
  void onStreamOpen(const EventCursor& since);
  void onStreamEvent(Result<EngineEvent>& event, std::int64_t since);
  void queueEvent(Result<EngineEvent>& event, std::int64_t since);
  void onStreamFailed(const Error& error);
  // The queue refused an event: close the stream, to reopen it from the last event queued.
  void onQueueOverflow();
  // After an overflow closed the stream: waits for room. False when stopping.
  bool afterQueueOverflow();

  DockerApi& api_;
  EventQueue& queue_;
  HealthState& health_;
  Metrics& metrics_;
  const Clock& clock_;
  const PipelineOptions& options_;

  // Set by stop() and by an overflow: ends the current stream.
  std::atomic<bool> closeStream_{false};

  // The stream thread's own.
  EventCursor lastSeen_;  // the newest event queued
  // The times of the last overflowReplay_ events queued: after an overflow the stream resumes
  // no earlier than the oldest of them, so the replay of what was already queued stays small
  // (it must fit the queue's free half and the enricher's memory of recorded events).
  const std::size_t overflowReplay_;
  std::deque<UnixNanos> recentTimes_;
  bool reopeningAfterOverflow_ = false;
  UnixNanos refusedAt_ = 0;  // the time of the event the queue refused last
  bool overflowed_ = false;  // the queue refused an event of the current stream
  UnixNanos streamOpenedAt_ = 0;
  bool everOpened_ = false;
  bool inIncident_ = false;
  bool decodeWarned_ = false;
  int failedAttempts_ = 0;
  Backoff backoff_;  // the wait before the next reconnect

  std::thread thread_;
};

}  // namespace zastava
