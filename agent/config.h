// The agent's configuration: defaults, then ZASTAVA_AGENT__* environment variables (.NET style,
// keys case-insensitive, "__" between sections), then --flags. docs/configuration.md has the one
// table of every key. Unknown ZASTAVA_AGENT__* keys and bad values are errors naming the key.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "agent/event_queue.h"
#include "agent/evidence_collector.h"
#include "agent/pipeline_options.h"
#include "agent/redaction.h"
#include "buffer/recorder.h"
#include "common/result.h"
#include "delivery/dispatcher.h"
#include "health/health_state.h"

namespace zastava {

enum class LogLevel { kTrace, kDebug, kInfo, kWarning, kError, kCritical };

struct Config {
  std::string dockerEndpoint;  // empty: DOCKER_HOST, then unix:///var/run/docker.sock
  std::filesystem::path dataDirectory = "/var/lib/zastava-agent";
  std::int64_t maxFileSizeMb = kDefaultMaxFileSizeMb;    // EventBuffer:MaxFileSizeMb, 1..4096
  std::int64_t maxTotalSizeMb = kDefaultMaxTotalSizeMb;  // EventBuffer:MaxTotalSizeMb, >= the above
  std::int64_t retentionHours = kDefaultRetentionHours;  // EventBuffer:RetentionHours, 1..87600
  int sealIntervalSeconds = 60;                          // Ledger:SealIntervalSeconds, 1..3600
  std::string healthAddress = "0.0.0.0";                 // HealthCheck:Address
  int healthPort = 8080;                                 // HealthCheck:Port, 1..65535
  int stallSeconds = kDefaultStallLimit.count();         // HealthCheck:StallSeconds, 1..86400
  LogLevel logLevel = LogLevel::kInfo;  // LogLevel, or Serilog__MinimumLevel__Default
  // Inventory:Concurrency, 1..64: parallel inspects
  int inventoryConcurrency = kDefaultInventoryConcurrency;
  // Reconnect:MaxBackoffSeconds, 1..3600
  int reconnectMaxBackoffSeconds = static_cast<int>(kDefaultReconnectMaxBackoff.count());
  // Reconcile:AuditIntervalSeconds, 0..86400 (0: off)
  int auditIntervalSeconds = static_cast<int>(kDefaultAuditInterval.count());
  // EventStream:SilenceCheckSeconds, 1..86400
  int silenceCheckSeconds = static_cast<int>(kDefaultSilenceCheck.count());
  int eventQueueMaxEvents = EventQueue::kDefaultMaxEvents;  // EventQueue:MaxEvents, 16..1048576
  int eventQueueMaxMb = EventQueue::kDefaultMaxMb;          // EventQueue:MaxMb, 1..1024
  // Evidence:EnvKeepValues and Evidence:RedactPatterns, comma-separated lists.
  std::vector<std::string> envKeepValues = RedactionPolicy{}.keepValues;
  std::vector<std::string> redactPatterns = RedactionPolicy{}.alwaysRedact;
  std::filesystem::path evidenceProcRoot{kDefaultProcRoot};  // Evidence:ProcRoot
  int evidenceWorkers = kDefaultEvidenceWorkers;             // Evidence:Workers, 0..16
  int evidenceMaxProcesses = kDefaultMaxProcesses;           // Evidence:MaxProcesses, 1..100000
  int evidenceMaxLibraries = kDefaultMaxLibraries;           // Evidence:MaxLibraries, 1..100000
  int evidenceMaxHashMb = kDefaultMaxHashMb;                 // Evidence:MaxHashMb, 1..65536
  // Evidence:RescanSeconds, 0..86400
  int evidenceRescanSeconds = static_cast<int>(kDefaultRescanDelay.count());
  // Posture:SkipChecks and Posture:SeverityOverrides (docs/posture.md), as given; validated.
  std::string postureSkipChecks;
  std::string postureSeverityOverrides;
  // Backend:* (docs/backend.md). An empty URL turns delivery off; empty paths are not set.
  std::string backendUrl;
  std::filesystem::path backendTokenFile;
  std::filesystem::path backendCaFile;
  std::filesystem::path backendClientCertFile;
  std::filesystem::path backendClientKeyFile;
  int backendBatchMaxRecords = kDefaultBatchMaxRecords;  // Backend:BatchMaxRecords, 1..100000
  int backendBatchMaxKb = kDefaultBatchMaxKb;            // Backend:BatchMaxKb, 1..65536
  // Backend:BatchMaxWaitMs, 0..600000
  int backendBatchMaxWaitMs = static_cast<int>(kDefaultBatchMaxWait.count());
  bool backendGzip = false;  // Backend:Gzip
  // Backend:TimeoutSeconds, 1..600
  int backendTimeoutSeconds = static_cast<int>(kDefaultBackendTimeout.count());
  // Backend:RetryMaxSeconds, 1..3600
  int backendRetryMaxSeconds = static_cast<int>(kDefaultRetryMax.count());
  // Backend:FailuresBeforeUnready, 1..1000
  int backendFailuresBeforeUnready = kDefaultFailuresBeforeUnready;
  // Backend:Nats* (docs/backend.md "NATS JetStream"), with a nats:// or tls:// Backend:Url.
  std::string backendNatsStream = std::string(kDefaultNatsStream);
  std::string backendNatsSubjectPrefix = std::string(kDefaultNatsSubjectPrefix);
  int backendNatsAckWindow = kDefaultNatsAckWindow;  // Backend:NatsAckWindow, 1..65536
  std::string backendNatsUser;
  std::filesystem::path backendNatsPasswordFile;
  std::filesystem::path backendNatsNkeySeedFile;
};

// What main should do after parsing.
enum class Command { kRun, kCheckConfig, kHelp, kVersion };

// Where each key's value came from, by key ("HealthCheck:Port"): "env <NAME>" or "flag --name".
// A key that is absent kept its default.
using ConfigOrigins = std::map<std::string, std::string, std::less<>>;

struct ParsedCommandLine {
  Command command = Command::kRun;
  Config config;
  std::string text;  // for kHelp/kVersion: what to print
  ConfigOrigins origins;
};

// Environment as name/value pairs (so tests pass their own).
using Environment = std::vector<std::pair<std::string, std::string>>;
Environment processEnvironment();

// Defaults <- env <- flags. Errors are kInvalidArgument with a message naming the key or flag and
// the accepted values, e.g. "ZASTAVA_AGENT__HealthCheck__Port: 'abc' is not a port (1-65535)".
Result<ParsedCommandLine> parseCommandLine(int argc, const char* const* argv,
                                           const Environment& env);

// The agent's own data directory, the default of the commands that read it: DataDirectory from
// `env`, else /var/lib/zastava-agent. Errors: kInvalidArgument naming the variable. Any thread.
Result<std::filesystem::path> agentDataDirectory(const Environment& env);

// The effective configuration as "Key = value" lines, one per key, in table order.
std::string describeConfig(const Config& config);

std::string_view logLevelName(LogLevel level);

inline constexpr std::string_view kEnvPrefix = "ZASTAVA_AGENT__";
inline constexpr std::string_view kSerilogLevelVariable = "Serilog__MinimumLevel__Default";

// One row of the configuration table, in table order (the order of --help, describeConfig and
// docs/configuration.md).
struct ConfigKey {
  std::string key;           // "HealthCheck:Port"
  std::string envName;       // "ZASTAVA_AGENT__HealthCheck__Port"
  std::string flag;          // "--health-port"
  std::string accepted;      // "a whole number between 1 and 65535"
  std::string defaultValue;  // as --help and docs/configuration.md show it
  std::string meaning;
};
// Never fails; any thread.
std::vector<ConfigKey> configKeys();

// Like describeConfig(config), with each line ending in "(default)", "(env NAME)" or
// "(flag --name)" from `origins`.
std::string describeConfig(const Config& config, const ConfigOrigins& origins);

// trace|debug|info|warning|error|critical or Serilog's Verbose|Debug|Information|Warning|Error|
// Fatal, case-insensitive. Error: kInvalidArgument "'<text>' is not a log level (...)". Any thread.
Result<LogLevel> parseLogLevel(std::string_view text);

// The buffer limits in bytes (1 MB = 1 MiB) and nanoseconds. Any thread.
BufferLimits bufferLimits(const Config& config);

// The bounds of the queue between the event stream and the enricher (EventQueue:*), in events
// and bytes (1 MB = 1 MiB). Any thread.
EventQueue::Limits eventQueueLimits(const Config& config);

// The evidence settings (Evidence:*) in the collector's units. Any thread.
EvidenceOptions evidenceOptions(const Config& config);
// Posture:SkipChecks and Posture:SeverityOverrides.
PosturePolicy posturePolicy(const Config& config);

// The delivery settings (Backend:*) in the dispatcher's units. Any thread.
DispatcherOptions dispatcherOptions(const Config& config);

// The pipeline's settings (Inventory:Concurrency, Reconnect:MaxBackoffSeconds,
// Reconcile:AuditIntervalSeconds, EventStream:SilenceCheckSeconds, EventQueue:*); the rest keep
// PipelineOptions' own values. Any thread.
PipelineOptions pipelineOptions(const Config& config);

}  // namespace zastava
