// Evaluating the posture checks for one container (docs/posture.md). Pure functions, any thread.
#pragma once

#include <map>
#include <string>
#include <string_view>

#include "common/evidence_types.h"
#include "common/posture_findings.h"
#include "common/security_posture.h"
#include "posture/policy.h"

namespace zastava {

// The value of the container's zastava.posture.ignore label, empty when it has none.
std::string_view postureWaiverOf(const std::map<std::string, std::string>& labels);

// The findings of every check an inspect decides, for a container with this posture and
// waiver (postureWaiverOf its labels).
PostureFindings evaluateInspectChecks(const SecurityPosture& posture, std::string_view waiver,
                                      const PosturePolicy& policy);

// The findings of every check the container's processes decide (5.7); `tree` is nullptr when
// no process could be read (the checks are then not applicable).
PostureFindings evaluateProcessChecks(const ProcessTree* tree, std::string_view waiver,
                                      const PosturePolicy& policy);

}  // namespace zastava
