#include "agent/enricher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <iterator>

#include "agent/evidence_collector.h"
#include "agent/posture_census.h"
#include "agent/reconciler.h"
#include "buffer/recorder.h"
#include "collectors/inventory.h"
#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {

// The container.inspect of a start the container had already been restarted after when its
// inspect could be asked: a later start's record has the facts.
InspectAnswer notAsked(const std::string& id, const std::string& startId, RecordSource source) {
  return InspectAnswer{InspectRequest{id, startId, "start", source}, InspectResult::kNotAsked,
                       std::nullopt, std::string(kStartedAgainBeforeInspect), 0};
}

// The containers of an inventory that are up, with their posture findings.
std::vector<UpContainer> upNow(const Tracker& tracker,
                               const std::vector<ContainerInspect>& engine) {
  std::vector<UpContainer> up;
  for (const ContainerInspect& inspect : engine) {
    if (inspect.state.running || inspect.state.paused || inspect.state.restarting) {
      up.push_back(UpContainer{inspect.id, tracker.postureOf(inspect)});
    }
  }
  return up;
}

}  // namespace

Enricher::Enricher(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence,
                   PostureCensus& census, Inspector& inspector, EventQueue& queue,
                   HealthState& health, Metrics& metrics, const Clock& clock,
                   const Redactor& redactor, const PipelineOptions& options)
    : api_(api),
      recorder_(recorder),
      evidence_(evidence),
      census_(census),
      inspector_(inspector),
      queue_(queue),
      health_(health),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      tracker_(clock, redactor, options.posture),
      recorded_(kRecentEngineEvents),
      reconcileBackoff_(engineBackoff(options)) {}

Enricher::~Enricher() { stop(); }

bool Enricher::submit(Record record) {
  census_.observe(record);
  return recorder_.submit(std::move(record));
}

EventCursor Enricher::start() {
  const auto& ledger = recorder_.containersAtOpen();
  tracker_.restore(ledger);
  for (const std::string& eventId : recorder_.recentEngineEventsAtOpen()) {
    recorded_.remember(eventId);
  }
  EventCursor cursor = recorder_.cursor();
  firstObservation_ = ledger.empty() && cursor.timeNano == 0;
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  thread_ = std::thread([this] {
    nameThisThread("zastava-enrich");
    run();
  });
  return cursor;
}

void Enricher::stop() {
  if (thread_.joinable()) thread_.join();
}

void Enricher::run() {
  while (true) {
    health_.waiting(Worker::kEnricher);
    const bool reconcileIsDue = reconcileDue_ && clock_.monotonic() >= nextReconcileAt_;
    if (!queue_.stopping() && (reconcileIsDue || auditIsDue())) {
      health_.working(Worker::kEnricher);
      if (reconcileIsDue) {
        tryReconcile();
      } else {
        runAudit();
      }
      continue;
    }
    std::optional<MonoTime> deadline;
    if (reconcileDue_) {
      deadline = nextReconcileAt_;
    } else if (options_.auditInterval.count() > 0) {
      deadline = nextAuditAt_;
    }
    auto next = queue_.pop(deadline);
    if (!next) {
      if (queue_.stopping()) return;  // and everything queued is recorded
      continue;                       // a reconciliation or an audit is due
    }
    health_.working(Worker::kEnricher);
    if (auto* event = std::get_if<ReceivedEvent>(&*next)) {
      recordEvent(*event);
    } else if (auto* answer = std::get_if<InspectAnswer>(&*next)) {
      onInspectAnswer(std::move(*answer));
    } else if (auto* opened = std::get_if<StreamOpened>(&*next)) {
      afterStreamOpened(*opened);
    }  // a StreamCut after its stream's replay was recorded: nothing to do
  }
}

void Enricher::afterStreamOpened(const StreamOpened& opened) {
  if (opened.afterOverflow && !opened.since.eventId.empty()) {
    // Reopened to catch up, engine healthy: once the replay reaches the cursor event, nothing
    // was lost and the events are recorded as they come (no fixed wait, no reconciliation).
    if (!queue_.waitForEvent(opened.since.eventId, opened.replayDeadline)) return;
    if (queue_.frontIsStreamOpened()) return;  // the next stream checks
    if (checkContinuity(opened, queue_.replayCut(opened.openedAt)) && !reconcileOwed_) return;
  }
  health_.setInventoryDone(false, "reconciling with the engine after the event stream opened");
  // A new ledger's first stream has nothing to replay, and its reconciliation writes snapshots
  // only: nothing a later replay could write again. Any other stream waits for its replay.
  const bool mayReplay = !firstObservation_ || opened.since.timeNano != 0;
  if (mayReplay && !queue_.waitForReplayEnd(opened.openedAt, opened.replayDeadline)) return;
  if (queue_.stopping()) return;
  // That stream died before its replay: the next one checks.
  if (queue_.frontIsStreamOpened()) return;
  const bool cut = queue_.replayCut(opened.openedAt);
  if (!opened.afterOverflow) checkContinuity(opened, cut);  // else checked above
  recordReplay(opened);
  if (cut) {
    // The next stream delivers the rest of the replay: a reconciliation now would write, as
    // transitions the engine did not deliver, what it is about to deliver.
    reconcileDue_.reset();
    reconcileOwed_ = true;
    return;
  }
  scheduleReconcile(opened);
}

bool Enricher::checkContinuity(const StreamOpened& opened, bool cut) {
  // No engine event recorded yet: nothing anchors a proof either way. The stream resumed from
  // when it last opened and reconciliation covers the rest (docs/records.md).
  if (opened.since.eventId.empty()) return false;
  // The engine forgets its oldest events first: if it replays the cursor event, it still has
  // every event published after it.
  const ReplayCheck replay = queue_.checkReplay(opened.since, opened.openedAt);
  if (replay.holdsCursor) return true;  // the replay covers the outage
  // Cut short by the queue before it reached the cursor or anything after it: it proves nothing
  // either way. The next stream resumes from the same cursor and is checked in turn.
  if (cut && replay.firstAfter == 0) return true;
  // Up to the first event after the cursor that the replay has, else when the stream opened.
  const UnixNanos to =
      replay.firstAfter != 0 ? std::min(opened.openedAt, replay.firstAfter) : opened.openedAt;
  std::string reason =
      "the engine no longer had the events after the last one recorded (it restarted, or more "
      "than 256 events happened meanwhile); reconciliation fills in container states";
  spdlog::warn("events between {} and {} may be missing: {}",
               formatRfc3339Nanos(opened.since.timeNano), formatRfc3339Nanos(to), reason);
  metrics_.countGap();
  submit(tracker_.gap(opened.since.timeNano, to, std::move(reason)));
  reconcileOwed_ = true;
  return false;
}

void Enricher::recordReplay(const StreamOpened& opened) {
  while (auto replayed = queue_.popReplayedBefore(opened.openedAt)) recordEvent(*replayed);
}

void Enricher::scheduleReconcile(StreamOpened opened) {
  reconcileDue_ = std::move(opened);
  nextReconcileAt_ = {};
  reconcileAttempts_ = 0;
  reconcileBackoff_.reset();
  lookingAgain_ = false;
  tryReconcile();
}

void Enricher::tryReconcile() {
  const MonoTime started = clock_.monotonic();
  auto engine = takeInventory(
      api_, options_.inventoryConcurrency, queue_.stopFlag(),
      [this](const Error& error) { metrics_.countEngineError(errorCodeName(error.code)); });
  if (!engine.ok()) {
    if (engine.error().code == ErrorCode::kCancelled) return;
    health_.setInventoryDone(false, "container inventory failed: " + engine.error().message);
    if (reconcileAttempts_ == 0) {
      spdlog::warn("container inventory failed, retrying with backoff: {}", engine.error().message);
    }
    ++reconcileAttempts_;
    nextReconcileAt_ = clock_.monotonic() + reconcileBackoff_.next();
    return;
  }
  // The stream was closed (queue full) since it opened: what happened after it opened may be
  // neither queued nor recorded, so a container missing from the list may have its destroy
  // still to come. The next stream's replay brings it, and that stream is reconciled instead.
  if (queue_.holdsCut()) {
    reconcileDue_.reset();
    reconcileOwed_ = true;
    return;
  }
  ReconcileContext context;
  context.streamOpenedAt = reconcileDue_->openedAt;
  context.now = clock_.now();
  context.firstObservation = firstObservation_;
  if (lookingAgain_) context.inFlight = {};
  context.queued = [this](std::string_view id, std::string_view action) {
    return queue_.holds(id, action);
  };
  const bool lookAgain = !lookingAgain_ && anyTransitionInFlight(*engine, context);
  auto records = reconcile(tracker_, *engine, context);
  std::size_t transitions = 0;
  for (Record& record : records) {
    record.streamOpenedAt = reconcileDue_->openedAt;
    if (record.source == RecordSource::kReconcile) {
      metrics_.countReconciled(record.action);
      ++transitions;
    }
    if ((record.action == "start" || record.action == "restart") && record.container.posture) {
      census_.countStart(*record.container.posture);
    }
    submit(std::move(record));
  }
  census_.inventory(upNow(tracker_, *engine));
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  requestEvidenceOfRunning(*engine);
  spdlog::info("reconciled {} containers with the engine in {:.3f} s: {} {}{}", engine->size(),
               clock_.secondsSince(started), firstObservation_ ? records.size() : transitions,
               firstObservation_ ? "snapshots" : "transitions the engine did not deliver",
               lookingAgain_ ? " (second look at transitions dated as the stream opened)" : "");
  firstObservation_ = false;
  reconcileOwed_ = false;
  lookingAgain_ = lookAgain;
  if (lookAgain) {
    nextReconcileAt_ = clock_.monotonic() + options_.lookAgainDelay;
    reconcileAttempts_ = 0;
    reconcileBackoff_.reset();
  } else {
    reconcileDue_.reset();
  }
  health_.setInventoryDone(true);
  ledgerAgreedAt_ = context.now;
  auditSuspects_.reset();
  if (options_.auditInterval.count() > 0) {
    nextAuditAt_ = clock_.monotonic() + options_.auditInterval;
  }
}

bool Enricher::auditIsDue() const {
  return !reconcileDue_ && nextAuditAt_ && clock_.monotonic() >= *nextAuditAt_;
}

void Enricher::runAudit() {
  const MonoTime started = clock_.monotonic();
  nextAuditAt_ = started + options_.auditInterval;
  const UnixNanos listedAt = clock_.now();
  auto listed = api_.listContainers();
  if (!listed.ok()) {
    // An engine that is down also ends the stream, whose reconnection reconciles.
    metrics_.countEngineError(errorCodeName(listed.error().code));
    metrics_.countAudit("failed");
    spdlog::debug("audit: cannot list the containers: {}", listed.error().message);
    auditSuspects_.reset();
    return;
  }
  std::vector<std::string> disagreeing = auditDisagreements(tracker_, *listed);
  if (!auditSuspects_ && !disagreeing.empty()) {
    // Events the engine sent before its answer may still be on their way (queued, or in the
    // socket): look again once they are recorded; only what disagrees both times counts.
    auditSuspects_ = AuditSuspects{std::move(disagreeing), listedAt};
    nextAuditAt_ = started + options_.lookAgainDelay;
    return;
  }
  if (auditSuspects_) {
    std::vector<std::string> both;
    std::set_intersection(auditSuspects_->ids.begin(), auditSuspects_->ids.end(),
                          disagreeing.begin(), disagreeing.end(), std::back_inserter(both));
    disagreeing = std::move(both);
  }
  if (disagreeing.empty()) {
    metrics_.countAudit("agree");
    ledgerAgreedAt_ = auditSuspects_ ? auditSuspects_->listedAt : listedAt;
    auditSuspects_.reset();
    return;
  }
  const UnixNanos firstListedAt = auditSuspects_->listedAt;
  auditSuspects_.reset();
  metrics_.countAudit("disagree");
  reconcileAfterAudit(firstListedAt, disagreeing, *listed);
}

void Enricher::reconcileAfterAudit(UnixNanos listedAt, const std::vector<std::string>& disagreeing,
                                   const std::vector<ContainerSummary>& engine) {
  std::string names;
  for (const std::string& id : disagreeing) {
    std::string name;
    if (const ContainerFacts* known = tracker_.find(id)) name = known->name;
    for (const ContainerSummary& listed : engine) {
      if (listed.id == id && !listed.names.empty()) name = listed.names.front().substr(1);
    }
    if (!names.empty()) names += ", ";
    names += (name.empty() ? id.substr(0, 12) : name);
  }
  metrics_.countAuditDisagreements(disagreeing.size());
  spdlog::warn(
      "audit: the ledger disagrees with the engine about {} container(s): {}; events were lost "
      "(cause unknown): writing a gap record and reconciling",
      disagreeing.size(), names);
  metrics_.countGap();
  submit(tracker_.gap(
      ledgerAgreedAt_, listedAt,
      "the periodic audit found the ledger disagreeing with the engine about " + names +
          ": their events in this span never arrived (cause unknown); reconciliation wrote "
          "what changed"));
  // Transitions before the first list that the stream has not delivered since are lost.
  scheduleReconcile(StreamOpened{EventCursor{}, listedAt, {}});
}

void Enricher::recordEvent(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  // Replayed again after a reconnect or restart, or a destroy reconciliation wrote first.
  if (recorded_.contains(received.eventId) || tracker_.destroyAlreadyRecorded(event)) {
    metrics_.countDuplicates(1);
    return;
  }
  // One dropped (queue full) is not remembered: a later replay may still bring it.
  if (submit(tracker_.fromEvent(received))) recorded_.remember(received.eventId);
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  askInspect(received);
  if (event.action == "die" || event.action == "destroy") evidencedPid_.erase(event.actorId);
}

void Enricher::askInspect(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  if (queue_.stopping() || (event.action != "create" && event.action != "start")) return;
  if (event.action == "start") {
    const auto inFlight = inspecting_.find(event.actorId);
    if (inFlight != inspecting_.end()) {
      inFlight->second.push_back(StartWaiting{received.eventId, received.source});
      return;
    }
  }
  inspecting_[event.actorId] = {};
  inspector_.request(
      InspectRequest{event.actorId, received.eventId, event.action, received.source});
}

void Enricher::onInspectAnswer(InspectAnswer answer) {
  const std::string id = answer.request.containerId;
  std::vector<StartWaiting> waiting;
  if (const auto it = inspecting_.find(id); it != inspecting_.end()) {
    waiting = std::move(it->second);
    inspecting_.erase(it);
  }
  // A start that arrived while the create's inspect was on its way: the engine answered once
  // that start was over, so the answer completes it; unless it still says "created" (it
  // answered first).
  auto unanswered = waiting.begin();
  if (answer.request.action == "create" && unanswered != waiting.end() &&
      !(answer.inspect && answer.inspect->state.status == "created")) {
    answer.request = InspectRequest{id, unanswered->eventId, "start", unanswered->source};
    ++unanswered;
  }
  Record inspected = tracker_.inspected(answer);
  if (answer.request.action == "start" && inspected.container.posture) {
    census_.countStart(*inspected.container.posture);
  }
  submit(std::move(inspected));
  if (answer.result == InspectResult::kFailed) warnInspectFailed(answer);
  // Starts the answer does not describe: the newest is asked about on its own; those before
  // it were over before anyone could ask.
  if (unanswered != waiting.end()) {
    for (; unanswered + 1 != waiting.end(); ++unanswered) {
      submit(tracker_.inspected(notAsked(id, unanswered->eventId, unanswered->source)));
    }
    inspecting_[id] = {};
    inspector_.request(InspectRequest{id, unanswered->eventId, "start", unanswered->source});
  }
  // The evidence of a start; not when the inspect failed: the next reconciliation asks.
  if (answer.request.action != "start" || answer.result == InspectResult::kFailed ||
      queue_.stopping()) {
    return;
  }
  // Not running (or gone) by now: the evidence record will say it exited first.
  const auto& inspect = answer.inspect;
  const bool running = inspect && inspect->state.running;
  requestEvidence(id, running ? inspect->state.pid : 0, EvidenceScan::kStart,
                  answer.request.source);
}

void Enricher::warnInspectFailed(const InspectAnswer& answer) {
  const std::string& id = answer.request.containerId;
  const bool firstForContainer = !inspectWarned_.contains(id);
  inspectWarned_.remember(id);
  std::uint64_t heldBack = 0;
  if (!firstForContainer || !inspectWarnings_.allow(clock_.now(), heldBack)) {
    spdlog::debug("no inspect facts for the {} of {}: {}", answer.request.action, id,
                  answer.problem);
    return;
  }
  spdlog::warn(
      "no image ID, pid or security posture for the {} of container {}: {}{}",
      answer.request.action, id.substr(0, 12), answer.problem,
      heldBack == 0 ? std::string() : fmt::format(" ({} more such failures not logged)", heldBack));
}

void Enricher::requestEvidence(const std::string& id, std::int64_t pid, EvidenceScan scan,
                               RecordSource source) {
  const auto known = evidencedPid_.find(id);
  if (pid != 0 && known != evidencedPid_.end() && known->second == pid) return;
  const ContainerFacts* facts = tracker_.find(id);
  if (facts == nullptr) return;
  EvidenceRequest request = evidenceRequest(*facts, scan, source);
  request.container.pid = pid;
  // Only a queued scan counts: one dropped (queue full) is asked for again at the next
  // reconciliation.
  if (evidence_.request(std::move(request)) && pid != 0) evidencedPid_[id] = pid;
}

void Enricher::requestEvidenceOfRunning(const std::vector<ContainerInspect>& engine) {
  std::unordered_map<std::string, std::int64_t> running;
  const RecordSource source =
      firstObservation_ ? RecordSource::kSnapshot : RecordSource::kReconcile;
  for (const ContainerInspect& inspect : engine) {
    if (!inspect.state.running || inspect.state.pid == 0) continue;
    requestEvidence(inspect.id, inspect.state.pid, EvidenceScan::kReconcile, source);
    const auto known = evidencedPid_.find(inspect.id);
    if (known != evidencedPid_.end()) running.insert(*known);
  }
  evidencedPid_ = std::move(running);  // forget containers that stopped unseen
}

}  // namespace zastava
