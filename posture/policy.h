// What the configuration changes in the posture checks: checks skipped, severities overridden.
#pragma once

#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "common/posture_findings.h"
#include "common/result.h"
#include "posture/catalogue.h"

namespace zastava {

struct PosturePolicy {
  std::set<std::string, std::less<>> skip;                  // Posture:SkipChecks
  std::map<std::string, Severity, std::less<>> severities;  // Posture:SeverityOverrides

  bool skips(const PostureCheck& check) const { return skip.contains(check.id); }
  Severity severityOf(const PostureCheck& check) const {
    const auto it = severities.find(check.id);
    return it == severities.end() ? check.severity : it->second;
  }
};

// "5.19, 5.25" -> those ids; kInvalidArgument naming the first id not in the catalogue.
Result<std::set<std::string, std::less<>>> parsePostureCheckList(std::string_view text);
// "5.13=high,5.19=low" -> the overrides; kInvalidArgument naming an unknown id, a severity not
// in critical|high|medium|low|info, or an item without "=".
Result<std::map<std::string, Severity, std::less<>>> parseSeverityOverrides(std::string_view text);

}  // namespace zastava
