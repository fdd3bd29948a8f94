#include "agent/config.h"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <exception>
#include <type_traits>
#include <variant>

#include "collectors/endpoint.h"

#ifndef ZASTAVA_VERSION
#define ZASTAVA_VERSION "0.0.0-dev"
#endif

extern char** environ;

namespace zastava {
namespace {

enum class ValueKind { kEndpoint, kAbsolutePath, kInteger, kIpAddress, kLogLevel, kNameList };

using Field =
    std::variant<std::string Config::*, std::filesystem::path Config::*, std::int64_t Config::*,
                 int Config::*, LogLevel Config::*, std::vector<std::string> Config::*>;

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

// Indexed by LogLevel.
constexpr std::array<std::string_view, 6> kLevelNames = {"trace",   "debug", "info",
                                                         "warning", "error", "critical"};
constexpr std::array<std::string_view, 6> kSerilogLevelNames = {"Verbose", "Debug", "Information",
                                                                "Warning", "Error", "Fatal"};
constexpr std::string_view kLogLevelNames =
    "trace|debug|info|warning|error|critical or Verbose|Debug|Information|Warning|Error|Fatal";
constexpr std::string_view kDockerHostNote = "(from DOCKER_HOST or default ";
constexpr std::string_view kTotalKey = "EventBuffer:MaxTotalSizeMb";
constexpr std::string_view kFileKey = "EventBuffer:MaxFileSizeMb";
constexpr std::string_view kLogLevelKey = "LogLevel";

const std::array<KeySpec, 19> kKeys = {{
    {"DockerEndpoint", "--docker-endpoint", "URI",
     "Docker Engine API endpoint; unset: DOCKER_HOST, else the local socket", ValueKind::kEndpoint,
     &Config::dockerEndpoint},
    {"DataDirectory", "--data-directory", "DIR",
     "where runtime-events/*.ndjson and the SQLite database live", ValueKind::kAbsolutePath,
     &Config::dataDirectory},
    {"EventBuffer:MaxFileSizeMb", "--event-buffer-max-file-size-mb", "N",
     "size at which an NDJSON segment is rotated, in MiB", ValueKind::kInteger,
     &Config::maxFileSizeMb, 1, 4096},
    {"EventBuffer:MaxTotalSizeMb", "--event-buffer-max-total-size-mb", "N",
     "cap on all segments together, in MiB; oldest deleted first", ValueKind::kInteger,
     &Config::maxTotalSizeMb, 1, 1048576},
    {"EventBuffer:RetentionHours", "--event-buffer-retention-hours", "N",
     "segments older than this are deleted", ValueKind::kInteger, &Config::retentionHours, 1,
     87600},
    {"HealthCheck:Address", "--health-address", "ADDR",
     "address the health/metrics HTTP server binds", ValueKind::kIpAddress, &Config::healthAddress},
    {"HealthCheck:Port", "--health-port", "N", "port of /healthz /readyz /livez /metrics",
     ValueKind::kInteger, &Config::healthPort, 1, 65535},
    {"LogLevel", "--log-level", "LEVEL", "least severe level written to stderr",
     ValueKind::kLogLevel, &Config::logLevel},
    {"Inventory:Concurrency", "--inventory-concurrency", "N",
     "container inspects in flight during a reconcile", ValueKind::kInteger,
     &Config::inventoryConcurrency, 1, 64},
    {"Reconnect:MaxBackoffSeconds", "--reconnect-max-backoff-seconds", "N",
     "longest wait between engine reconnect attempts", ValueKind::kInteger,
     &Config::reconnectMaxBackoffSeconds, 1, 3600},
    {"EventStream:SilenceCheckSeconds", "--event-stream-silence-check-seconds", "N",
     "after this long without an event, ping the engine and reopen the stream if it is gone",
     ValueKind::kInteger, &Config::silenceCheckSeconds, 1, 86400},
    {"Evidence:EnvKeepValues", "--evidence-env-keep-values", "NAMES",
     "environment variables whose values are recorded; every other value is \"<redacted>\"",
     ValueKind::kNameList, &Config::envKeepValues},
    {"Evidence:RedactPatterns", "--evidence-redact-patterns", "GLOBS",
     "case-insensitive globs of variable names and label keys whose values are always redacted",
     ValueKind::kNameList, &Config::redactPatterns},
    {"Evidence:ProcRoot", "--evidence-proc-root", "DIR",
     "the procfs whose pids are the engine's State.Pid (the host's /proc)",
     ValueKind::kAbsolutePath, &Config::evidenceProcRoot},
    {"Evidence:Workers", "--evidence-workers", "N",
     "threads reading process and library evidence; 0 turns evidence off", ValueKind::kInteger,
     &Config::evidenceWorkers, 0, 16},
    {"Evidence:MaxProcesses", "--evidence-max-processes", "N",
     "processes of one container read per scan; the rest are counted", ValueKind::kInteger,
     &Config::evidenceMaxProcesses, 1, 100000},
    {"Evidence:MaxLibraries", "--evidence-max-libraries", "N",
     "distinct loaded files of one container listed per scan; the rest are counted",
     ValueKind::kInteger, &Config::evidenceMaxLibraries, 1, 100000},
    {"Evidence:MaxHashMb", "--evidence-max-hash-mb", "N",
     "MiB read per scan to hash a container's executables, and as much for its libraries",
     ValueKind::kInteger, &Config::evidenceMaxHashMb, 1, 65536},
    {"Evidence:RescanSeconds", "--evidence-rescan-seconds", "N",
     "a container is scanned again this long after its first scan (libraries loaded later); "
     "0: never",
     ValueKind::kInteger, &Config::evidenceRescanSeconds, 0, 86400},
}};

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

char lower(char c) { return static_cast<char>(std::tolower(static_cast<unsigned char>(c))); }

bool equalsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return lower(x) == lower(y); });
}

bool startsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && equalsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

std::string envNameOf(std::string_view key) {
  std::string name(kEnvPrefix);
  for (char c : key) name += c == ':' ? std::string("__") : std::string(1, c);
  return name;
}

std::string acceptedValues(const KeySpec& spec) {
  if (spec.kind == ValueKind::kEndpoint) return "a unix://, tcp://, http:// or https:// URI";
  if (spec.kind == ValueKind::kAbsolutePath) return "an absolute path";
  if (spec.kind == ValueKind::kIpAddress) return "a literal IPv4 or IPv6 address";
  if (spec.kind == ValueKind::kLogLevel) return "a log level (" + std::string(kLogLevelNames) + ")";
  if (spec.kind == ValueKind::kNameList) {
    return "a comma-separated list of names or globs (letters, digits, _ . - * ?)";
  }
  return "a whole number between " + std::to_string(spec.min) + " and " + std::to_string(spec.max);
}

Result<std::int64_t> parseInteger(std::string_view text, std::int64_t min, std::int64_t max) {
  std::int64_t value = 0;
  const char* end = text.data() + text.size();
  auto [ptr, ec] = std::from_chars(text.data(), end, value);
  if (text.empty() || text.front() == '-' || ec != std::errc() || ptr != end || value < min ||
      value > max) {
    return invalid("out of range");
  }
  return value;
}

// "A, B_*,c" -> {"A", "B_*", "c"}; an error for an empty item or a character outside names
// and globs.
Result<std::vector<std::string>> parseNameList(std::string_view text) {
  std::vector<std::string> names;
  std::size_t start = 0;
  while (start <= text.size()) {
    std::size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    const bool valid = !item.empty() && std::all_of(item.begin(), item.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-' ||
             c == '*' || c == '?';
    });
    if (!valid) return invalid("bad item");
    names.emplace_back(item);
    start = comma + 1;
  }
  return names;
}

bool isIpAddress(const std::string& text) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// Stores `value` in the spec's field. Returns false when the field's type does not fit (a bug in
// the table).
template <typename T>
bool store(const KeySpec& spec, T value, Config& config) {
  return std::visit(
      [&](auto member) {
        using M = std::decay_t<decltype(config.*member)>;
        if constexpr (std::is_same_v<M, T>) {
          config.*member = std::move(value);
          return true;
        } else if constexpr (std::is_integral_v<M> && std::is_integral_v<T>) {
          config.*member = static_cast<M>(value);
          return true;
        } else {
          return false;
        }
      },
      spec.field);
}

// Checks `value` against the spec and stores it. `source` (an env or flag name) starts the
// error message.
Result<void> applyValue(const KeySpec& spec, const std::string& value, std::string_view source,
                        Config& config) {
  std::string prefix = std::string(source) + ": ";
  if (value.empty()) return invalid(prefix + "is empty; expected " + acceptedValues(spec));
  bool valid = false;
  bool stored = false;
  if (spec.kind == ValueKind::kEndpoint || spec.kind == ValueKind::kIpAddress) {
    valid = spec.kind == ValueKind::kEndpoint ? parseEndpoint(value).ok() : isIpAddress(value);
    stored = valid && store(spec, value, config);
  } else if (spec.kind == ValueKind::kAbsolutePath) {
    valid = std::filesystem::path(value).is_absolute();
    stored = valid && store(spec, std::filesystem::path(value), config);
  } else if (spec.kind == ValueKind::kInteger) {
    Result<std::int64_t> number = parseInteger(value, spec.min, spec.max);
    valid = number.ok();
    stored = valid && store(spec, *number, config);
  } else if (spec.kind == ValueKind::kNameList) {
    Result<std::vector<std::string>> names = parseNameList(value);
    valid = names.ok();
    stored = valid && store(spec, *names, config);
  } else {
    Result<LogLevel> level = parseLogLevel(value);
    valid = level.ok();
    stored = valid && store(spec, *level, config);
  }
  if (!valid) return invalid(prefix + "'" + value + "' is not " + acceptedValues(spec));
  if (!stored) return Error{ErrorCode::kInternal, std::string(spec.key) + ": table field mismatch"};
  return okResult();
}

std::string showValue(const KeySpec& spec, const Config& config) {
  return std::visit(
      [&](auto member) -> std::string {
        const auto& value = config.*member;
        using T = std::decay_t<decltype(value)>;
        if constexpr (std::is_same_v<T, std::string>) {
          if (spec.kind == ValueKind::kEndpoint && value.empty()) {
            return std::string(kDockerHostNote) + std::string(kDefaultDockerEndpoint) + ")";
          }
          return value;
        } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
          return value.string();
        } else if constexpr (std::is_same_v<T, LogLevel>) {
          return std::string(logLevelName(value));
        } else if constexpr (std::is_same_v<T, std::vector<std::string>>) {
          std::string joined;
          for (const auto& name : value) joined += (joined.empty() ? "" : ",") + name;
          return joined;
        } else {
          return std::to_string(value);
        }
      },
      spec.field);
}

// The default as --help and the docs table show it.
std::string defaultText(const KeySpec& spec) {
  if (spec.kind == ValueKind::kEndpoint) {
    return "DOCKER_HOST, else " + std::string(kDefaultDockerEndpoint);
  }
  return showValue(spec, Config{});
}

std::string describe(const Config& config, const ConfigOrigins* origins) {
  const Config defaults;
  std::string out;
  for (const KeySpec& spec : kKeys) {
    std::string value = showValue(spec, config);
    out += std::string(spec.key) + " = " + value;
    bool isDefault = value == showValue(spec, defaults);
    if (value.starts_with(kDockerHostNote)) {
      // Unset; resolved at start-up from DOCKER_HOST.
    } else if (origins != nullptr) {
      auto it = origins->find(spec.key);
      out += it == origins->end() ? (isDefault ? " (default)" : "") : " (" + it->second + ")";
    } else if (isDefault) {
      out += " (default)";
    }
    out += "\n";
  }
  return out;
}

std::string joinLines(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += (out.empty() ? "" : "\n") + line;
  return out;
}

std::string knownEnvNames() {
  std::string out;
  for (const KeySpec& spec : kKeys) out += (out.empty() ? "" : ", ") + envNameOf(spec.key);
  return out + ", " + std::string(kSerilogLevelVariable);
}

struct EnvSetting {
  std::string name;
  std::string value;
};

// Applies ZASTAVA_AGENT__* (and the Serilog level alias) to `config`; problems go to `problems`.
void applyEnvironment(const Environment& env, Config& config, ConfigOrigins& origins,
                      std::vector<std::string>& problems) {
  std::array<std::optional<EnvSetting>, kKeys.size()> found;
  std::optional<EnvSetting> serilog;
  for (const auto& entry : env) {
    const std::string& name = entry.first;
    const std::string& value = entry.second;
    if (equalsIgnoreCase(name, kSerilogLevelVariable)) {
      serilog = EnvSetting{name, value};
      continue;
    }
    if (!startsWithIgnoreCase(name, kEnvPrefix)) continue;
    auto spec = std::find_if(kKeys.begin(), kKeys.end(), [&](const KeySpec& candidate) {
      return equalsIgnoreCase(name, envNameOf(candidate.key));
    });
    if (spec == kKeys.end()) {
      problems.push_back(name + ": unknown configuration key; known keys: " + knownEnvNames());
      continue;
    }
    auto& slot = found[static_cast<std::size_t>(spec - kKeys.begin())];
    if (slot) {
      problems.push_back(name + ": set twice (also as " + slot->name + ")");
      continue;
    }
    slot = EnvSetting{name, value};
  }
  for (std::size_t i = 0; i < kKeys.size(); ++i) {
    const KeySpec& spec = kKeys[i];
    std::optional<EnvSetting> setting = found[i];
    if (!setting && spec.key == kLogLevelKey) setting = serilog;
    if (!setting) continue;
    if (spec.kind == ValueKind::kEndpoint && setting->value.empty()) continue;
    Result<void> applied = applyValue(spec, setting->value, setting->name, config);
    if (!applied) {
      problems.push_back(applied.error().message);
    } else {
      origins[std::string(spec.key)] = "env " + setting->name;
    }
  }
}

std::string helpText(const CLI::App& app) {
  return app.help() +
         "\nEvery flag has an environment twin: ZASTAVA_AGENT__<Key> with ':' written as '__'\n"
         "(e.g. --health-port is ZASTAVA_AGENT__HealthCheck__Port). Flags override the\n"
         "environment. See docs/configuration.md for the full table.\n";
}

// Where a key's effective value came from, for cross-key messages.
std::string sourceOf(std::string_view key, const ConfigOrigins& origins) {
  auto it = origins.find(key);
  return it == origins.end() ? "default" : it->second;
}

}  // namespace

Environment processEnvironment() {
  Environment env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    std::string_view text(*entry);
    std::size_t equals = text.find('=');
    if (equals == std::string_view::npos) continue;
    env.emplace_back(std::string(text.substr(0, equals)), std::string(text.substr(equals + 1)));
  }
  return env;
}

Result<ParsedCommandLine> parseCommandLine(int argc, const char* const* argv,
                                           const Environment& env) {
  ParsedCommandLine parsed;
  std::array<std::string, kKeys.size()> flagValues;
  std::array<bool, kKeys.size()> flagGiven{};
  bool wantVersion = false;
  bool wantCheck = false;
  try {
    std::array<CLI::Option*, kKeys.size()> options{};
    CLI::App app("Read-only runtime observation agent for Docker hosts.", "zastava-agent");
    for (std::size_t i = 0; i < kKeys.size(); ++i) {
      const KeySpec& spec = kKeys[i];
      std::string description = std::string(spec.meaning) + " [" + envNameOf(spec.key) +
                                "; default " + defaultText(spec) + "]";
      options[i] = app.add_option(std::string(spec.flag), flagValues[i], description)
                       ->type_name(std::string(spec.valueName))
                       ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    }
    app.add_flag("--check-config", wantCheck,
                 "print the effective configuration and exit: 0 when valid, 2 otherwise");
    app.add_flag("--version", wantVersion, "print the version and exit");
    std::vector<std::string> args;
    for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);
    try {
      app.parse(args);
    } catch (const CLI::Success&) {  // --help
      parsed.command = Command::kHelp;
      parsed.text = helpText(app);
      return parsed;
    } catch (const CLI::ExtrasError&) {
      std::string list;
      for (const std::string& extra : app.remaining()) list += " '" + extra + "'";
      return invalid("command line: unexpected argument(s):" + list + " (see --help)");
    } catch (const CLI::ParseError& e) {
      return invalid(std::string("command line: ") + e.what() + " (see --help)");
    }
    for (std::size_t i = 0; i < kKeys.size(); ++i) flagGiven[i] = options[i]->count() > 0;
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, std::string("command line setup: ") + e.what()};
  }
  if (wantVersion) {
    parsed.command = Command::kVersion;
    parsed.text = std::string("zastava-agent ") + ZASTAVA_VERSION + "\n";
    return parsed;
  }
  parsed.command = wantCheck ? Command::kCheckConfig : Command::kRun;

  std::vector<std::string> problems;
  applyEnvironment(env, parsed.config, parsed.origins, problems);
  for (std::size_t i = 0; i < kKeys.size(); ++i) {
    if (!flagGiven[i]) continue;
    const KeySpec& spec = kKeys[i];
    Result<void> applied = applyValue(spec, flagValues[i], spec.flag, parsed.config);
    if (!applied) {
      problems.push_back(applied.error().message);
    } else {
      parsed.origins[std::string(spec.key)] = "flag " + std::string(spec.flag);
    }
  }
  if (problems.empty() && parsed.config.maxTotalSizeMb < parsed.config.maxFileSizeMb) {
    problems.push_back(std::string(kTotalKey) + " (" +
                       std::to_string(parsed.config.maxTotalSizeMb) + ", " +
                       sourceOf(kTotalKey, parsed.origins) + ") must be at least " +
                       std::string(kFileKey) + " (" + std::to_string(parsed.config.maxFileSizeMb) +
                       ", " + sourceOf(kFileKey, parsed.origins) + ")");
  }
  if (!problems.empty()) return invalid(joinLines(problems));
  return parsed;
}

std::string describeConfig(const Config& config) { return describe(config, nullptr); }

std::string describeConfig(const Config& config, const ConfigOrigins& origins) {
  return describe(config, &origins);
}

std::vector<ConfigKey> configKeys() {
  std::vector<ConfigKey> keys;
  for (const KeySpec& spec : kKeys) {
    keys.push_back(ConfigKey{std::string(spec.key), envNameOf(spec.key), std::string(spec.flag),
                             acceptedValues(spec), defaultText(spec), std::string(spec.meaning)});
  }
  return keys;
}

std::string_view logLevelName(LogLevel level) {
  auto index = static_cast<std::size_t>(level);
  return index < kLevelNames.size() ? kLevelNames[index] : "unknown";
}

Result<LogLevel> parseLogLevel(std::string_view text) {
  for (std::size_t i = 0; i < kLevelNames.size(); ++i) {
    if (equalsIgnoreCase(text, kLevelNames[i]) || equalsIgnoreCase(text, kSerilogLevelNames[i])) {
      return static_cast<LogLevel>(i);
    }
  }
  return invalid("'" + std::string(text) + "' is not a log level (" + std::string(kLogLevelNames) +
                 ")");
}

BufferLimits bufferLimits(const Config& config) {
  constexpr std::uint64_t kMiB = 1024 * 1024;
  constexpr std::int64_t kNanosPerHour = 3600LL * 1'000'000'000;
  BufferLimits limits;
  limits.maxFileBytes = static_cast<std::uint64_t>(config.maxFileSizeMb) * kMiB;
  limits.maxTotalBytes = static_cast<std::uint64_t>(config.maxTotalSizeMb) * kMiB;
  limits.retentionNanos = config.retentionHours * kNanosPerHour;
  return limits;
}

EvidenceOptions evidenceOptions(const Config& config) {
  constexpr std::uint64_t kMiB = 1024 * 1024;
  EvidenceOptions options;
  options.procRoot = config.evidenceProcRoot.string();
  options.workers = config.evidenceWorkers;
  options.tree.maxProcesses = static_cast<std::size_t>(config.evidenceMaxProcesses);
  options.tree.maxExeBytes = static_cast<std::uint64_t>(config.evidenceMaxHashMb) * kMiB;
  options.libraries.maxLibraries = static_cast<std::size_t>(config.evidenceMaxLibraries);
  options.libraries.maxBytes = static_cast<std::uint64_t>(config.evidenceMaxHashMb) * kMiB;
  options.rescanDelay = std::chrono::seconds(config.evidenceRescanSeconds);
  return options;
}

}  // namespace zastava
