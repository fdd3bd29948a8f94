#include "agent/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/version.h"
#include "tests/agent/config_test_util.h"

namespace zastava {
namespace {

using testing::contains;
using testing::parseArgs;

TEST_CASE("defaults match the documented table") {
  auto parsed = parseArgs({});
  REQUIRE(parsed.ok());
  CHECK(parsed->command == Command::kRun);
  const Config& c = parsed->config;
  CHECK(c.dockerEndpoint.empty());
  CHECK(c.dataDirectory == "/var/lib/zastava-agent");
  CHECK(c.maxFileSizeMb == 10);
  CHECK(c.maxTotalSizeMb == 100);
  CHECK(c.retentionHours == 24);
  CHECK(c.healthAddress == "0.0.0.0");
  CHECK(c.healthPort == 8080);
  CHECK(c.logLevel == LogLevel::kInfo);
  CHECK(c.inventoryConcurrency == 8);
  CHECK(c.reconnectMaxBackoffSeconds == 30);
  CHECK(c.eventQueueMaxEvents == 4096);
  CHECK(c.eventQueueMaxMb == 4);
  CHECK(parsed->origins.empty());
}

struct KeyCase {
  const char* env;
  const char* flag;
  const char* value;
};

// Every key, set once from the environment and once from its flag, lands in the same field.
const KeyCase kEveryKey[] = {
    {"ZASTAVA_AGENT__DockerEndpoint", "--docker-endpoint", "tcp://127.0.0.1:2375"},
    {"ZASTAVA_AGENT__DataDirectory", "--data-directory", "/srv/zastava"},
    {"ZASTAVA_AGENT__EventBuffer__MaxFileSizeMb", "--event-buffer-max-file-size-mb", "50"},
    {"ZASTAVA_AGENT__EventBuffer__MaxTotalSizeMb", "--event-buffer-max-total-size-mb", "2048"},
    {"ZASTAVA_AGENT__EventBuffer__RetentionHours", "--event-buffer-retention-hours", "168"},
    {"ZASTAVA_AGENT__Ledger__SealIntervalSeconds", "--ledger-seal-interval-seconds", "300"},
    {"ZASTAVA_AGENT__HealthCheck__Address", "--health-address", "::1"},
    {"ZASTAVA_AGENT__HealthCheck__Port", "--health-port", "9100"},
    {"ZASTAVA_AGENT__HealthCheck__StallSeconds", "--health-stall-seconds", "30"},
    {"ZASTAVA_AGENT__LogLevel", "--log-level", "debug"},
    {"ZASTAVA_AGENT__Inventory__Concurrency", "--inventory-concurrency", "64"},
    {"ZASTAVA_AGENT__Reconnect__MaxBackoffSeconds", "--reconnect-max-backoff-seconds", "1"},
    {"ZASTAVA_AGENT__Reconcile__AuditIntervalSeconds", "--reconcile-audit-interval-seconds", "0"},
    {"ZASTAVA_AGENT__EventStream__SilenceCheckSeconds", "--event-stream-silence-check-seconds",
     "5"},
    {"ZASTAVA_AGENT__EventQueue__MaxEvents", "--event-queue-max-events", "16"},
    {"ZASTAVA_AGENT__EventQueue__MaxMb", "--event-queue-max-mb", "64"},
    {"ZASTAVA_AGENT__Evidence__EnvKeepValues", "--evidence-env-keep-values", "PATH, LANG"},
    {"ZASTAVA_AGENT__Evidence__RedactPatterns", "--evidence-redact-patterns", "*PASS*,tls.?ey"},
    {"ZASTAVA_AGENT__Evidence__ProcRoot", "--evidence-proc-root", "/host/proc"},
    {"ZASTAVA_AGENT__Evidence__Workers", "--evidence-workers", "0"},
    {"ZASTAVA_AGENT__Evidence__MaxProcesses", "--evidence-max-processes", "10"},
    {"ZASTAVA_AGENT__Evidence__MaxLibraries", "--evidence-max-libraries", "20"},
    {"ZASTAVA_AGENT__Evidence__MaxHashMb", "--evidence-max-hash-mb", "3"},
    {"ZASTAVA_AGENT__Evidence__RescanSeconds", "--evidence-rescan-seconds", "0"},
    {"ZASTAVA_AGENT__Posture__SkipChecks", "--posture-skip-checks", "5.19, 5.25"},
    {"ZASTAVA_AGENT__Posture__SeverityOverrides", "--posture-severity-overrides",
     "5.13=high,5.19=low"},
    {"ZASTAVA_AGENT__Backend__Url", "--backend-url", "https://ingest.example/v1"},
    {"ZASTAVA_AGENT__Backend__TokenFile", "--backend-token-file", "/etc/z/token"},
    {"ZASTAVA_AGENT__Backend__CaFile", "--backend-ca-file", "/etc/z/ca.pem"},
    {"ZASTAVA_AGENT__Backend__ClientCertFile", "--backend-client-cert-file", "/etc/z/c.pem"},
    {"ZASTAVA_AGENT__Backend__ClientKeyFile", "--backend-client-key-file", "/etc/z/k.pem"},
    {"ZASTAVA_AGENT__Backend__BatchMaxRecords", "--backend-batch-max-records", "50"},
    {"ZASTAVA_AGENT__Backend__BatchMaxKb", "--backend-batch-max-kb", "64"},
    {"ZASTAVA_AGENT__Backend__BatchMaxWaitMs", "--backend-batch-max-wait-ms", "0"},
    {"ZASTAVA_AGENT__Backend__Gzip", "--backend-gzip", "true"},
    {"ZASTAVA_AGENT__Backend__TimeoutSeconds", "--backend-timeout-seconds", "5"},
    {"ZASTAVA_AGENT__Backend__RetryMaxSeconds", "--backend-retry-max-seconds", "7"},
    {"ZASTAVA_AGENT__Backend__FailuresBeforeUnready", "--backend-failures-before-unready", "9"},
    {"ZASTAVA_AGENT__Backend__NatsStream", "--backend-nats-stream", "FLEET"},
    {"ZASTAVA_AGENT__Backend__NatsSubjectPrefix", "--backend-nats-subject-prefix", "sec.hosts"},
    {"ZASTAVA_AGENT__Backend__NatsAckWindow", "--backend-nats-ack-window", "16"},
    {"ZASTAVA_AGENT__Backend__NatsUser", "--backend-nats-user", "agent"},
    {"ZASTAVA_AGENT__Backend__NatsPasswordFile", "--backend-nats-password-file", "/etc/z/pw"},
    {"ZASTAVA_AGENT__Backend__NatsNkeySeedFile", "--backend-nats-nkey-seed-file", "/etc/z/nk"},
};

void checkAllSet(const Config& c) {
  CHECK(c.dockerEndpoint == "tcp://127.0.0.1:2375");
  CHECK(c.dataDirectory == "/srv/zastava");
  CHECK(c.stallSeconds == 30);
  CHECK(c.maxFileSizeMb == 50);
  CHECK(c.maxTotalSizeMb == 2048);
  CHECK(c.retentionHours == 168);
  CHECK(c.sealIntervalSeconds == 300);
  CHECK(c.healthAddress == "::1");
  CHECK(c.healthPort == 9100);
  CHECK(c.logLevel == LogLevel::kDebug);
  CHECK(c.inventoryConcurrency == 64);
  CHECK(c.reconnectMaxBackoffSeconds == 1);
  CHECK(c.auditIntervalSeconds == 0);
  CHECK(c.silenceCheckSeconds == 5);
  CHECK(c.eventQueueMaxEvents == 16);
  CHECK(c.eventQueueMaxMb == 64);
  CHECK(c.envKeepValues == std::vector<std::string>{"PATH", "LANG"});
  CHECK(c.redactPatterns == std::vector<std::string>{"*PASS*", "tls.?ey"});
  CHECK(c.evidenceProcRoot == "/host/proc");
  CHECK(c.evidenceWorkers == 0);
  CHECK(c.evidenceMaxProcesses == 10);
  CHECK(c.evidenceMaxLibraries == 20);
  CHECK(c.evidenceMaxHashMb == 3);
  CHECK(c.evidenceRescanSeconds == 0);
  CHECK(c.postureSkipChecks == "5.19, 5.25");
  CHECK(c.postureSeverityOverrides == "5.13=high,5.19=low");
  const PosturePolicy policy = posturePolicy(c);
  CHECK(policy.skip == std::set<std::string, std::less<>>{"5.19", "5.25"});
  CHECK(policy.severities.at("5.13") == Severity::kHigh);
  CHECK(policy.severities.at("5.19") == Severity::kLow);
  CHECK(c.backendUrl == "https://ingest.example/v1");
  CHECK(c.backendTokenFile == "/etc/z/token");
  CHECK(c.backendCaFile == "/etc/z/ca.pem");
  CHECK(c.backendClientCertFile == "/etc/z/c.pem");
  CHECK(c.backendClientKeyFile == "/etc/z/k.pem");
  CHECK(c.backendBatchMaxRecords == 50);
  CHECK(c.backendBatchMaxKb == 64);
  CHECK(c.backendBatchMaxWaitMs == 0);
  CHECK(c.backendGzip);
  CHECK(c.backendTimeoutSeconds == 5);
  CHECK(c.backendRetryMaxSeconds == 7);
  CHECK(c.backendFailuresBeforeUnready == 9);
  CHECK(c.backendNatsStream == "FLEET");
  CHECK(c.backendNatsSubjectPrefix == "sec.hosts");
  CHECK(c.backendNatsAckWindow == 16);
  CHECK(c.backendNatsUser == "agent");
  CHECK(c.backendNatsPasswordFile == "/etc/z/pw");
  CHECK(c.backendNatsNkeySeedFile == "/etc/z/nk");
}

TEST_CASE("dispatcherOptions: the Backend:* keys in the dispatcher's units") {
  Config config;
  CHECK_FALSE(dispatcherOptions(config).enabled());
  config.backendUrl = "http://127.0.0.1:9/";
  config.backendBatchMaxKb = 64;
  config.backendBatchMaxWaitMs = 250;
  config.retentionHours = 2;
  config.dataDirectory = "/srv/z";
  const DispatcherOptions options = dispatcherOptions(config);
  CHECK(options.enabled());
  CHECK(options.batchMaxBytes == 64 * 1024);
  CHECK(options.batchMaxWait == std::chrono::milliseconds(250));
  CHECK(options.retentionNanos == 2 * 3600LL * 1'000'000'000);
  CHECK(options.dataDirectory == "/srv/z");
  CHECK(options.failuresBeforeUnready == 3);
}

TEST_CASE("eventQueueLimits: the EventQueue:* keys in events and bytes") {
  const EventQueue::Limits defaults = eventQueueLimits(Config{});
  CHECK(defaults.maxEvents == EventQueue::Limits{}.maxEvents);
  CHECK(defaults.maxBytes == EventQueue::Limits{}.maxBytes);
  Config config;
  config.eventQueueMaxEvents = 16;
  config.eventQueueMaxMb = 1024;
  const EventQueue::Limits limits = eventQueueLimits(config);
  CHECK(limits.maxEvents == 16);
  CHECK(limits.maxBytes == 1024ull << 20);
}

TEST_CASE("evidenceOptions: the Evidence:* keys in the collector's units") {
  Config config;
  config.evidenceProcRoot = "/host/proc";
  config.evidenceWorkers = 3;
  config.evidenceMaxProcesses = 10;
  config.evidenceMaxLibraries = 20;
  config.evidenceMaxHashMb = 3;
  config.evidenceRescanSeconds = 45;
  const EvidenceOptions options = evidenceOptions(config);
  CHECK(options.procRoot == "/host/proc");
  CHECK(options.workers == 3);
  CHECK(options.tree.maxProcesses == 10);
  CHECK(options.tree.maxExeBytes == 3 * 1024 * 1024);
  CHECK(options.libraries.maxLibraries == 20);
  CHECK(options.libraries.maxBytes == 3 * 1024 * 1024);
  CHECK(options.rescanDelay == std::chrono::seconds(45));
}

// Each default is written once, in a kDefault* constant that Config and the options struct both
// start from: converting a default Config gives the options structs' own defaults.
TEST_CASE("a default Config converts to the options structs' defaults") {
  const Config config;
  const EvidenceOptions evidence = evidenceOptions(config);
  const EvidenceOptions evidenceDefaults;
  CHECK(evidence.procRoot == evidenceDefaults.procRoot);
  CHECK(evidence.workers == evidenceDefaults.workers);
  CHECK(evidence.tree.maxProcesses == evidenceDefaults.tree.maxProcesses);
  CHECK(evidence.tree.maxExeBytes == evidenceDefaults.tree.maxExeBytes);
  CHECK(evidence.libraries.maxLibraries == evidenceDefaults.libraries.maxLibraries);
  CHECK(evidence.libraries.maxBytes == evidenceDefaults.libraries.maxBytes);
  CHECK(evidence.rescanDelay == evidenceDefaults.rescanDelay);

  const DispatcherOptions delivery = dispatcherOptions(config);
  const DispatcherOptions deliveryDefaults;
  CHECK(delivery.backend.timeout == deliveryDefaults.backend.timeout);
  CHECK(delivery.batchMaxRecords == deliveryDefaults.batchMaxRecords);
  CHECK(delivery.batchMaxBytes == deliveryDefaults.batchMaxBytes);
  CHECK(delivery.batchMaxWait == deliveryDefaults.batchMaxWait);
  CHECK(delivery.retryMax == deliveryDefaults.retryMax);
  CHECK(delivery.failuresBeforeUnready == deliveryDefaults.failuresBeforeUnready);
  CHECK(delivery.retentionNanos == deliveryDefaults.retentionNanos);

  const PipelineOptions pipeline = pipelineOptions(config);
  const PipelineOptions pipelineDefaults;
  CHECK(pipeline.inventoryConcurrency == pipelineDefaults.inventoryConcurrency);
  CHECK(pipeline.maxBackoff == pipelineDefaults.maxBackoff);
  CHECK(pipeline.auditInterval == pipelineDefaults.auditInterval);
  CHECK(pipeline.silenceCheck == pipelineDefaults.silenceCheck);
  CHECK(pipeline.eventQueue.maxEvents == pipelineDefaults.eventQueue.maxEvents);
  CHECK(pipeline.eventQueue.maxBytes == pipelineDefaults.eventQueue.maxBytes);
}

TEST_CASE("every key can be set from the environment") {
  Environment env;
  for (const KeyCase& k : kEveryKey) env.emplace_back(k.env, k.value);
  env.emplace_back("PATH", "/usr/bin");
  auto parsed = parseArgs({}, env);
  REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
  checkAllSet(parsed->config);
  CHECK(parsed->origins.at("HealthCheck:Port") == "env ZASTAVA_AGENT__HealthCheck__Port");
}

TEST_CASE("every key can be set from its flag, both --flag VALUE and --flag=VALUE") {
  std::vector<std::string> separate;
  std::vector<std::string> joined;
  for (const KeyCase& k : kEveryKey) {
    separate.insert(separate.end(), {k.flag, k.value});
    joined.push_back(std::string(k.flag) + "=" + k.value);
  }
  for (const auto& args : {separate, joined}) {
    auto parsed = parseArgs(args);
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().message));
    checkAllSet(parsed->config);
    CHECK(parsed->origins.at("DataDirectory") == "flag --data-directory");
  }
}

TEST_CASE("configKeys lists the table with derived env names") {
  auto keys = configKeys();
  REQUIRE(keys.size() == std::size(kEveryKey));
  for (std::size_t i = 0; i < keys.size(); ++i) {
    CHECK(keys[i].envName == kEveryKey[i].env);
    CHECK(keys[i].flag == kEveryKey[i].flag);
  }
  CHECK(keys[7].defaultValue == "8080");
  CHECK(keys[7].accepted == "a whole number between 1 and 65535");
}

TEST_CASE("a flag beats the environment") {
  auto parsed =
      parseArgs({"--health-port", "9200"}, {{"ZASTAVA_AGENT__HealthCheck__Port", "9100"}});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.healthPort == 9200);
  CHECK(parsed->origins.at("HealthCheck:Port") == "flag --health-port");
}

TEST_CASE("a repeated flag takes the last value") {
  auto parsed = parseArgs({"--health-port", "1", "--health-port", "2"});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.healthPort == 2);
}

TEST_CASE("environment keys are case-insensitive") {
  auto parsed = parseArgs(
      {}, {{"ZASTAVA_AGENT__healthcheck__port", "9300"}, {"zastava_agent__LOGLEVEL", "warning"}});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.healthPort == 9300);
  CHECK(parsed->config.logLevel == LogLevel::kWarning);
  CHECK(parsed->origins.at("HealthCheck:Port") == "env ZASTAVA_AGENT__healthcheck__port");
}

TEST_CASE("log levels: our names and Serilog's, case-insensitive") {
  CHECK(parseLogLevel("TRACE").value() == LogLevel::kTrace);
  CHECK(parseLogLevel("Verbose").value() == LogLevel::kTrace);
  CHECK(parseLogLevel("Debug").value() == LogLevel::kDebug);
  CHECK(parseLogLevel("info").value() == LogLevel::kInfo);
  CHECK(parseLogLevel("Information").value() == LogLevel::kInfo);
  CHECK(parseLogLevel("Warning").value() == LogLevel::kWarning);
  CHECK(parseLogLevel("error").value() == LogLevel::kError);
  CHECK(parseLogLevel("critical").value() == LogLevel::kCritical);
  CHECK(parseLogLevel("Fatal").value() == LogLevel::kCritical);
  CHECK_FALSE(parseLogLevel("warn").ok());
  CHECK_FALSE(parseLogLevel("").ok());
}

TEST_CASE("Serilog__MinimumLevel__Default is used when ZASTAVA_AGENT__LogLevel is not set") {
  auto alias = parseArgs({}, {{"Serilog__MinimumLevel__Default", "Verbose"}});
  REQUIRE(alias.ok());
  CHECK(alias->config.logLevel == LogLevel::kTrace);
  CHECK(alias->origins.at("LogLevel") == "env Serilog__MinimumLevel__Default");

  auto ours = parseArgs(
      {}, {{"Serilog__MinimumLevel__Default", "Verbose"}, {"ZASTAVA_AGENT__LogLevel", "error"}});
  REQUIRE(ours.ok());
  CHECK(ours->config.logLevel == LogLevel::kError);

  auto flag = parseArgs({"--log-level", "Fatal"}, {{"Serilog__MinimumLevel__Default", "Verbose"}});
  REQUIRE(flag.ok());
  CHECK(flag->config.logLevel == LogLevel::kCritical);

  auto bad = parseArgs({}, {{"Serilog__MinimumLevel__Default", "loud"}});
  REQUIRE_FALSE(bad.ok());
  CHECK(contains(bad.error().message, "Serilog__MinimumLevel__Default: 'loud' is not a log level"));
}

TEST_CASE("an empty DockerEndpoint in the environment means unset") {
  auto parsed = parseArgs({}, {{"ZASTAVA_AGENT__DockerEndpoint", ""}});
  REQUIRE(parsed.ok());
  CHECK(parsed->config.dockerEndpoint.empty());
}

TEST_CASE("--help, --version and --check-config") {
  auto help = parseArgs({"--help"}, {{"ZASTAVA_AGENT__Bogus", "1"}});
  REQUIRE(help.ok());
  CHECK(help->command == Command::kHelp);
  CHECK(contains(help->text, "--health-port"));
  CHECK(contains(help->text, "ZASTAVA_AGENT__HealthCheck__Port"));
  CHECK(contains(help->text, "docs/configuration.md"));

  auto shortHelp = parseArgs({"-h"});
  REQUIRE(shortHelp.ok());
  CHECK(shortHelp->command == Command::kHelp);

  auto version = parseArgs({"--version"});
  REQUIRE(version.ok());
  CHECK(version->command == Command::kVersion);
  CHECK(version->text == "zastava-agent " + std::string(kVersion) + "\n");
  CHECK(version->text.size() > std::string("zastava-agent \n").size());

  auto check = parseArgs({"--check-config", "--health-port", "9000"});
  REQUIRE(check.ok());
  CHECK(check->command == Command::kCheckConfig);
  CHECK(check->config.healthPort == 9000);
}

TEST_CASE("--help sets each flag's description apart by two spaces or a new line (help2man)") {
  auto help = parseArgs({"--help"}, {});
  REQUIRE(help.ok());
  std::istringstream lines(help->text);
  std::size_t flags = 0;
  for (std::string line; std::getline(lines, line);) {
    if (!line.starts_with("  -")) continue;
    ++flags;
    // The flag and its value name ("--health-port N"), then what follows it.
    const std::size_t flagEnd = line.find(' ', 2);
    std::size_t labelEnd = flagEnd;
    if (flagEnd != std::string::npos && flagEnd + 1 < line.size() &&
        std::isupper(static_cast<unsigned char>(line[flagEnd + 1])) != 0) {
      labelEnd = line.find(' ', flagEnd + 1);
    }
    const std::string rest = labelEnd == std::string::npos ? "" : line.substr(labelEnd);
    INFO(line);
    CHECK((rest.empty() || rest.starts_with("  ")));
  }
  CHECK(flags > 20);
}

TEST_CASE("describeConfig: one line per key in table order, with origins") {
  auto parsed = parseArgs({"--health-port", "9000"}, {{"ZASTAVA_AGENT__LogLevel", "debug"}});
  REQUIRE(parsed.ok());
  std::string text = describeConfig(parsed->config, parsed->origins);
  CHECK(contains(text,
                 "DockerEndpoint = (from DOCKER_HOST or default "
                 "unix:///var/run/docker.sock)\n"));
  CHECK(contains(text, "DataDirectory = /var/lib/zastava-agent (default)\n"));
  CHECK(contains(text, "HealthCheck:Port = 9000 (flag --health-port)\n"));
  CHECK(contains(text, "LogLevel = debug (env ZASTAVA_AGENT__LogLevel)\n"));
  std::size_t previous = 0;
  for (const ConfigKey& key : configKeys()) {
    std::size_t at = text.find(key.key + " = ");
    REQUIRE(at != std::string::npos);
    CHECK(at >= previous);
    previous = at;
  }
  CHECK(std::count(text.begin(), text.end(), '\n') == static_cast<long>(configKeys().size()));

  Config plain;
  plain.dockerEndpoint = "unix:///var/run/docker.sock";
  plain.healthPort = 1;
  std::string bare = describeConfig(plain);
  CHECK(contains(bare, "DockerEndpoint = unix:///var/run/docker.sock\n"));
  CHECK(contains(bare, "HealthCheck:Port = 1\n"));
  CHECK(contains(bare, "RetentionHours = 24 (default)\n"));
}

TEST_CASE("processEnvironment reads the process environment, splitting at the first '='") {
  REQUIRE(setenv("ZASTAVA_CONFIG_TEST_PROBE", "a=b", 1) == 0);
  Environment env = processEnvironment();
  unsetenv("ZASTAVA_CONFIG_TEST_PROBE");
  auto it = std::find_if(env.begin(), env.end(), [](const auto& entry) {
    return entry.first == "ZASTAVA_CONFIG_TEST_PROBE";
  });
  REQUIRE(it != env.end());
  CHECK(it->second == "a=b");
}

TEST_CASE("bufferLimits converts MiB and hours") {
  Config config;
  config.maxFileSizeMb = 4096;
  config.maxTotalSizeMb = 1048576;
  config.retentionHours = 87600;
  BufferLimits limits = bufferLimits(config);
  CHECK(limits.maxFileBytes == 4096ull << 20);
  CHECK(limits.maxTotalBytes == 1ull << 40);
  CHECK(limits.retentionNanos == 87600ll * 3600 * 1'000'000'000);
  BufferLimits defaults = bufferLimits(Config{});
  BufferLimits expected;
  CHECK(defaults.maxFileBytes == expected.maxFileBytes);
  CHECK(defaults.maxTotalBytes == expected.maxTotalBytes);
  CHECK(defaults.retentionNanos == expected.retentionNanos);
}

TEST_CASE("docs/configuration.md lists every key, its flag and its default in table order") {
  std::ifstream file(std::string(ZASTAVA_FIXTURES_DIR) + "/../../docs/configuration.md");
  REQUIRE(file.good());
  std::stringstream buffer;
  buffer << file.rdbuf();
  std::string docs = buffer.str();
  std::size_t previous = 0;
  for (const ConfigKey& key : configKeys()) {
    std::size_t row = docs.find("| `" + key.envName + "`");
    REQUIRE_MESSAGE(row != std::string::npos, key.envName);
    CHECK(row > previous);
    previous = row;
    std::string line = docs.substr(row, docs.find('\n', row) - row);
    CHECK_MESSAGE(contains(line, "`" + key.flag + "`"), key.flag);
    if (key.key != "DockerEndpoint") CHECK_MESSAGE(contains(line, key.defaultValue), line);
  }
}

}  // namespace
}  // namespace zastava
