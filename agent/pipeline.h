// The Pipeline moves engine facts into the Recorder on two named threads, through an
// EventQueue (event_queue.h):
//   zastava-stream: keeps the /events stream open (negotiate, stream, back off, resume a little
//                   before the last event queued) and only decodes and queues. It never waits
//                   for the enricher: when an event does not fit in the queue it closes the
//                   stream, waits for room and reopens it from the last event it queued, so the
//                   engine replays the rest (counted in event_queue_overflows_total);
//   zastava-enrich: takes the queue in order. Each time the stream (re)opens it lets the
//                   engine's replay arrive, checks that the replay holds the cursor event
//                   (if not, events may be lost: an agent.gap record), records the replay, then
//                   reconciles the ledger with list + inspect; and every auditInterval it
//                   compares the ledger with the engine's list. Other events become records
//                   at once; creates and starts are also handed to the Inspector, whose
//                   answers come back through the queue as container.inspect records.
// Each container start, and each running container whose current process reconciliation finds
// without evidence, is handed to the EvidenceCollector, which never makes the enricher wait.
// The stream is opened before the containers are listed, so nothing falls between them.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <thread>
#include <unordered_map>

#include "agent/event_queue.h"
#include "agent/inspector.h"
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
  // (it writes them right after the headers). The wait ends sooner when a live event arrives
  // behind the replay (EventQueue::waitForReplayEnd).
  std::chrono::milliseconds replayWindow{1'000};
  // How far before the last event seen the stream resumes. The engine stamps an event before it
  // publishes it, so it can deliver one a little after a later-stamped one; and its replay stops
  // at the first event older than `since`. Events replayed again are recognised and skipped.
  std::chrono::milliseconds resumeOverlap{1'000};
  EventQueue::Limits eventQueue;
  InspectorOptions inspector;
  // How often the ledger is checked against the engine's container list (one GET
  // /containers/json); 0 turns the audit off. A list that disagrees is looked at again
  // `auditConfirmDelay` later (events on their way explain most), and only what disagrees both
  // times is reconciled.
  std::chrono::seconds auditInterval{300};
  std::chrono::milliseconds auditConfirmDelay{2'000};
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
  // Stream thread.
  void runStream();
  Error streamOnce();
  void onStreamOpen(const EventCursor& since);
  void onStreamEvent(Result<EngineEvent>& event, std::int64_t since);
  void queueEvent(Result<EngineEvent>& event, std::int64_t since);
  void onStreamFailed(const Error& error);
  // The queue refused an event: close the stream, to reopen it from the last event queued.
  void onQueueOverflow();
  // After an overflow closed the stream: waits for room. False when stopping.
  bool afterQueueOverflow();

  // Enricher thread.
  void runEnricher();
  void afterStreamOpened(const StreamOpened& opened);
  void checkContinuity(const StreamOpened& opened);
  void recordReplay(const StreamOpened& opened);
  void tryReconcile();
  // The periodic audit: list, compare with the ledger, confirm, reconcile what disagrees.
  bool auditIsDue() const;
  void runAudit();
  void reconcileAfterAudit(UnixNanos listedAt, const std::vector<std::string>& disagreeing,
                           const std::vector<ContainerSummary>& engine);
  void recordEvent(const ReceivedEvent& received);
  // Asks for what only an inspect knows of a container just created or started.
  void askInspect(const ReceivedEvent& received);
  void onInspectAnswer(InspectAnswer answer);
  // A warning once per container and at most 10 a minute; debug otherwise.
  void warnInspectFailed(const InspectAnswer& answer);
  // Asks for evidence of a container whose init process `pid` has none yet; `source` is what
  // asked (the evidence record's source).
  void requestEvidence(const std::string& id, std::int64_t pid, EvidenceScan scan,
                       RecordSource source);
  void requestEvidenceOfRunning(const std::vector<ContainerInspect>& engine);

  std::chrono::milliseconds nextBackoff(int attempt) const;

  DockerApi& api_;
  Recorder& recorder_;
  EvidenceCollector& evidence_;
  HealthState& health_;
  Metrics& metrics_;
  const Clock& clock_;
  const PipelineOptions options_;

  EventQueue queue_;  // its stop flag is the Pipeline's
  Inspector inspector_;  // answers go into queue_

  // Set by stop() and by an overflow: ends the current stream.
  std::atomic<bool> closeStream_{false};

  // Stream thread only.
  EventCursor lastSeen_;  // the newest event queued
  bool overflowed_ = false;  // the queue refused an event of the current stream
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
  // The audit: armed once the first reconciliation is done.
  std::optional<std::chrono::steady_clock::time_point> nextAuditAt_;
  struct AuditSuspects {
    std::vector<std::string> ids;  // sorted
    UnixNanos listedAt = 0;
  };
  std::optional<AuditSuspects> auditSuspects_;  // a first list disagreed: look again
  UnixNanos ledgerAgreedAt_ = 0;  // when the ledger last agreed with the engine
  // Containers with an inspect on its way -> the start that arrived meanwhile (empty when none):
  // the engine answers the inspect of a created container once its start is over, so that
  // answer completes the start too.
  struct StartWaiting {
    std::string eventId;
    RecordSource source = RecordSource::kStream;
  };
  std::unordered_map<std::string, std::optional<StartWaiting>> inspecting_;
  RecentIds inspectWarned_{1024};  // containers whose failed inspect was logged as a warning
  LogLimiter inspectWarnings_{10, std::chrono::minutes(1)};
  // Running containers -> the init pid evidence was asked for; forgotten when they die.
  std::unordered_map<std::string, std::int64_t> evidencedPid_;

  std::thread streamThread_;
  std::thread enrichThread_;
};

}  // namespace zastava
