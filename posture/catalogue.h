// The posture checks the agent evaluates: the CIS Docker Benchmark v1.6.0's container runtime
// checks (section 5) that an inspect or the container's processes decide, and 4.1 (a user for
// the container), which its inspect decides too. docs/posture.md is this table for readers.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "common/evidence_types.h"
#include "common/posture_findings.h"
#include "common/security_posture.h"

namespace zastava {

// What one check found: kFailed with `value` saying what failed it.
struct CheckOutcome {
  CheckResult result = CheckResult::kPassed;
  std::string value;
};

// One check. Exactly one of the two deciders is set: the input the check reads.
struct PostureCheck {
  std::string_view id;     // the benchmark's number, "5.10"
  std::string_view title;  // the benchmark's title
  Severity severity;       // the default; Posture:SeverityOverrides may change it
  CheckOutcome (*fromInspect)(const SecurityPosture&) = nullptr;
  // nullptr tree: no process could be read.
  CheckOutcome (*fromProcesses)(const ProcessTree*) = nullptr;
};

// Every check, in the benchmark's order.
std::span<const PostureCheck> postureCatalogue();
// The check with this id, or nullptr.
const PostureCheck* findPostureCheck(std::string_view id);

}  // namespace zastava
