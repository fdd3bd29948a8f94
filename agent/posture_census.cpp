#include "agent/posture_census.h"

#include "agent/tracker.h"
#include "health/metrics.h"

namespace zastava {
namespace {

std::vector<std::string_view> failingChecks(const PostureFindings& findings) {
  std::vector<std::string_view> ids;
  for (const CheckFinding& finding : findings.checks) {
    if (PostureFindings::counts(finding)) ids.push_back(finding.id);
  }
  return ids;
}

}  // namespace

PostureCensus::PostureCensus(Metrics& metrics, const PosturePolicy& policy) : metrics_(metrics) {
  for (const PostureCheck& check : postureCatalogue()) {
    if (policy.skips(check)) continue;
    const Severity severity = policy.severityOf(check);
    severities_.emplace(check.id, severity);
    failing_.emplace(check.id, 0);
    metrics_.setPostureFailing(check.id, severityName(severity), 0);
    if (severity == Severity::kCritical) metrics_.addPostureCriticalStarts(check.id, 0);
  }
}

void PostureCensus::observe(const Record& record) {
  const ContainerFacts& container = record.container;
  if (container.id.empty()) return;
  std::lock_guard lock(mu_);
  if (record.evidence) {
    if (container.posture && up_.contains(container.id)) replace(container.id, *container.posture);
    return;
  }
  if (!container.state) return;
  if (!isUp(container.state)) {
    forget(container.id);
  } else if (container.posture) {
    replace(container.id, *container.posture);
  }
}

void PostureCensus::inventory(const std::vector<UpContainer>& up) {
  std::lock_guard lock(mu_);
  std::unordered_map<std::string, Failing> before = std::move(up_);
  up_.clear();
  for (const UpContainer& container : up) {
    if (auto known = before.find(container.id); known != before.end()) {
      up_.insert(before.extract(known));
    }
    if (container.posture) replace(container.id, *container.posture);
  }
  for (const auto& [id, gone] : before) {
    adjust(gone.inspect, -1);
    adjust(gone.processes, -1);
  }
}

void PostureCensus::countStart(const PostureFindings& findings) {
  for (const CheckFinding& finding : findings.checks) {
    if (PostureFindings::counts(finding) && finding.severity == Severity::kCritical) {
      metrics_.addPostureCriticalStarts(finding.id, 1);
    }
  }
}

std::int64_t PostureCensus::failing(std::string_view check) const {
  std::lock_guard lock(mu_);
  const auto it = failing_.find(check);
  return it == failing_.end() ? 0 : it->second;
}

void PostureCensus::replace(const std::string& id, const PostureFindings& findings) {
  Failing& container = up_[id];
  std::vector<std::string_view>& part =
      findings.input == PostureInput::kProcesses ? container.processes : container.inspect;
  adjust(part, -1);
  part = failingChecks(findings);
  adjust(part, +1);
}

void PostureCensus::forget(const std::string& id) {
  const auto it = up_.find(id);
  if (it == up_.end()) return;
  adjust(it->second.inspect, -1);
  adjust(it->second.processes, -1);
  up_.erase(it);
}

void PostureCensus::adjust(const std::vector<std::string_view>& checks, std::int64_t delta) {
  for (std::string_view check : checks) {
    const auto severity = severities_.find(check);
    if (severity == severities_.end()) continue;
    std::int64_t& count = failing_[severity->first];
    count += delta;
    metrics_.setPostureFailing(check, severityName(severity->second), count);
  }
}

}  // namespace zastava
