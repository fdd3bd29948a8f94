#include "agent/pipeline.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>
#include <vector>

#include "buffer/recorder.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {

namespace {

void nameThisThread(const char* name) { pthread_setname_np(pthread_self(), name); }

double secondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

Pipeline::Pipeline(DockerApi& api, Recorder& recorder, HealthState& health, Metrics& metrics,
                   const Clock& clock, PipelineOptions options)
    : api_(api),
      recorder_(recorder),
      health_(health),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      tracker_(clock) {}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
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
  // Resume where this process last saw the engine, or where the buffer's durable cursor says.
  std::int64_t since = lastSeenNano_ != 0 ? lastSeenNano_ : recorder_.cursor();
  auto result = api_.streamEvents(
      EventQuery{since}, [this, since] { onStreamOpen(since); },
      [this, since](Result<EngineEvent> event) { onStreamEvent(event, since); }, stop_);
  if (result.ok()) return Error{ErrorCode::kUnavailable, "event stream closed by the engine"};
  return result.error();
}

void Pipeline::onStreamOpen(std::int64_t since) {
  streamOpenedAt_ = clock_.now();
  health_.setEngineReachable(true);
  if (inIncident_) {
    spdlog::info("docker engine reachable again at {} after {} failed attempts; resuming events{}",
                 api_.apiVersion(), failedAttempts_,
                 since != 0 ? " since the last one recorded" : "");
  } else {
    spdlog::info("watching container events (engine API {})", api_.apiVersion());
  }
  if (everOpened_) metrics_.countReconnect();
  inIncident_ = false;
  failedAttempts_ = 0;
  if (!everOpened_) {
    everOpened_ = true;
    std::lock_guard lock(mu_);
    inventoryWanted_ = true;
  }
  wake_.notify_all();
}

void Pipeline::onStreamEvent(Result<EngineEvent>& event, std::int64_t since) {
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
  lastSeenNano_ = std::max(lastSeenNano_, event->timeNano);
  // On a resumed stream the engine first replays what it kept since `since`.
  RecordSource source = since != 0 && event->timeNano < streamOpenedAt_ ? RecordSource::kReplay
                                                                        : RecordSource::kStream;
  {
    std::lock_guard lock(mu_);
    if (queue_.size() >= options_.eventQueueCapacity) {
      metrics_.countDropped("event_queue_full");
      if (!queueFullWarned_) {
        spdlog::error("event queue full ({} events): dropping engine events until it drains",
                      queue_.size());
        queueFullWarned_ = true;
      }
      return;
    }
    queue_.push_back({std::move(event.value()), source});
  }
  wake_.notify_one();
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
    std::optional<QueuedEvent> next;
    bool wantInventory = false;
    {
      std::unique_lock lock(mu_);
      auto inventoryDue = [this] {
        return inventoryWanted_ && std::chrono::steady_clock::now() >= nextInventoryAt_;
      };
      while (!stop_ && queue_.empty() && !inventoryDue()) {
        if (inventoryWanted_) {
          wake_.wait_until(lock, nextInventoryAt_);
        } else {
          wake_.wait(lock);
        }
      }
      if (stop_ && queue_.empty()) return;
      wantInventory = !stop_ && inventoryDue();
      if (!wantInventory && !queue_.empty()) {
        next = std::move(queue_.front());
        queue_.pop_front();
        queueFullWarned_ = false;
      }
    }
    if (wantInventory) {
      tryInventory();
    } else if (next) {
      recordEvent(*next);
    }
  }
}

void Pipeline::tryInventory() {
  auto started = std::chrono::steady_clock::now();
  auto result = takeInventory();
  if (result.ok()) {
    {
      std::lock_guard lock(mu_);
      inventoryWanted_ = false;
    }
    health_.setInventoryDone(true);
    spdlog::info("container inventory done: {} containers in {:.3f} s", tracker_.trackedCount(),
                 secondsSince(started));
    inventoryAttempts_ = 0;
    return;
  }
  health_.setInventoryDone(false, "container inventory failed: " + result.error().message);
  if (inventoryAttempts_ == 0) {
    spdlog::warn("container inventory failed, retrying with backoff: {}", result.error().message);
  }
  nextInventoryAt_ = std::chrono::steady_clock::now() + nextBackoff(inventoryAttempts_++);
}

Result<void> Pipeline::takeInventory() {
  auto listed = api_.listContainers();
  if (!listed.ok()) {
    metrics_.countEngineError(errorCodeName(listed.error().code));
    return listed.error();
  }
  const auto& containers = *listed;
  std::vector<std::optional<ContainerInspect>> inspected(containers.size());
  std::atomic<std::size_t> next{0};
  std::mutex errorMu;
  std::optional<Error> firstError;
  auto work = [&] {
    nameThisThread("zastava-inspect");
    for (std::size_t i = next++; i < containers.size() && !stop_; i = next++) {
      auto result = api_.inspectContainer(containers[i].id);
      if (result.ok()) {
        inspected[i] = std::move(result).value();  // nullopt: removed since the list, skip it
        continue;
      }
      metrics_.countEngineError(errorCodeName(result.error().code));
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
  for (const auto& inspect : inspected) {
    if (inspect) recorder_.submit(tracker_.snapshot(*inspect));
  }
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
  return okResult();
}

void Pipeline::recordEvent(const QueuedEvent& queued) {
  const EngineEvent& event = queued.event;
  std::optional<ContainerInspect> inspect;
  if (!stop_ && Tracker::wantsInspect(event.action)) {
    auto result = api_.inspectContainer(event.actorId);
    if (result.ok()) {
      inspect = std::move(result).value();
    } else {
      metrics_.countEngineError(errorCodeName(result.error().code));
      spdlog::debug("recording {} of {} without inspect details: {}", event.action, event.actorId,
                    result.error().message);
    }
  }
  recorder_.submit(tracker_.fromEvent(event, queued.source, inspect));
  metrics_.setContainersTracked(static_cast<std::int64_t>(tracker_.trackedCount()));
}

}  // namespace zastava
