#include "agent/redaction.h"

#include <fnmatch.h>

#include <algorithm>

namespace zastava {

namespace {

// Bounds the cache: names beyond it (a workload inventing label keys) are matched each time.
constexpr std::size_t kMaxCachedNames = 4096;

}  // namespace

bool Redactor::matchesPattern(const std::string& name) const {
  return std::any_of(policy_.alwaysRedact.begin(), policy_.alwaysRedact.end(),
                     [&](const std::string& pattern) {
                       return fnmatch(pattern.c_str(), name.c_str(), FNM_CASEFOLD) == 0;
                     });
}

bool Redactor::looksSecret(std::string_view name) const {
  {
    std::lock_guard lock(cacheMu_);
    if (auto cached = cache_.find(name); cached != cache_.end()) return cached->second;
  }
  std::string subject(name);
  const bool secret = matchesPattern(subject);
  std::lock_guard lock(cacheMu_);
  if (cache_.size() < kMaxCachedNames) cache_.emplace(std::move(subject), secret);
  return secret;
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

namespace {

std::string_view withoutDashes(std::string_view arg) {
  while (!arg.empty() && arg.front() == '-') arg.remove_prefix(1);
  return arg;
}

// "scheme://user:password@host..." -> "scheme://user:<redacted>@host..."; else unchanged.
std::string withoutUrlPassword(std::string arg) {
  const auto scheme = arg.find("://");
  if (scheme == std::string::npos) return arg;
  const auto authority = scheme + 3;
  const auto at = arg.find('@', authority);
  if (at == std::string::npos || arg.find('/', authority) < at) return arg;
  const auto colon = arg.find(':', authority);
  if (colon == std::string::npos || colon > at) return arg;
  return arg.replace(colon + 1, at - colon - 1, kRedacted);
}

}  // namespace

std::vector<std::string> Redactor::commandLine(const std::vector<std::string>& args) const {
  std::vector<std::string> out;
  out.reserve(args.size());
  bool redactNext = false;
  for (const std::string& arg : args) {
    if (redactNext && !arg.starts_with("-")) {
      out.emplace_back(kRedacted);
      redactNext = false;
      continue;
    }
    redactNext = false;
    const auto equals = arg.find('=');
    const std::string_view name =
        withoutDashes(std::string_view(arg).substr(0, std::min(equals, arg.size())));
    const auto colon = arg.find(": ");
    if (equals != std::string::npos && looksSecret(name)) {
      out.push_back(arg.substr(0, equals + 1) + std::string(kRedacted));
    } else if (colon != std::string::npos && arg.find(' ') == colon + 1 &&
               looksSecret(std::string_view(arg).substr(0, colon))) {
      out.push_back(arg.substr(0, colon + 2) + std::string(kRedacted));  // a header
    } else {
      redactNext = equals == std::string::npos && arg.starts_with("-") && looksSecret(name);
      out.push_back(withoutUrlPassword(arg));
    }
  }
  return out;
}

}  // namespace zastava
