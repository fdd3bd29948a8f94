#include "agent/redaction.h"

#include <fnmatch.h>

#include <algorithm>

namespace zastava {

bool Redactor::looksSecret(std::string_view name) const {
  const std::string subject(name);
  return std::any_of(policy_.alwaysRedact.begin(), policy_.alwaysRedact.end(),
                     [&](const std::string& pattern) {
                       return fnmatch(pattern.c_str(), subject.c_str(), FNM_CASEFOLD) == 0;
                     });
}

std::map<std::string, std::string> Redactor::environment(
    const std::vector<std::string>& env) const {
  std::map<std::string, std::string> out;
  for (const std::string& entry : env) {
    const auto equals = entry.find('=');
    std::string name = entry.substr(0, equals);
    if (equals == std::string::npos) {
      out[name] = "";
      continue;
    }
    const bool keep = !looksSecret(name) &&
                      std::find(policy_.keepValues.begin(), policy_.keepValues.end(), name) !=
                          policy_.keepValues.end();
    out[name] = keep ? entry.substr(equals + 1) : std::string(kRedacted);
  }
  return out;
}

std::map<std::string, std::string> Redactor::labels(
    const std::map<std::string, std::string>& labels) const {
  std::map<std::string, std::string> out;
  for (const auto& [key, value] : labels) {
    out[key] = looksSecret(key) ? std::string(kRedacted) : value;
  }
  return out;
}

}  // namespace zastava
