#include "agent/config.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <cctype>
#include <exception>

#include "agent/config_table.h"
#include "common/invariant.h"
#include "common/version.h"

extern char** environ;

namespace zastava {
namespace {

constexpr std::uint64_t kMiB = std::uint64_t{1024} * 1024;

// Indexed by LogLevel.
constexpr std::array<std::string_view, 6> kLevelNames = {"trace",   "debug", "info",
                                                         "warning", "error", "critical"};
constexpr std::array<std::string_view, 6> kSerilogLevelNames = {"Verbose", "Debug", "Information",
                                                                "Warning", "Error", "Fatal"};
constexpr std::string_view kTotalKey = "EventBuffer:MaxTotalSizeMb";
constexpr std::string_view kFileKey = "EventBuffer:MaxFileSizeMb";
constexpr std::string_view kLogLevelKey = "LogLevel";
constexpr std::string_view kClientCertKey = "Backend:ClientCertFile";
constexpr std::string_view kClientKeyKey = "Backend:ClientKeyFile";
constexpr std::string_view kNatsUserKey = "Backend:NatsUser";
constexpr std::string_view kNatsPasswordKey = "Backend:NatsPasswordFile";

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
    if (emptyMeansUnset(spec.kind) && setting->value.empty()) continue;
    Result<void> applied = applyValue(spec, setting->value, setting->name, config);
    if (!applied) {
      problems.push_back(applied.error().message);
    } else {
      origins[std::string(spec.key)] = "env " + setting->name;
    }
  }
}

// Where --help starts the flags' descriptions. A flag that reaches it has its description on the
// next line; every other description must stand two spaces or more after its flag, as help2man
// needs for the man page: a flag exactly three columns shorter would have one.
constexpr std::size_t kHelpColumn = 31;

std::string helpText(const CLI::App& app) {
  return app.help() +
         "\nCommands:\n"
         "  zastava-agent records [-f] [--container NAME|ID] [--kind KIND] [--since TIME]\n"
         "                               print the ledger's records, one line each, and with -f\n"
         "                               follow new ones (zastava-agent records --help)\n"
         "  zastava-agent verify [--data-directory DIR] [--seal-key FILE]...\n"
         "                               check the ledger's hash chain, NDJSON against SQLite,\n"
         "                               and with the seed every seal (exit 0 valid, 1 tampered)\n"
         "  zastava-agent seal-key export [--data-directory DIR]\n"
         "                               print the sealing seeds still on this host, to take\n"
         "                               off it (then delete the files)\n"
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
    app.get_formatter()->column_width(kHelpColumn);
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
    parsed.text = "zastava-agent " + std::string(kVersion) + "\n";
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
  const Config& config = parsed.config;
  if (config.backendClientCertFile.empty() != config.backendClientKeyFile.empty()) {
    problems.push_back(std::string(kClientCertKey) + " (" +
                       sourceOf(kClientCertKey, parsed.origins) + ") and " +
                       std::string(kClientKeyKey) + " (" + sourceOf(kClientKeyKey, parsed.origins) +
                       ") go together: set both or neither");
  }
  if (config.backendNatsUser.empty() != config.backendNatsPasswordFile.empty()) {
    problems.push_back(std::string(kNatsUserKey) + " (" + sourceOf(kNatsUserKey, parsed.origins) +
                       ") and " + std::string(kNatsPasswordKey) + " (" +
                       sourceOf(kNatsPasswordKey, parsed.origins) +
                       ") go together: set both or neither");
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
  keys.reserve(kKeys.size());
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
  constexpr std::int64_t kNanosPerHour = 3600LL * 1'000'000'000;
  BufferLimits limits;
  limits.maxFileBytes = static_cast<std::uint64_t>(config.maxFileSizeMb) * kMiB;
  limits.maxTotalBytes = static_cast<std::uint64_t>(config.maxTotalSizeMb) * kMiB;
  limits.retentionNanos = config.retentionHours * kNanosPerHour;
  return limits;
}

EventQueue::Limits eventQueueLimits(const Config& config) {
  EventQueue::Limits limits;
  limits.maxEvents = static_cast<std::size_t>(config.eventQueueMaxEvents);
  limits.maxBytes = static_cast<std::size_t>(config.eventQueueMaxMb) * kMiB;
  return limits;
}

PosturePolicy posturePolicy(const Config& config) {
  // Both were validated when the configuration was read (config_table.cpp).
  auto skip = parsePostureCheckList(config.postureSkipChecks);
  auto overrides = parseSeverityOverrides(config.postureSeverityOverrides);
  if (!skip.ok() || !overrides.ok()) ZASTAVA_BUG("Posture:* accepted although invalid");
  return PosturePolicy{std::move(*skip), std::move(*overrides)};
}

EvidenceOptions evidenceOptions(const Config& config) {
  EvidenceOptions options;
  options.procRoot = config.evidenceProcRoot.string();
  options.workers = config.evidenceWorkers;
  options.tree.maxProcesses = static_cast<std::size_t>(config.evidenceMaxProcesses);
  options.tree.maxExeBytes = static_cast<std::uint64_t>(config.evidenceMaxHashMb) * kMiB;
  options.libraries.maxLibraries = static_cast<std::size_t>(config.evidenceMaxLibraries);
  options.libraries.maxBytes = static_cast<std::uint64_t>(config.evidenceMaxHashMb) * kMiB;
  options.rescanDelay = std::chrono::seconds(config.evidenceRescanSeconds);
  options.posture = posturePolicy(config);
  return options;
}

DispatcherOptions dispatcherOptions(const Config& config) {
  DispatcherOptions options;
  options.backend.url = config.backendUrl;
  options.backend.tokenFile = config.backendTokenFile;
  options.backend.caFile = config.backendCaFile;
  options.backend.clientCertFile = config.backendClientCertFile;
  options.backend.clientKeyFile = config.backendClientKeyFile;
  options.backend.gzip = config.backendGzip;
  options.backend.timeout = std::chrono::seconds(config.backendTimeoutSeconds);
  options.batchMaxRecords = static_cast<std::size_t>(config.backendBatchMaxRecords);
  options.batchMaxBytes = static_cast<std::size_t>(config.backendBatchMaxKb) * 1024;
  options.batchMaxWait = std::chrono::milliseconds(config.backendBatchMaxWaitMs);
  options.retryMax = std::chrono::seconds(config.backendRetryMaxSeconds);
  options.failuresBeforeUnready = config.backendFailuresBeforeUnready;
  options.nats.stream = config.backendNatsStream;
  options.nats.subjectPrefix = config.backendNatsSubjectPrefix;
  options.nats.ackWindow = static_cast<std::size_t>(config.backendNatsAckWindow);
  options.nats.user = config.backendNatsUser;
  options.nats.passwordFile = config.backendNatsPasswordFile;
  options.nats.tokenFile = config.backendTokenFile;
  options.nats.nkeySeedFile = config.backendNatsNkeySeedFile;
  options.nats.caFile = config.backendCaFile;
  options.nats.clientCertFile = config.backendClientCertFile;
  options.nats.clientKeyFile = config.backendClientKeyFile;
  options.nats.timeout = std::chrono::seconds(config.backendTimeoutSeconds);
  options.nats.hostName = localHostName();
  options.dataDirectory = config.dataDirectory;
  options.retentionNanos = bufferLimits(config).retentionNanos;
  return options;
}

PipelineOptions pipelineOptions(const Config& config) {
  PipelineOptions options;
  options.inventoryConcurrency = config.inventoryConcurrency;
  options.maxBackoff = std::chrono::seconds(config.reconnectMaxBackoffSeconds);
  options.auditInterval = std::chrono::seconds(config.auditIntervalSeconds);
  options.silenceCheck = std::chrono::seconds(config.silenceCheckSeconds);
  options.eventQueue = eventQueueLimits(config);
  options.posture = posturePolicy(config);
  return options;
}

Result<std::filesystem::path> agentDataDirectory(const Environment& env) {
  const char* agentOnly[] = {"zastava-agent"};
  auto agent = parseCommandLine(1, agentOnly, env);
  if (!agent.ok()) return agent.error();
  return agent->config.dataDirectory;
}

}  // namespace zastava
