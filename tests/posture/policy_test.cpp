#include "posture/policy.h"

#include <doctest/doctest.h>

namespace zastava {
namespace {

TEST_CASE("a list of check ids: trimmed, each one in the catalogue") {
  auto ids = parsePostureCheckList(" 5.19 ,5.25");
  REQUIRE(ids.ok());
  CHECK(*ids == std::set<std::string, std::less<>>{"5.19", "5.25"});
  CHECK(parsePostureCheckList("")->empty());
  CHECK(parsePostureCheckList("5.1").error().message ==
        "\"5.1\" is not a posture check id (docs/posture.md)");
  CHECK(parsePostureCheckList("5.19,,5.25").error().message ==
        "\"\" is not a posture check id (docs/posture.md)");
}

TEST_CASE("severity overrides: ID=LEVEL, known ids and levels only") {
  auto overrides = parseSeverityOverrides("5.13 = critical, 4.1=info");
  REQUIRE(overrides.ok());
  CHECK(overrides->at("5.13") == Severity::kCritical);
  CHECK(overrides->at("4.1") == Severity::kInfo);
  CHECK(parseSeverityOverrides("5.13").error().message == "\"5.13\" is not ID=SEVERITY");
  CHECK(parseSeverityOverrides("5.13=severe").error().message ==
        "\"severe\" is not a severity: critical, high, medium, low or info");
  CHECK(parseSeverityOverrides("6.1=low").error().code == ErrorCode::kInvalidArgument);
  PosturePolicy policy;
  policy.severities = *overrides;
  CHECK(policy.severityOf(*findPostureCheck("5.13")) == Severity::kCritical);
  CHECK(policy.severityOf(*findPostureCheck("5.5")) == Severity::kCritical);
  CHECK(policy.severityOf(*findPostureCheck("5.11")) == Severity::kLow);
}

}  // namespace
}  // namespace zastava
