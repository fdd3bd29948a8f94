// What the posture checks (posture/) found for one container: the record's container.posture.
// Plain facts shared by the checks that make them (posture/) and the record that carries them
// (buffer/); docs/posture.md is the catalogue.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zastava {

inline constexpr std::string_view kPostureBenchmark = "CIS Docker Benchmark v1.6.0";
// The container label whose value (check ids, comma-separated) waives those checks.
inline constexpr std::string_view kPostureWaiverLabel = "zastava.posture.ignore";

enum class Severity { kCritical, kHigh, kMedium, kLow, kInfo };

inline std::string_view severityName(Severity severity) {
  switch (severity) {
    case Severity::kCritical:
      return "critical";
    case Severity::kHigh:
      return "high";
    case Severity::kMedium:
      return "medium";
    case Severity::kLow:
      return "low";
    case Severity::kInfo:
      return "info";
  }
  return "unknown";
}

inline std::optional<Severity> parseSeverity(std::string_view text) {
  for (Severity severity :
       {Severity::kCritical, Severity::kHigh, Severity::kMedium, Severity::kLow, Severity::kInfo}) {
    if (text == severityName(severity)) return severity;
  }
  return std::nullopt;
}

enum class CheckResult { kPassed, kFailed, kNotApplicable };

inline std::string_view checkResultName(CheckResult result) {
  switch (result) {
    case CheckResult::kPassed:
      return "passed";
    case CheckResult::kFailed:
      return "failed";
    case CheckResult::kNotApplicable:
      return "notApplicable";
  }
  return "unknown";
}

// One check evaluated for one container. `id` and `title` are the catalogue's (static storage).
struct CheckFinding {
  std::string_view id;
  std::string_view title;
  Severity severity = Severity::kInfo;  // the catalogue's, or the configuration's override
  CheckResult result = CheckResult::kPassed;
  std::string value;    // kFailed: what failed it ("NetworkMode=host"); empty otherwise
  bool waived = false;  // named by the container's zastava.posture.ignore label
};

// What the checks of a PostureFindings read: an inspect, or the container's processes (/proc).
enum class PostureInput { kInspect, kProcesses };

struct PostureFindings {
  PostureInput input = PostureInput::kInspect;
  std::vector<CheckFinding> checks;       // catalogue order; skipped checks are not here
  std::vector<std::string_view> skipped;  // the checks of this input the configuration skips
  std::string waiver;  // "zastava.posture.ignore=<value>" when the label waives any of them

  // A finding that counts against the container: failed and not waived.
  static bool counts(const CheckFinding& finding) {
    return finding.result == CheckResult::kFailed && !finding.waived;
  }
};

}  // namespace zastava
