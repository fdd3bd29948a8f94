// The Pipeline's enricher thread (zastava-enrich): see pipeline.h. The stream thread and the
// Pipeline's lifecycle are in pipeline.cpp.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <chrono>

#include "agent/evidence_collector.h"
#include "agent/pipeline.h"
#include "agent/reconciler.h"
#include "buffer/recorder.h"
#include "collectors/inventory.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {

// A start's inspect that fails is asked again after each of these (the engine may answer an
// error while it is busy with the container); a container that is gone is not asked again.
constexpr std::array<std::chrono::milliseconds, 2> kInspectRetryDelays{
    std::chrono::milliseconds(100), std::chrono::milliseconds(400)};

// The engine or a proxy answered an error, or the connection broke: worth asking again. Not a
// refusal (asking again is refused again), a timeout (the engine already had 30 s), a stop.
bool worthRetrying(ErrorCode code) {
  return code == ErrorCode::kProtocol || code == ErrorCode::kMalformed ||
         code == ErrorCode::kUnavailable;
}

// "failed", "failed 3 times".
std::string failedTimes(std::size_t attempts) {
  return attempts == 1 ? "failed" : "failed " + std::to_string(attempts) + " times";
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

void Pipeline::runEnricher() {
  while (true) {
    health_.waiting(Worker::kEnricher);
    const bool reconcileIsDue =
        reconcileDue_ && std::chrono::steady_clock::now() >= nextReconcileAt_;
    if (reconcileIsDue && !queue_.stopping()) {
      health_.working(Worker::kEnricher);
      tryReconcile();
      continue;
    }
    auto next = queue_.pop(reconcileDue_ ? std::optional(nextReconcileAt_) : std::nullopt);
    if (!next) {
      if (queue_.stopping()) return;  // and everything queued is recorded
      continue;                       // the reconciliation is due
    }
    health_.working(Worker::kEnricher);
    if (auto* event = std::get_if<ReceivedEvent>(&*next)) {
      recordEvent(*event);
    } else {
      afterStreamOpened(std::get<StreamOpened>(*next));
    }
  }
}

void Pipeline::afterStreamOpened(const StreamOpened& opened) {
  health_.setInventoryDone(false, "reconciling with the engine after the event stream opened");
  // A new ledger's first stream has nothing to replay, and its reconciliation writes snapshots
  // only: nothing a later replay could write again. Any other stream waits for its replay.
  const bool mayReplay = !firstObservation_ || opened.since.timeNano != 0;
  if (mayReplay && !queue_.waitForReplayEnd(opened.openedAt, opened.replayDeadline)) return;
  if (queue_.stopping()) return;
  // That stream died before its replay: the next one checks.
  if (queue_.frontIsStreamOpened()) return;
  checkContinuity(opened);
  recordReplay(opened);
  reconcileDue_ = opened;
  nextReconcileAt_ = {};
  reconcileAttempts_ = 0;
  tryReconcile();
}

void Pipeline::checkContinuity(const StreamOpened& opened) {
  // No engine event recorded yet: nothing anchors a proof either way. The stream resumed from
  // when it last opened and reconciliation covers the rest (docs/records.md).
  if (opened.since.eventId.empty()) return;
  // The engine forgets its oldest events first: if it replays the cursor event, it still has
  // every event published after it.
  const ReplayCheck replay = queue_.checkReplay(opened.since, opened.openedAt);
  if (replay.holdsCursor) return;  // the replay covers the outage
  // Up to the first event after the cursor that the replay has, else when the stream opened.
  const UnixNanos to =
      replay.firstAfter != 0 ? std::min(opened.openedAt, replay.firstAfter) : opened.openedAt;
  std::string reason =
      "the engine no longer had the events after the last one recorded (it restarted, or more "
      "than 256 events happened meanwhile); reconciliation fills in container states";
  spdlog::warn("events between {} and {} may be missing: {}",
               formatRfc3339Nanos(opened.since.timeNano), formatRfc3339Nanos(to), reason);
  metrics_.countGap();
  recorder_.submit(tracker_.gap(opened.since.timeNano, to, std::move(reason)));
}

void Pipeline::recordReplay(const StreamOpened& opened) {
  while (auto replayed = queue_.popReplayedBefore(opened.openedAt)) recordEvent(*replayed);
}

void Pipeline::tryReconcile() {
  const auto started = std::chrono::steady_clock::now();
  auto engine = takeInventory(
      api_, options_.inventoryConcurrency, queue_.stopFlag(),
      [this](const Error& error) { metrics_.countEngineError(errorCodeName(error.code)); });
  if (!engine.ok()) {
    if (engine.error().code == ErrorCode::kCancelled) return;
    health_.setInventoryDone(false, "container inventory failed: " + engine.error().message);
    if (reconcileAttempts_ == 0) {
      spdlog::warn("container inventory failed, retrying with backoff: {}", engine.error().message);
    }
    nextReconcileAt_ = std::chrono::steady_clock::now() + nextBackoff(reconcileAttempts_++);
    return;
  }
  ReconcileContext context;
  context.streamOpenedAt = reconcileDue_->openedAt;
  context.now = clock_.now();
  context.firstObservation = firstObservation_;
  context.queued = [this](std::string_view id, std::string_view action) {
    return queue_.holds(id, action);
  };
  auto records = reconcile(tracker_, *engine, context);
  std::size_t transitions = 0;
  for (Record& record : records) {
    record.streamOpenedAt = reconcileDue_->openedAt;
    if (record.source == RecordSource::kReconcile) {
      metrics_.countReconciled(record.action);
      ++transitions;
    }
    recorder_.submit(std::move(record));
  }
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  requestEvidenceOfRunning(*engine);
  spdlog::info("reconciled {} containers with the engine in {:.3f} s: {} {}", engine->size(),
               secondsSince(started), firstObservation_ ? records.size() : transitions,
               firstObservation_ ? "snapshots" : "transitions the engine did not deliver");
  firstObservation_ = false;
  reconcileDue_.reset();
  health_.setInventoryDone(true);
}

void Pipeline::recordEvent(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  // Replayed again after a reconnect or restart, or a destroy reconciliation wrote first.
  if (recorded_.contains(received.eventId) || tracker_.destroyAlreadyRecorded(event)) {
    metrics_.countDuplicate();
    return;
  }
  InspectOutcome inspected;
  if (!queue_.stopping() && Tracker::wantsInspect(event.action)) inspected = inspectForRecord(event);
  Record record = tracker_.fromEvent(received, inspected.inspect);
  record.inspectError = inspected.problem;
  // One dropped (queue full) is not remembered: a later replay may still bring it.
  if (recorder_.submit(std::move(record))) {
    recorded_.remember(received.eventId);
  }
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  if (event.action == "start" && !inspected.failed && !queue_.stopping()) {
    // Not running (or gone) by now: the evidence record will say it exited first. When the
    // inspect failed, the next reconciliation asks instead.
    const auto& inspect = inspected.inspect;
    const bool running = inspect && inspect->state.running;
    requestEvidence(event.actorId, running ? inspect->state.pid : 0, EvidenceScan::kStart,
                    received.source);
  } else if (event.action == "die" || event.action == "destroy") {
    evidencedPid_.erase(event.actorId);
  }
}

Pipeline::InspectOutcome Pipeline::inspectForRecord(const EngineEvent& event) {
  for (std::size_t attempt = 0;; ++attempt) {
    auto result = api_.inspectContainer(event.actorId);
    if (result.ok() && result->has_value()) return {std::move(result).value(), false, {}};
    if (result.ok()) {
      metrics_.countRecordWithoutInspect("gone");
      return {std::nullopt, false, "the container was gone before it could be inspected"};
    }
    const Error& error = result.error();
    metrics_.countEngineError(errorCodeName(error.code));
    const bool last = attempt == kInspectRetryDelays.size() || !worthRetrying(error.code);
    if (last || !queue_.sleepFor(kInspectRetryDelays[attempt])) {
      const std::size_t attempts = attempt + 1;
      warnInspectFailed(event, error, attempts);
      metrics_.countRecordWithoutInspect("failed");
      return {std::nullopt, true, "the inspect " + failedTimes(attempts) + ": " + error.message};
    }
  }
}

void Pipeline::warnInspectFailed(const EngineEvent& event, const Error& error,
                                 std::size_t attempts) {
  const bool firstForContainer = !inspectWarned_.contains(event.actorId);
  inspectWarned_.remember(event.actorId);
  std::uint64_t heldBack = 0;
  if (!firstForContainer || !inspectWarnings_.allow(clock_.now(), heldBack)) {
    spdlog::debug("recording {} of {} without inspect details: the inspect {}: {}", event.action,
                  event.actorId, failedTimes(attempts), error.message);
    return;
  }
  spdlog::warn(
      "recording {} of container {} without its image ID, pid and security posture: the "
      "inspect {}: {}{}",
      event.action, event.actorId.substr(0, 12), failedTimes(attempts), error.message,
      heldBack == 0 ? std::string()
                    : fmt::format(" ({} more such failures not logged)", heldBack));
}

void Pipeline::requestEvidence(const std::string& id, std::int64_t pid, EvidenceScan scan,
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

void Pipeline::requestEvidenceOfRunning(const std::vector<ContainerInspect>& engine) {
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
