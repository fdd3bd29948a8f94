#include "agent/config_table.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <type_traits>

#include "collectors/endpoint.h"
#include "common/invariant.h"
#include "common/split.h"
#include "posture/policy.h"

namespace zastava {

const std::array<KeySpec, kKeyCount> kKeys = {{
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
    {"Ledger:SealIntervalSeconds", "--ledger-seal-interval-seconds", "N",
     "how often an agent.seal record seals the ledger (also at every clean stop)",
     ValueKind::kInteger, &Config::sealIntervalSeconds, 1, 3600},
    {"HealthCheck:Address", "--health-address", "ADDR",
     "address the health/metrics HTTP server binds", ValueKind::kIpAddress, &Config::healthAddress},
    {"HealthCheck:Port", "--health-port", "N", "port of /healthz /readyz /livez /metrics",
     ValueKind::kInteger, &Config::healthPort, 1, 65535},
    {"HealthCheck:StallSeconds", "--health-stall-seconds", "N",
     "a worker on one piece of work this long fails /livez and stops systemd's watchdog",
     ValueKind::kInteger, &Config::stallSeconds, 1, 86400},
    {"LogLevel", "--log-level", "LEVEL", "least severe level written to stderr",
     ValueKind::kLogLevel, &Config::logLevel},
    {"Inventory:Concurrency", "--inventory-concurrency", "N",
     "container inspects in flight during a reconcile", ValueKind::kInteger,
     &Config::inventoryConcurrency, 1, 64},
    {"Reconnect:MaxBackoffSeconds", "--reconnect-max-backoff-seconds", "N",
     "longest wait between engine reconnect attempts", ValueKind::kInteger,
     &Config::reconnectMaxBackoffSeconds, 1, 3600},
    {"Reconcile:AuditIntervalSeconds", "--reconcile-audit-interval-seconds", "N",
     "how often the ledger is compared with the engine's container list; 0 turns it off",
     ValueKind::kInteger, &Config::auditIntervalSeconds, 0, 86400},
    {"EventStream:SilenceCheckSeconds", "--event-stream-silence-check-seconds", "N",
     "after this long without an event, ping the engine and reopen the stream if it is gone",
     ValueKind::kInteger, &Config::silenceCheckSeconds, 1, 86400},
    {"EventQueue:MaxEvents", "--event-queue-max-events", "N",
     "engine events waiting for the enricher at most; when full the stream is reopened and the "
     "engine sends the rest again",
     ValueKind::kInteger, &Config::eventQueueMaxEvents, 16, 1048576},
    {"EventQueue:MaxMb", "--event-queue-max-mb", "N",
     "memory those waiting events may take, in MiB; reaching it is the same as MaxEvents",
     ValueKind::kInteger, &Config::eventQueueMaxMb, 1, 1024},
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
    {"Posture:SkipChecks", "--posture-skip-checks", "IDS",
     "posture checks not evaluated (docs/posture.md), e.g. 5.19,5.25; records list them as "
     "skipped",
     ValueKind::kPostureChecks, &Config::postureSkipChecks},
    {"Posture:SeverityOverrides", "--posture-severity-overrides", "ID=LEVEL,...",
     "severities that replace the catalogue's, e.g. 5.13=high,5.19=low",
     ValueKind::kSeverityOverrides, &Config::postureSeverityOverrides},
    {"Backend:Url", "--backend-url", "URL",
     "records are POSTed there (docs/backend.md), or published to NATS JetStream with "
     "nats://host:port[,nats://...]; unset: no delivery",
     ValueKind::kBackendUrl, &Config::backendUrl},
    {"Backend:TokenFile", "--backend-token-file", "FILE",
     "file holding the bearer token, read before each request", ValueKind::kOptionalPath,
     &Config::backendTokenFile},
    {"Backend:CaFile", "--backend-ca-file", "FILE",
     "PEM CAs that may sign the backend's certificate; unset: the system's",
     ValueKind::kOptionalPath, &Config::backendCaFile},
    {"Backend:ClientCertFile", "--backend-client-cert-file", "FILE",
     "PEM client certificate for mTLS (with Backend:ClientKeyFile)", ValueKind::kOptionalPath,
     &Config::backendClientCertFile},
    {"Backend:ClientKeyFile", "--backend-client-key-file", "FILE",
     "PEM private key of the client certificate", ValueKind::kOptionalPath,
     &Config::backendClientKeyFile},
    {"Backend:BatchMaxRecords", "--backend-batch-max-records", "N", "records per request at most",
     ValueKind::kInteger, &Config::backendBatchMaxRecords, 1, 100000},
    {"Backend:BatchMaxKb", "--backend-batch-max-kb", "N",
     "KiB per request at most, before compression", ValueKind::kInteger, &Config::backendBatchMaxKb,
     1, 65536},
    {"Backend:BatchMaxWaitMs", "--backend-batch-max-wait-ms", "N",
     "how long a batch that is not full waits for more records", ValueKind::kInteger,
     &Config::backendBatchMaxWaitMs, 0, 600000},
    {"Backend:Gzip", "--backend-gzip", "BOOL", "compress request bodies (Content-Encoding: gzip)",
     ValueKind::kBool, &Config::backendGzip},
    {"Backend:TimeoutSeconds", "--backend-timeout-seconds", "N",
     "a request that takes longer is abandoned and retried", ValueKind::kInteger,
     &Config::backendTimeoutSeconds, 1, 600},
    {"Backend:RetryMaxSeconds", "--backend-retry-max-seconds", "N",
     "longest wait between delivery attempts (without Retry-After)", ValueKind::kInteger,
     &Config::backendRetryMaxSeconds, 1, 3600},
    {"Backend:FailuresBeforeUnready", "--backend-failures-before-unready", "N",
     "failed delivery attempts in a row before /readyz answers 503", ValueKind::kInteger,
     &Config::backendFailuresBeforeUnready, 1, 1000},
    {"Backend:NatsStream", "--backend-nats-stream", "NAME",
     "NATS: the JetStream stream that holds the records (the agent reads its position there)",
     ValueKind::kNatsStream, &Config::backendNatsStream},
    {"Backend:NatsSubjectPrefix", "--backend-nats-subject-prefix", "SUBJECT",
     "NATS: records are published to <prefix>.<host>", ValueKind::kNatsSubject,
     &Config::backendNatsSubjectPrefix},
    {"Backend:NatsAckWindow", "--backend-nats-ack-window", "N",
     "NATS: publishes awaiting their ack at most", ValueKind::kInteger,
     &Config::backendNatsAckWindow, 1, 65536},
    {"Backend:NatsUser", "--backend-nats-user", "NAME",
     "NATS: user name (with Backend:NatsPasswordFile)", ValueKind::kText, &Config::backendNatsUser},
    {"Backend:NatsPasswordFile", "--backend-nats-password-file", "FILE",
     "NATS: file holding the user's password, read at each connect", ValueKind::kOptionalPath,
     &Config::backendNatsPasswordFile},
    {"Backend:NatsNkeySeedFile", "--backend-nats-nkey-seed-file", "FILE",
     "NATS: file holding the user's NKey seed (SU...)", ValueKind::kOptionalPath,
     &Config::backendNatsNkeySeedFile},
}};

namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
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
  for (std::string_view item : splitTrimmed(text, ',')) {
    const bool valid = !item.empty() && std::all_of(item.begin(), item.end(), [](char c) {
      return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '_' || c == '.' || c == '-' ||
             c == '*' || c == '?';
    });
    if (!valid) return invalid("bad item");
    names.emplace_back(item);
  }
  return names;
}

std::string lowered(std::string_view text) {
  std::string out(text);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool hasNoSpace(std::string_view text) {
  return std::none_of(text.begin(), text.end(),
                      [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; });
}

// `wanted`:// (any case) followed by a host, with no whitespace anywhere.
bool hasScheme(std::string_view text, std::string_view wanted) {
  const std::size_t schemeEnd = text.find("://");
  if (schemeEnd == std::string_view::npos) return false;
  const std::string scheme = lowered(text.substr(0, schemeEnd));
  const std::string_view rest = text.substr(schemeEnd + 3);
  const bool hasHost = !rest.empty() && rest.front() != '/' && rest.front() != ':';
  return scheme == wanted && hasHost && hasNoSpace(text);
}

// http:// or https:// (any case) followed by a host; libcurl judges the rest.
bool isHttpUrl(std::string_view text) {
  return hasScheme(text, "http") || hasScheme(text, "https");
}

// nats:// or tls:// URLs (any case, each with a host), separated by commas.
bool isNatsUrlList(std::string_view text) {
  const std::vector<std::string_view> urls = splitTrimmed(text, ',');
  return !urls.empty() && std::all_of(urls.begin(), urls.end(), [](std::string_view url) {
    return hasScheme(url, "nats") || hasScheme(url, "tls");
  });
}

bool isBackendUrl(std::string_view text) { return isHttpUrl(text) || isNatsUrlList(text); }

// A JetStream stream name: no whitespace, '.', '*', '>', '/' or '\\'.
bool isNatsStream(std::string_view text) {
  return hasNoSpace(text) && text.find_first_of(".*>/\\") == std::string_view::npos;
}

// Subject tokens separated by '.', none empty, no wildcards.
bool isNatsSubject(std::string_view text) {
  return hasNoSpace(text) && text.find_first_of("*>") == std::string_view::npos && !text.empty() &&
         text.front() != '.' && text.back() != '.' && text.find("..") == std::string_view::npos;
}

Result<bool> parseBool(std::string_view text) {
  const std::string value = lowered(text);
  if (value == "true") return true;
  if (value == "false") return false;
  return invalid("not a boolean");
}

bool isIpAddress(const std::string& text) {
  unsigned char buffer[sizeof(struct in6_addr)];
  return inet_pton(AF_INET, text.c_str(), buffer) == 1 ||
         inet_pton(AF_INET6, text.c_str(), buffer) == 1;
}

// What is wrong with a Posture:* value, or std::nullopt when it is valid.
std::optional<std::string> postureProblem(ValueKind kind, std::string_view value) {
  if (kind == ValueKind::kPostureChecks) {
    if (auto ids = parsePostureCheckList(value); !ids.ok()) return ids.error().message;
  } else if (auto overrides = parseSeverityOverrides(value); !overrides.ok()) {
    return overrides.error().message;
  }
  return std::nullopt;
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

}  // namespace

bool emptyMeansUnset(ValueKind kind) {
  return kind == ValueKind::kEndpoint || kind == ValueKind::kOptionalPath ||
         kind == ValueKind::kBackendUrl || kind == ValueKind::kText ||
         kind == ValueKind::kPostureChecks || kind == ValueKind::kSeverityOverrides;
}

std::string acceptedValues(const KeySpec& spec) {
  if (spec.kind == ValueKind::kEndpoint) return "a unix://, tcp://, http:// or https:// URI";
  if (spec.kind == ValueKind::kAbsolutePath) return "an absolute path";
  if (spec.kind == ValueKind::kOptionalPath) return "an absolute path, or empty for none";
  if (spec.kind == ValueKind::kBackendUrl) {
    return "an http:// or https:// URL, nats:// or tls:// URLs separated by commas, or empty for "
           "none";
  }
  if (spec.kind == ValueKind::kNatsStream) {
    return "a stream name (no whitespace, '.', '*', '>', '/' or '\\')";
  }
  if (spec.kind == ValueKind::kNatsSubject) {
    return "subject tokens separated by '.' (none empty, no '*', '>' or whitespace)";
  }
  if (spec.kind == ValueKind::kText) return "text without whitespace, or empty for none";
  if (spec.kind == ValueKind::kBool) return "true or false";
  if (spec.kind == ValueKind::kIpAddress) return "a literal IPv4 or IPv6 address";
  if (spec.kind == ValueKind::kLogLevel) return "a log level (" + std::string(kLogLevelNames) + ")";
  if (spec.kind == ValueKind::kNameList) {
    return "a comma-separated list of names or globs (letters, digits, _ . - * ?)";
  }
  if (spec.kind == ValueKind::kPostureChecks) {
    return "a comma-separated list of posture check ids (docs/posture.md), or empty for none";
  }
  if (spec.kind == ValueKind::kSeverityOverrides) {
    return "a comma-separated list of ID=LEVEL, LEVEL one of critical, high, medium, low, info, "
           "or empty for none";
  }
  return "a whole number between " + std::to_string(spec.min) + " and " + std::to_string(spec.max);
}

Result<void> applyValue(const KeySpec& spec, const std::string& value, std::string_view source,
                        Config& config) {
  std::string prefix = std::string(source) + ": ";
  bool valid = false;
  bool stored = false;
  if (value.empty()) {
    if (!emptyMeansUnset(spec.kind)) {
      return invalid(prefix + "is empty; expected " + acceptedValues(spec));
    }
    valid = true;
    stored = spec.kind == ValueKind::kOptionalPath ? store(spec, std::filesystem::path(), config)
                                                   : store(spec, std::string(), config);
  } else if (spec.kind == ValueKind::kEndpoint || spec.kind == ValueKind::kIpAddress ||
             spec.kind == ValueKind::kBackendUrl || spec.kind == ValueKind::kNatsStream ||
             spec.kind == ValueKind::kNatsSubject || spec.kind == ValueKind::kText) {
    switch (spec.kind) {
      case ValueKind::kEndpoint:
        valid = parseEndpoint(value).ok();
        break;
      case ValueKind::kBackendUrl:
        valid = isBackendUrl(value);
        break;
      case ValueKind::kNatsStream:
        valid = isNatsStream(value);
        break;
      case ValueKind::kNatsSubject:
        valid = isNatsSubject(value);
        break;
      case ValueKind::kText:
        valid = hasNoSpace(value);
        break;
      default:
        valid = isIpAddress(value);
    }
    stored = valid && store(spec, value, config);
  } else if (spec.kind == ValueKind::kAbsolutePath || spec.kind == ValueKind::kOptionalPath) {
    valid = std::filesystem::path(value).is_absolute();
    stored = valid && store(spec, std::filesystem::path(value), config);
  } else if (spec.kind == ValueKind::kBool) {
    Result<bool> flag = parseBool(value);
    valid = flag.ok();
    stored = valid && store(spec, *flag, config);
  } else if (spec.kind == ValueKind::kInteger) {
    Result<std::int64_t> number = parseInteger(value, spec.min, spec.max);
    valid = number.ok();
    stored = valid && store(spec, *number, config);
  } else if (spec.kind == ValueKind::kNameList) {
    Result<std::vector<std::string>> names = parseNameList(value);
    valid = names.ok();
    stored = valid && store(spec, *names, config);
  } else if (spec.kind == ValueKind::kPostureChecks || spec.kind == ValueKind::kSeverityOverrides) {
    if (auto problem = postureProblem(spec.kind, value)) {
      return invalid(prefix + *problem + "; expected " + acceptedValues(spec));
    }
    valid = true;
    stored = store(spec, value, config);
  } else {
    Result<LogLevel> level = parseLogLevel(value);
    valid = level.ok();
    stored = valid && store(spec, *level, config);
  }
  if (!valid) return invalid(prefix + "'" + value + "' is not " + acceptedValues(spec));
  if (!stored) ZASTAVA_BUG(std::string(spec.key) + ": kKeys gives it a field of another type");
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
          return value.empty() ? std::string(kNotSet) : value;
        } else if constexpr (std::is_same_v<T, std::filesystem::path>) {
          return value.empty() ? std::string(kNotSet) : value.string();
        } else if constexpr (std::is_same_v<T, bool>) {
          return value ? "true" : "false";
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

std::string defaultText(const KeySpec& spec) {
  if (spec.kind == ValueKind::kEndpoint) {
    return "DOCKER_HOST, else " + std::string(kDefaultDockerEndpoint);
  }
  return showValue(spec, Config{});
}

}  // namespace zastava
