#include "agent/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <vector>

#include "agent/evidence_collector.h"
#include "agent/reconciler.h"
#include "buffer/recorder.h"
#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {


// Where a stream resumes after `last`, the last event seen: a little before it (see
// PipelineOptions::resumeOverlap). Without an event, from when the last stream opened.
UnixNanos resumePoint(const EventCursor& last, std::chrono::milliseconds overlap) {
  if (last.eventId.empty()) return last.timeNano;
  const auto overlapNanos = std::chrono::duration_cast<std::chrono::nanoseconds>(overlap).count();
  return std::max<UnixNanos>(last.timeNano - overlapNanos, 1);
}

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Pipeline::Pipeline(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence,
                   HealthState& health, Metrics& metrics, const Clock& clock,
                   const Redactor& redactor, PipelineOptions options)
    : api_(api),
      recorder_(recorder),
      evidence_(evidence),
      health_(health),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      tracker_(clock, redactor),
      recorded_(kRecentEngineEvents) {}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
  const auto& ledger = recorder_.containersAtOpen();
  tracker_.restore(ledger);
  for (const std::string& eventId : recorder_.recentEngineEventsAtOpen()) {
    recorded_.remember(eventId);
  }
  lastSeen_ = recorder_.cursor();
  firstObservation_ = ledger.empty() && lastSeen_.timeNano == 0;
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  streamThread_ = std::thread([this] {
    nameThisThread("zastava-stream");
    runStream();
  });
  enrichThread_ = std::thread([this] {
    nameThisThread("zastava-enrich");
    runEnricher();
  });
}

void Pipeline::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  room_.notify_all();
  if (streamThread_.joinable()) streamThread_.join();
  if (enrichThread_.joinable()) enrichThread_.join();
}

bool Pipeline::sleepUnlessStopped(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !wake_.wait_for(lock, duration, [this] { return stop_.load(); });
}

std::chrono::milliseconds Pipeline::nextBackoff(int attempt) const {
  // Exponential with full jitter in [base/2, base]: many agents restarted together spread out.
  thread_local std::mt19937 random{std::random_device{}()};
  auto base = options_.initialBackoff * (1LL << std::min(attempt, 16));
  base = std::min<std::chrono::milliseconds>(base, options_.maxBackoff);
  std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
  return std::chrono::milliseconds(jitter(random));
}

// ---- stream thread ----

void Pipeline::runStream() {
  while (!stop_) {
    Error ended = streamOnce();
    if (stop_) break;
    onStreamFailed(ended);
    if (!sleepUnlessStopped(nextBackoff(failedAttempts_++))) break;
  }
}

Error Pipeline::streamOnce() {
  auto version = api_.negotiate();
  if (!version.ok()) return version.error();
  // `since` is inclusive: the engine sends the last event seen again if it still has it.
  const EventCursor since = lastSeen_;
  EventQuery query;
  query.sinceNano = resumePoint(since, options_.resumeOverlap);
  query.silenceCheck = options_.silenceCheck;
  auto result = api_.streamEvents(
      query, [this, since] { onStreamOpen(since); },
      [this, since](Result<EngineEvent> event) { onStreamEvent(event, since.timeNano); }, stop_);
  if (result.ok()) return Error{ErrorCode::kUnavailable, "event stream closed by the engine"};
  return result.error();
}

void Pipeline::onStreamOpen(const EventCursor& since) {
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
  // Even a stream opened without `since` (nothing to replay) is given the window, unless the
  // ledger is new (afterStreamOpened): a stream that dies within it is not reconciled against,
  // so its undelivered events, replayed by the next one, are not also written as reconciled
  // transitions.
  enqueue(StreamOpened{since, streamOpenedAt_,
                       std::chrono::steady_clock::now() + options_.replayWindow});
}

void Pipeline::onStreamEvent(Result<EngineEvent>& event, std::int64_t since) {
  health_.working(Worker::kStream);
  queueEvent(event, since);
  health_.waiting(Worker::kStream);
}

void Pipeline::queueEvent(Result<EngineEvent>& event, std::int64_t since) {
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
  const UnixNanos time = event->timeNano;
  // On a resumed stream the engine first replays what it kept since `since`.
  const RecordSource source =
      since != 0 && time < streamOpenedAt_ ? RecordSource::kReplay : RecordSource::kStream;
  ReceivedEvent received = receivedEvent(std::move(event.value()), source, clock_.now());
  if (time >= lastSeen_.timeNano) lastSeen_ = {time, received.eventId};
  enqueue(std::move(received));
}

bool Pipeline::enqueue(QueueItem item) {
  const bool isEvent = std::holds_alternative<ReceivedEvent>(item);
  {
    std::unique_lock lock(mu_);
    auto full = [this] { return queuedEvents_ >= options_.eventQueueCapacity; };
    if (isEvent && full() && !dropping_) {
      room_.wait_for(lock, options_.queueFullWait, [&] { return stop_ || !full(); });
    }
    if (isEvent && full()) {
      metrics_.countDropped("event_queue_full");
      if (!dropping_) {
        spdlog::error("event queue full ({} events): dropping engine events until it drains",
                      queuedEvents_);
        dropping_ = true;
      }
      return false;
    }
    queue_.push_back(std::move(item));
    if (isEvent) ++queuedEvents_;
  }
  wake_.notify_all();
  return true;
}

void Pipeline::onStreamFailed(const Error& error) {
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

// ---- enricher thread ----

void Pipeline::runEnricher() {
  while (true) {
    std::optional<QueueItem> next;
    bool reconcileNow = false;
    health_.waiting(Worker::kEnricher);
    {
      std::unique_lock lock(mu_);
      auto reconcileIsDue = [this] {
        return reconcileDue_ && std::chrono::steady_clock::now() >= nextReconcileAt_;
      };
      while (!stop_ && queue_.empty() && !reconcileIsDue()) {
        if (reconcileDue_) {
          wake_.wait_until(lock, nextReconcileAt_);
        } else {
          wake_.wait(lock);
        }
      }
      if (stop_ && queue_.empty()) return;
      reconcileNow = !stop_ && reconcileIsDue();
      if (!reconcileNow) {
        next = popFront();
      }
    }
    health_.working(Worker::kEnricher);
    if (reconcileNow) {
      tryReconcile();
    } else if (auto* event = std::get_if<ReceivedEvent>(&*next)) {
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
  if (mayReplay) {
    std::unique_lock lock(mu_);
    wake_.wait_until(lock, opened.replayDeadline, [this] { return stop_.load(); });
  }
  if (stop_) return;
  if (nextIsStreamOpened()) return;  // that stream died before its replay: the next one checks
  checkContinuity(opened);
  recordReplay(opened);
  reconcileDue_ = opened;
  nextReconcileAt_ = {};
  reconcileAttempts_ = 0;
  tryReconcile();
}

bool Pipeline::nextIsStreamOpened() {
  std::lock_guard lock(mu_);
  return !queue_.empty() && std::holds_alternative<StreamOpened>(queue_.front());
}

void Pipeline::checkContinuity(const StreamOpened& opened) {
  // No engine event recorded yet: nothing anchors a proof either way. The stream resumed from
  // when it last opened and reconciliation covers the rest (docs/records.md).
  if (opened.since.eventId.empty()) return;
  // The engine forgets its oldest events first: if it replays the cursor event, it still has
  // every event published after it.
  UnixNanos to = opened.openedAt;  // the first event after the cursor that the replay has
  {
    std::lock_guard lock(mu_);
    for (const QueueItem& item : queue_) {
      const auto* event = std::get_if<ReceivedEvent>(&item);
      if (event == nullptr || event->event.timeNano >= opened.openedAt) break;
      if (event->eventId == opened.since.eventId) return;  // the replay covers the outage
      if (event->event.timeNano > opened.since.timeNano) {
        to = std::min(to, event->event.timeNano);
      }
    }
  }
  std::string reason =
      "the engine no longer had the events after the last one recorded (it restarted, or more "
      "than 256 events happened meanwhile); reconciliation fills in container states";
  spdlog::warn("events between {} and {} may be missing: {}",
               formatRfc3339Nanos(opened.since.timeNano), formatRfc3339Nanos(to), reason);
  metrics_.countGap();
  recorder_.submit(tracker_.gap(opened.since.timeNano, to, std::move(reason)));
}

void Pipeline::recordReplay(const StreamOpened& opened) {
  while (true) {
    std::optional<ReceivedEvent> replayed;
    {
      std::lock_guard lock(mu_);
      if (queue_.empty()) return;
      auto* event = std::get_if<ReceivedEvent>(&queue_.front());
      if (event == nullptr || event->event.timeNano >= opened.openedAt) return;
      replayed = std::get<ReceivedEvent>(popFront());
    }
    recordEvent(*replayed);
  }
}

Pipeline::QueueItem Pipeline::popFront() {
  QueueItem item = std::move(queue_.front());
  queue_.pop_front();
  if (std::holds_alternative<ReceivedEvent>(item)) {
    --queuedEvents_;
    dropping_ = false;
    room_.notify_one();
  }
  return item;
}

void Pipeline::tryReconcile() {
  const auto started = std::chrono::steady_clock::now();
  auto engine = inspectAll();
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
    return isQueued(id, action);
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

Result<std::vector<ContainerInspect>> Pipeline::inspectAll() {
  auto listed = api_.listContainers();
  if (!listed.ok()) {
    metrics_.countEngineError(errorCodeName(listed.error().code));
    return listed.error();
  }
  const auto& containers = *listed;
  std::vector<std::optional<ContainerInspect>> inspected(containers.size());
  std::atomic<std::size_t> next{0};
  std::atomic<bool> failed{false};  // all or nothing: no more requests after one failed
  std::mutex errorMu;
  std::optional<Error> firstError;
  auto work = [&] {
    nameThisThread("zastava-inspect");
    for (std::size_t i = next++; i < containers.size() && !stop_ && !failed; i = next++) {
      auto result = api_.inspectContainer(containers[i].id);
      if (result.ok()) {
        inspected[i] = std::move(result).value();  // nullopt: removed since the list, skip it
        continue;
      }
      metrics_.countEngineError(errorCodeName(result.error().code));
      failed = true;
      std::lock_guard lock(errorMu);
      if (!firstError) firstError = result.error();
    }
  };
  std::size_t workers = std::min<std::size_t>(options_.inventoryConcurrency, containers.size());
  std::vector<std::thread> pool;
  for (std::size_t w = 0; w < workers; ++w) pool.emplace_back(work);
  for (auto& thread : pool) thread.join();
  if (stop_) return Error{ErrorCode::kCancelled, "stopping"};
  // All or nothing: a partial inventory would pass for a complete one.
  if (firstError) return *firstError;
  std::vector<ContainerInspect> engine;
  engine.reserve(inspected.size());
  for (auto& inspect : inspected) {
    if (inspect) engine.push_back(std::move(*inspect));
  }
  return engine;
}

bool Pipeline::isQueued(std::string_view id, std::string_view action) {
  std::lock_guard lock(mu_);
  return std::any_of(queue_.begin(), queue_.end(), [&](const QueueItem& item) {
    const auto* queued = std::get_if<ReceivedEvent>(&item);
    return queued != nullptr && queued->event.actorId == id && queued->event.action == action;
  });
}

void Pipeline::recordEvent(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  // Replayed again after a reconnect or restart, or a destroy reconciliation wrote first.
  if (recorded_.contains(received.eventId) || tracker_.destroyAlreadyRecorded(event)) {
    metrics_.countDuplicate();
    return;
  }
  std::optional<ContainerInspect> inspect;
  bool inspectFailed = false;
  if (!stop_ && Tracker::wantsInspect(event.action)) {
    auto result = api_.inspectContainer(event.actorId);
    if (result.ok()) {
      inspect = std::move(result).value();  // nullopt: the container is gone already
    } else {
      inspectFailed = true;
      metrics_.countEngineError(errorCodeName(result.error().code));
      spdlog::debug("recording {} of {} without inspect details: {}", event.action, event.actorId,
                    result.error().message);
    }
  }
  // One dropped (queue full) is not remembered: a later replay may still bring it.
  if (recorder_.submit(tracker_.fromEvent(received, inspect))) {
    recorded_.remember(received.eventId);
  }
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  if (event.action == "start" && !inspectFailed && !stop_) {
    // Not running (or gone) by now: the evidence record will say it exited first. When the
    // inspect failed, the reconciliation after the engine is back asks instead.
    const bool running = inspect && inspect->state.running;
    requestEvidence(event.actorId, running ? inspect->state.pid : 0, EvidenceScan::kStart);
  } else if (event.action == "die" || event.action == "destroy") {
    evidencedPid_.erase(event.actorId);
  }
}

void Pipeline::requestEvidence(const std::string& id, std::int64_t pid, EvidenceScan scan) {
  const auto known = evidencedPid_.find(id);
  if (pid != 0 && known != evidencedPid_.end() && known->second == pid) return;
  const ContainerFacts* facts = tracker_.find(id);
  if (facts == nullptr) return;
  EvidenceRequest request = evidenceRequest(*facts, scan);
  request.container.pid = pid;
  // Only a queued scan counts: one dropped (queue full) is asked for again at the next
  // reconciliation.
  if (evidence_.request(std::move(request)) && pid != 0) evidencedPid_[id] = pid;
}

void Pipeline::requestEvidenceOfRunning(const std::vector<ContainerInspect>& engine) {
  std::unordered_map<std::string, std::int64_t> running;
  for (const ContainerInspect& inspect : engine) {
    if (!inspect.state.running || inspect.state.pid == 0) continue;
    requestEvidence(inspect.id, inspect.state.pid, EvidenceScan::kReconcile);
    const auto known = evidencedPid_.find(inspect.id);
    if (known != evidencedPid_.end()) running.insert(*known);
  }
  evidencedPid_ = std::move(running);  // forget containers that stopped unseen
}

}  // namespace zastava
