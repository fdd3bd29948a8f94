// The Pipeline moves engine facts into the Recorder on two named threads:
//   zastava-stream: keeps the /events stream open (negotiate, stream, back off, resume a little
//                   before the last event seen) and only decodes and queues. When the queue is
//                   full it waits for room at most queueFullWait, then drops (counted);
//   zastava-enrich: takes the queue in order. Each time the stream (re)opens it lets the
//                   engine's replay arrive, checks that the replay holds the cursor event
//                   (if not, events may be lost: an agent.gap record), records the replay, then
//                   reconciles the ledger with list + inspect. Other events become records,
//                   starts inspected (see Tracker::wantsInspect).
// Each container start, and each running container whose current process reconciliation finds
// without evidence, is handed to the EvidenceCollector, which never makes the enricher wait.
// The stream is opened before the containers are listed, so nothing falls between them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <variant>

#include "agent/recent_ids.h"
#include "agent/tracker.h"
#include "collectors/docker_api.h"
#include "common/clock.h"
#include "common/log_limiter.h"

namespace zastava {

class EvidenceCollector;
class HealthState;
class Metrics;
class Recorder;

struct PipelineOptions {
  int inventoryConcurrency = 8;
  std::chrono::milliseconds initialBackoff{500};
  std::chrono::milliseconds maxBackoff{30'000};
  std::chrono::seconds silenceCheck{60};
  // How long the engine's replay of buffered events may take to arrive after the stream opens
  // (it writes them right after the headers).
  std::chrono::milliseconds replayWindow{1'000};
  // How far before the last event seen the stream resumes. The engine stamps an event before it
  // publishes it, so it can deliver one a little after a later-stamped one; and its replay stops
  // at the first event older than `since`. Events replayed again are recognised and skipped.
  std::chrono::milliseconds resumeOverlap{1'000};
  std::size_t eventQueueCapacity = 1024;
  // How long the stream waits for room in a full queue before it drops an event; once it has
  // dropped one it drops without waiting until the enricher takes an event. Meanwhile the
  // engine keeps what it publishes in its 1024-event buffer for this reader, and only drops
  // when that is full for 100 ms: a real engine publishes far fewer than 1024 events a second,
  // so waiting loses nothing there, where dropping here always loses.
  std::chrono::milliseconds queueFullWait{1'000};
};

class Pipeline {
 public:
  Pipeline(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence, HealthState& health,
           Metrics& metrics, const Clock& clock, const Redactor& redactor,
           PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Restores the ledger and starts both threads. Main thread, once.
  void start();
  // Stops both threads and joins them: the stream is closed within about a second (libcurl's
  // progress callback period); events already queued are recorded without new inspects.
  // Idempotent. Main thread.
  void stop();

 private:
  // The stream (re)opened, resuming after `since`.
  struct StreamOpened {
    EventCursor since;
    UnixNanos openedAt = 0;
    std::chrono::steady_clock::time_point replayDeadline;
  };
  using QueueItem = std::variant<ReceivedEvent, StreamOpened>;

  // Stream thread.
  void runStream();
  Error streamOnce();
  void onStreamOpen(const EventCursor& since);
  void onStreamEvent(Result<EngineEvent>& event, std::int64_t since);
  void queueEvent(Result<EngineEvent>& event, std::int64_t since);
  void onStreamFailed(const Error& error);
  bool enqueue(QueueItem item);

  // Enricher thread.
  void runEnricher();
  void afterStreamOpened(const StreamOpened& opened);
  bool nextIsStreamOpened();
  void checkContinuity(const StreamOpened& opened);
  void recordReplay(const StreamOpened& opened);
  // Takes the queue's front item. Holds mu_.
  QueueItem popFront();
  void tryReconcile();
  bool isQueued(std::string_view id, std::string_view action);
  void recordEvent(const ReceivedEvent& received);
  // What the inspect of a start found: the container's facts, or none and why (`problem`, the
  // record's inspectError): it was gone, or the engine could not answer (`failed`, after asking
  // again with back-off).
  struct InspectOutcome {
    std::optional<ContainerInspect> inspect;
    bool failed = false;
    std::string problem;  // what the record's inspectError says; empty when inspected
  };
  InspectOutcome inspectForRecord(const EngineEvent& event);
  // A warning once per container and at most 10 a minute; debug otherwise.
  void warnInspectFailed(const EngineEvent& event, const Error& error, std::size_t attempts);
  // Asks for evidence of a container whose init process `pid` has none yet; `source` is what
  // asked (the evidence record's source).
  void requestEvidence(const std::string& id, std::int64_t pid, EvidenceScan scan,
                       RecordSource source);
  void requestEvidenceOfRunning(const std::vector<ContainerInspect>& engine);

  // Waits `duration` or until stop(); returns false when stopping. Any pipeline thread.
  bool sleepUnlessStopped(std::chrono::milliseconds duration);
  std::chrono::milliseconds nextBackoff(int attempt) const;

  DockerApi& api_;
  Recorder& recorder_;
  EvidenceCollector& evidence_;
  HealthState& health_;
  Metrics& metrics_;
  const Clock& clock_;
  const PipelineOptions options_;

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  std::condition_variable room_;  // the enricher took an event from a full queue
  std::deque<QueueItem> queue_;   // guarded by mu_
  std::size_t queuedEvents_ = 0;  // guarded by mu_: ReceivedEvent items in queue_
  bool dropping_ = false;         // guarded by mu_: the queue was full and an event dropped

  // Stream thread only.
  EventCursor lastSeen_;
  UnixNanos streamOpenedAt_ = 0;
  bool everOpened_ = false;
  bool inIncident_ = false;
  bool decodeWarned_ = false;
  int failedAttempts_ = 0;

  // Enricher thread only.
  Tracker tracker_;
  // The engine events last handed to the Recorder: one the engine replays after a reconnect or
  // restart is recognised before it reaches the Tracker, whose state it would move backwards.
  RecentIds recorded_;
  bool firstObservation_ = false;  // the ledger was empty at start: snapshots, not transitions
  std::optional<StreamOpened> reconcileDue_;  // the stream opened; reconcile not done yet
  std::chrono::steady_clock::time_point nextReconcileAt_{};
  int reconcileAttempts_ = 0;
  RecentIds inspectWarned_{1024};  // containers whose failed inspect was logged as a warning
  LogLimiter inspectWarnings_{10, std::chrono::minutes(1)};
  // Running containers -> the init pid evidence was asked for; forgotten when they die.
  std::unordered_map<std::string, std::int64_t> evidencedPid_;

  std::thread streamThread_;
  std::thread enrichThread_;
};

}  // namespace zastava
