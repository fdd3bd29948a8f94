#include "posture/evaluate.h"

#include "common/split.h"

namespace zastava {
namespace {

bool waives(std::string_view waiver, std::string_view id) {
  for (std::string_view item : splitTrimmed(waiver, ',')) {
    if (item == id) return true;
  }
  return false;
}

// Every check of the catalogue that `decide` evaluates (it returns std::nullopt for the checks
// of the other input), with the policy's severities and skips and the label's waivers.
template <typename Decide>
PostureFindings evaluate(PostureInput input, std::string_view waiver, const PosturePolicy& policy,
                         Decide decide) {
  PostureFindings findings;
  findings.input = input;
  for (const PostureCheck& check : postureCatalogue()) {
    std::optional<CheckOutcome> outcome = decide(check);
    if (!outcome) continue;
    if (policy.skips(check)) {
      findings.skipped.push_back(check.id);
      continue;
    }
    CheckFinding& finding = findings.checks.emplace_back();
    finding.id = check.id;
    finding.title = check.title;
    finding.severity = policy.severityOf(check);
    finding.result = outcome->result;
    finding.value = std::move(outcome->value);
    finding.waived = waives(waiver, check.id);
    if (finding.waived && findings.waiver.empty()) {
      findings.waiver = std::string(kPostureWaiverLabel) + "=" + std::string(waiver);
    }
  }
  return findings;
}

}  // namespace

std::string_view postureWaiverOf(const std::map<std::string, std::string>& labels) {
  const auto it = labels.find(std::string(kPostureWaiverLabel));
  return it == labels.end() ? std::string_view() : std::string_view(it->second);
}

PostureFindings evaluateInspectChecks(const SecurityPosture& posture, std::string_view waiver,
                                      const PosturePolicy& policy) {
  return evaluate(PostureInput::kInspect, waiver, policy,
                  [&](const PostureCheck& check) -> std::optional<CheckOutcome> {
                    if (check.fromInspect == nullptr) return std::nullopt;
                    return check.fromInspect(posture);
                  });
}

PostureFindings evaluateProcessChecks(const ProcessTree* tree, std::string_view waiver,
                                      const PosturePolicy& policy) {
  return evaluate(PostureInput::kProcesses, waiver, policy,
                  [&](const PostureCheck& check) -> std::optional<CheckOutcome> {
                    if (check.fromProcesses == nullptr) return std::nullopt;
                    return check.fromProcesses(tree);
                  });
}

}  // namespace zastava
