#include "health/health_state.h"

#include "health/metrics.h"

namespace zastava {

HealthState::HealthState(Metrics& metrics) : metrics_(metrics) {
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

void HealthState::setFailed(const std::string& subsystem, const std::string& reason) {
  std::lock_guard lock(mu_);
  failure_ = subsystem + " failed: " + reason;
}

Verdict HealthState::readiness() const {
  std::lock_guard lock(mu_);
  if (!failure_.empty()) return {false, failure_};
  if (!bufferWritable_) return {false, "event buffer not writable: " + bufferReason_};
  if (!engineReachable_) return {false, "docker engine unreachable: " + engineReason_};
  if (!inventoryDone_) return {false, inventoryReason_};
  return {true, "ok"};
}

Verdict HealthState::liveness() const {
  std::lock_guard lock(mu_);
  if (!failure_.empty()) return {false, failure_};
  return {true, "ok"};
}

}  // namespace zastava
