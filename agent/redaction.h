// Secret-safe evidence. Which environment variables a container has is evidence; their values
// are often credentials. By default only the values of a few well-known, harmless variables are
// kept; every other value becomes "<redacted>", and a name matching a secret pattern
// (*PASSWORD*, *TOKEN*, ...) is always redacted, even when allowed. Label values (and the engine
// event attributes, which repeat the labels) are redacted when their key matches a pattern, and so
// are secret-looking values in process command lines.
#pragma once

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace zastava {

inline constexpr std::string_view kRedacted = "<redacted>";

struct RedactionPolicy {
  // Variables whose values are kept (exact names, case-sensitive as the kernel is).
  std::vector<std::string> keepValues = {"PATH",   "HOSTNAME", "HOME",   "LANG",
                                         "LC_ALL", "TZ",       "TERM",   "USER",
                                         "PWD",    "SHLVL",    "GOPATH", "JAVA_HOME"};
  // Glob patterns (case-insensitive) of names and label keys whose values are always redacted.
  std::vector<std::string> alwaysRedact = {
      "*PASSWORD*", "*PASSWD*",  "*PASSPHRASE*", "*SECRET*",
      "*TOKEN*",    "*KEY*",     "*CREDENTIAL*", "*PRIVATE*",
      "AUTH*",      "*_AUTH",    "*_AUTH_*",     "*CERT*",
      "*COOKIE*",   "*SESSION*", "*DSN*",        "*CONNECTION_STRING*"};
};

class Redactor {
 public:
  explicit Redactor(RedactionPolicy policy = {}) : policy_(std::move(policy)) {}
  Redactor(const Redactor&) = delete;
  Redactor& operator=(const Redactor&) = delete;

  // "NAME=value" entries as the engine sends them -> NAME -> value or "<redacted>". An entry
  // without "=" is a name with no value. Any thread.
  std::map<std::string, std::string> environment(const std::vector<std::string>& env) const;
  // Labels or event attributes with the values of secret-looking keys redacted. Any thread.
  std::map<std::string, std::string> labels(const std::map<std::string, std::string>& labels) const;
  // A process's arguments with secret-looking values redacted: the value of "NAME=value" and
  // "--name=value" when NAME looks secret, the argument after "--name" / "-name" when the name
  // looks secret, the value of a header "Name: value" whose name looks secret
  // ("Authorization: Bearer ..."), and the password of "scheme://user:password@host". Any
  // thread.
  std::vector<std::string> commandLine(const std::vector<std::string>& args) const;
  // True when `name` matches one of the always-redact patterns. Any thread.
  bool looksSecret(std::string_view name) const;

 private:
  bool matchesPattern(const std::string& name) const;

  RedactionPolicy policy_;
  // Looks names up as string_views, without a copy.
  struct NameHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view name) const {
      return std::hash<std::string_view>{}(name);
    }
  };
  // looksSecret's answers: label keys and variable names repeat on every event.
  mutable std::mutex cacheMu_;
  mutable std::unordered_map<std::string, bool, NameHash, std::equal_to<>>
      cache_;  // guarded by cacheMu_
};

}  // namespace zastava
