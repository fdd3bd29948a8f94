#include "posture/policy.h"

#include "common/split.h"

namespace zastava {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

Result<std::string> knownCheck(std::string_view id) {
  if (findPostureCheck(id) == nullptr) {
    return invalid("\"" + std::string(id) + "\" is not a posture check id (docs/posture.md)");
  }
  return std::string(id);
}

}  // namespace

Result<std::set<std::string, std::less<>>> parsePostureCheckList(std::string_view text) {
  std::set<std::string, std::less<>> ids;
  if (text.empty()) return ids;
  for (std::string_view item : splitTrimmed(text, ',')) {
    auto id = knownCheck(item);
    if (!id.ok()) return id.error();
    ids.insert(std::move(*id));
  }
  return ids;
}

Result<std::map<std::string, Severity, std::less<>>> parseSeverityOverrides(std::string_view text) {
  std::map<std::string, Severity, std::less<>> overrides;
  if (text.empty()) return overrides;
  for (std::string_view item : splitTrimmed(text, ',')) {
    const auto equals = item.find('=');
    if (equals == std::string_view::npos) {
      return invalid("\"" + std::string(item) + "\" is not ID=SEVERITY");
    }
    auto id = knownCheck(trimmed(item.substr(0, equals)));
    if (!id.ok()) return id.error();
    const std::string_view level = trimmed(item.substr(equals + 1));
    const auto severity = parseSeverity(level);
    if (!severity) {
      return invalid("\"" + std::string(level) +
                     "\" is not a severity: critical, high, medium, low or info");
    }
    overrides[std::move(*id)] = *severity;
  }
  return overrides;
}

}  // namespace zastava
