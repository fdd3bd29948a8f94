// The enricher thread (zastava-enrich): takes the EventQueue in order and makes records.
// - An engine event becomes its record at once, from the event and what the Tracker knows;
//   creates and starts are also handed to the Inspector, whose answers come back through the
//   queue and become container.inspect records.
// - Each time the stream (re)opens, it lets the engine's replay arrive, checks that the replay
//   holds the cursor event (if not, events may be lost: an agent.gap record), records the
//   replay, then reconciles the ledger with list + inspect.
// - Every auditInterval it compares the ledger with the engine's list (the audit).
// - Each container start, and each running container whose current process reconciliation
//   finds without evidence, is handed to the EvidenceCollector, which never makes it wait.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "agent/event_queue.h"
#include "agent/inspector.h"
#include "agent/pipeline_options.h"
#include "agent/recent_ids.h"
#include "agent/tracker.h"
#include "collectors/docker_api.h"
#include "common/clock.h"
#include "common/log_limiter.h"

namespace zastava {

class EvidenceCollector;
class PostureCensus;
class HealthState;
class Metrics;
class Recorder;

class Enricher {
 public:
  Enricher(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence, PostureCensus& census,
           Inspector& inspector, EventQueue& queue, HealthState& health, Metrics& metrics,
           const Clock& clock, const Redactor& redactor, const PipelineOptions& options);
  ~Enricher();
  Enricher(const Enricher&) = delete;
  Enricher& operator=(const Enricher&) = delete;

  // Restores the ledger's containers and recent events, and starts the thread. Returns the
  // ledger's cursor, for the stream to resume after. Main thread, once.
  EventCursor start();
  // Joins the thread, which returns once the queue is stopped and drained. Main thread.
  void stop();

 private:
  void run();
  // Tells the census, then the Recorder: true when the record was queued.
  bool submit(Record record);
  void afterStreamOpened(const StreamOpened& opened);
  // True when the replay holds the cursor event (nothing lost), or was `cut` short by a full
  // queue before any event from the cursor on (it proves nothing; the next stream's replay is
  // checked). Otherwise writes the gap and owes a reconciliation.
  bool checkContinuity(const StreamOpened& opened, bool cut);
  void recordReplay(const StreamOpened& opened);
  // Reconciles as if the stream opened at `opened.openedAt`, now or (after a failure) later.
  void scheduleReconcile(StreamOpened opened);
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

  DockerApi& api_;
  Recorder& recorder_;
  EvidenceCollector& evidence_;
  PostureCensus& census_;
  Inspector& inspector_;
  EventQueue& queue_;
  HealthState& health_;
  Metrics& metrics_;
  const Clock& clock_;
  const PipelineOptions& options_;

  // The enricher thread's own.
  Tracker tracker_;
  // The engine events last handed to the Recorder: one the engine replays after a reconnect or
  // restart is recognised before it reaches the Tracker, whose state it would move backwards.
  RecentIds recorded_;
  bool firstObservation_ = false;  // the ledger was empty at start: snapshots, not transitions
  std::optional<StreamOpened> reconcileDue_;  // the stream opened; reconcile not done yet
  // A gap was found, or a reconciliation was put off because the queue cut the stream: the next
  // stream whose replay arrives whole is reconciled, even one reopened after an overflow.
  bool reconcileOwed_ = false;
  MonoTime nextReconcileAt_{};  // on clock_
  int reconcileAttempts_ = 0;
  Backoff reconcileBackoff_;  // the wait before the next inventory after one failed
  // The due reconciliation is the second look at transitions the first one left to the stream
  // (anyTransitionInFlight): whatever the stream has not delivered by now, it writes.
  bool lookingAgain_ = false;
  // The audit: armed once the first reconciliation is done.
  std::optional<MonoTime> nextAuditAt_;
  struct AuditSuspects {
    std::vector<std::string> ids;  // sorted
    UnixNanos listedAt = 0;
  };
  std::optional<AuditSuspects> auditSuspects_;  // a first list disagreed: look again
  UnixNanos ledgerAgreedAt_ = 0;                // when the ledger last agreed with the engine
  // Containers with an inspect on its way -> the starts that arrived meanwhile, oldest first: the
  // engine answers the inspect of a created container once its start is over, so that answer
  // completes the first of them; a later one is asked about on its own (onInspectAnswer).
  struct StartWaiting {
    std::string eventId;
    RecordSource source = RecordSource::kStream;
  };
  std::unordered_map<std::string, std::vector<StartWaiting>> inspecting_;
  RecentIds inspectWarned_{1024};  // containers whose failed inspect was logged as a warning
  LogLimiter inspectWarnings_{10, std::chrono::minutes(1)};
  // Running containers -> the init pid evidence was asked for; forgotten when they die.
  std::unordered_map<std::string, std::int64_t> evidencedPid_;

  std::thread thread_;
};

}  // namespace zastava
