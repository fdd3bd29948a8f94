// The table of configuration keys behind agent/config.h, and how a value of each kind is
// checked, stored and shown. Internal to agent/config*.cpp.
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "agent/config.h"

namespace zastava {

// kEndpoint, kOptionalPath, kBackendUrl and kText take an empty value as "not set".
enum class ValueKind {
  kEndpoint,
  kAbsolutePath,
  kOptionalPath,
  kBackendUrl,   // http(s):// URL, or nats:// and tls:// URLs separated by commas
  kNatsStream,   // a JetStream stream name
  kNatsSubject,  // NATS subject tokens separated by '.', no wildcards
  kText,         // any text without whitespace
  kInteger,
  kBool,
  kIpAddress,
  kLogLevel,
  kNameList,
  kPostureChecks,     // kept as text once parsePostureCheckList accepts it
  kSeverityOverrides  // kept as text once parseSeverityOverrides accepts it
};

using Field = std::variant<std::string Config::*, std::filesystem::path Config::*,
                           std::int64_t Config::*, int Config::*, bool Config::*,
                           LogLevel Config::*, std::vector<std::string> Config::*>;

// One configuration key. This table drives env parsing, flags, --help, describeConfig and
// configKeys(); defaults come from Config's initialisers.
struct KeySpec {
  std::string_view key;
  std::string_view flag;
  std::string_view valueName;
  std::string_view meaning;
  ValueKind kind;
  Field field;
  std::int64_t min = 0;
  std::int64_t max = 0;
};

inline constexpr std::size_t kKeyCount = 44;
// Every key, in table order (the order of --help, describeConfig and docs/configuration.md).
extern const std::array<KeySpec, kKeyCount> kKeys;

inline constexpr std::string_view kLogLevelNames =
    "trace|debug|info|warning|error|critical or Verbose|Debug|Information|Warning|Error|Fatal";
// How an unset optional key (Backend:Url, Backend:TokenFile, ...) is shown.
inline constexpr std::string_view kNotSet = "(not set)";
// How an unset DockerEndpoint is shown.
inline constexpr std::string_view kDockerHostNote = "(from DOCKER_HOST or default ";

// "a whole number between 1 and 65535", ...: what the key accepts.
std::string acceptedValues(const KeySpec& spec);

// True for the kinds where an empty value means "not set".
bool emptyMeansUnset(ValueKind kind);

// Checks `value` against the spec and stores it in `config`. Errors: kInvalidArgument starting
// with `source` (an env or flag name), e.g. "--health-port: 'abc' is not a whole number between
// 1 and 65535". A table field that does not fit the kind is a bug (ZASTAVA_BUG), not an error.
Result<void> applyValue(const KeySpec& spec, const std::string& value, std::string_view source,
                        Config& config);

// The key's value in `config` as describeConfig shows it.
std::string showValue(const KeySpec& spec, const Config& config);

// The default as --help and the docs table show it.
std::string defaultText(const KeySpec& spec);

}  // namespace zastava
