#include "health/health_state.h"

#include <algorithm>

#include "common/invariant.h"
#include "health/metrics.h"

namespace zastava {

namespace {

std::string_view workerName(Worker worker) {
  switch (worker) {
    case Worker::kStream:
      return "event stream";
    case Worker::kEnricher:
      return "enricher";
    case Worker::kWriter:
      return "buffer writer";
  }
  ZASTAVA_BUG("Worker out of range: " + std::to_string(static_cast<int>(worker)));
}

}  // namespace

HealthState::HealthState(Metrics& metrics, const Clock& clock, std::chrono::nanoseconds stallLimit)
    : metrics_(metrics), clock_(clock), stallLimit_(stallLimit) {
  metrics_.setDockerConnected(false);
  metrics_.setBufferWritable(true);
}

void HealthState::setEngineReachable(bool reachable, const std::string& reason) {
  std::lock_guard lock(mu_);
  engineReachable_ = reachable;
  engineReason_ = reason;
  metrics_.setDockerConnected(reachable);
}

void HealthState::setBufferWritable(bool writable, const std::string& reason) {
  std::lock_guard lock(mu_);
  bufferWritable_ = writable;
  bufferReason_ = reason;
  metrics_.setBufferWritable(writable);
}

void HealthState::setInventoryDone(bool done, const std::string& reason) {
  std::lock_guard lock(mu_);
  inventoryDone_ = done;
  inventoryReason_ = reason;
}

void HealthState::setBackendFailing(bool failing, const std::string& reason) {
  std::lock_guard lock(mu_);
  backendFailing_ = failing;
  backendReason_ = reason;
}

std::int64_t HealthState::ticks() const {
  // At least 1: 0 means waiting.
  return std::max<std::int64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.monotonic().time_since_epoch())
          .count(),
      1);
}

void HealthState::working(Worker worker) {
  workingSince_[static_cast<std::size_t>(worker)].store(ticks(), std::memory_order_relaxed);
}

void HealthState::waiting(Worker worker) {
  workingSince_[static_cast<std::size_t>(worker)].store(0, std::memory_order_relaxed);
}

Verdict HealthState::readiness() const {
  if (Verdict alive = liveness(); !alive.ok) return alive;
  std::lock_guard lock(mu_);
  if (!bufferWritable_) return {false, "event buffer not writable: " + bufferReason_};
  if (!engineReachable_) return {false, "docker engine unreachable: " + engineReason_};
  if (!inventoryDone_) return {false, inventoryReason_};
  if (backendFailing_) return {false, "backend connection failed: " + backendReason_};
  return {true, "ok"};
}

Verdict HealthState::liveness() const {
  const std::int64_t now = ticks();
  for (std::size_t i = 0; i < kWorkerCount; ++i) {
    const std::int64_t since = workingSince_[i].load(std::memory_order_relaxed);
    const std::chrono::nanoseconds busy{now - since};
    if (since != 0 && busy > stallLimit_) {
      const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(busy).count();
      return {false, std::string(workerName(static_cast<Worker>(i))) +
                         " stalled: on one piece of work for " + std::to_string(seconds) + " s"};
    }
  }
  return {true, "ok"};
}

}  // namespace zastava
