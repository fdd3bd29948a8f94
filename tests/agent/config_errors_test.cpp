#include <doctest/doctest.h>

#include <algorithm>
#include <array>

#include "agent/config.h"
#include "tests/agent/config_test_util.h"

namespace zastava {
namespace {

using testing::contains;
using testing::parseArgs;

std::string envError(const std::string& name, const std::string& value) {
  auto parsed = parseArgs({}, {{name, value}});
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
  return parsed.error().message;
}

std::string flagError(std::vector<std::string> args) {
  auto parsed = parseArgs(std::move(args));
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.error().code == ErrorCode::kInvalidArgument);
  return parsed.error().message;
}

TEST_CASE("bad numbers name the key and the accepted range") {
  const std::string port = "ZASTAVA_AGENT__HealthCheck__Port";
  CHECK(envError(port, "abc") ==
        "ZASTAVA_AGENT__HealthCheck__Port: 'abc' is not a whole number between 1 and 65535");
  for (const char* bad :
       {"0", "65536", "-1", "+80", " 80", "80 ", "80x", "0x50", "8.0", "99999999999999999999999"}) {
    CAPTURE(bad);
    CHECK(contains(envError(port, bad), port + ": '" + bad + "' is not a whole number"));
  }
  CHECK(flagError({"--health-port", "abc"}) ==
        "--health-port: 'abc' is not a whole number between 1 and 65535");
  CHECK(contains(flagError({"--health-port=-5"}), "--health-port: '-5' is not"));
}

TEST_CASE("evidence keys where 0 means off still check their range and paths") {
  const std::string workers = "ZASTAVA_AGENT__Evidence__Workers";
  CHECK(envError(workers, "17") == workers + ": '17' is not a whole number between 0 and 16");
  CHECK(contains(envError(workers, "-1"), workers + ": '-1'"));
  const std::string rescan = "ZASTAVA_AGENT__Evidence__RescanSeconds";
  CHECK(envError(rescan, "86401") ==
        rescan + ": '86401' is not a whole number between 0 and 86400");
  CHECK(parseArgs({"--evidence-workers", "0", "--evidence-rescan-seconds", "0"}).ok());
  CHECK(contains(flagError({"--evidence-proc-root", "proc"}), "--evidence-proc-root: 'proc'"));
}

TEST_CASE("event queue bounds: at least 16 events and 1 MiB") {
  const std::string events = "ZASTAVA_AGENT__EventQueue__MaxEvents";
  CHECK(envError(events, "15") == events + ": '15' is not a whole number between 16 and 1048576");
  CHECK(envError(events, "1048577") ==
        events + ": '1048577' is not a whole number between 16 and 1048576");
  CHECK(flagError({"--event-queue-max-events", "4k"}) ==
        "--event-queue-max-events: '4k' is not a whole number between 16 and 1048576");
  const std::string mb = "ZASTAVA_AGENT__EventQueue__MaxMb";
  CHECK(envError(mb, "0") == mb + ": '0' is not a whole number between 1 and 1024");
  CHECK(envError(mb, "1025") == mb + ": '1025' is not a whole number between 1 and 1024");
  CHECK(flagError({"--event-queue-max-mb", "0.5"}) ==
        "--event-queue-max-mb: '0.5' is not a whole number between 1 and 1024");
  CHECK(contains(envError(mb, ""), mb + ": is empty"));
  auto smallest = parseArgs({"--event-queue-max-events", "16", "--event-queue-max-mb", "1"});
  REQUIRE(smallest.ok());
  CHECK(smallest->config.eventQueueMaxEvents == 16);
  CHECK(smallest->config.eventQueueMaxMb == 1);
}

TEST_CASE("every integer key checks its range") {
  struct Range {
    const char* env;
    const char* flag;
    const char* tooBig;
  };
  const Range ranges[] = {
      {"ZASTAVA_AGENT__EventBuffer__MaxFileSizeMb", "--event-buffer-max-file-size-mb", "4097"},
      {"ZASTAVA_AGENT__EventBuffer__MaxTotalSizeMb", "--event-buffer-max-total-size-mb", "1048577"},
      {"ZASTAVA_AGENT__EventBuffer__RetentionHours", "--event-buffer-retention-hours", "87601"},
      {"ZASTAVA_AGENT__Inventory__Concurrency", "--inventory-concurrency", "65"},
      {"ZASTAVA_AGENT__Reconnect__MaxBackoffSeconds", "--reconnect-max-backoff-seconds", "3601"},
      {"ZASTAVA_AGENT__EventQueue__MaxEvents", "--event-queue-max-events", "1048577"},
      {"ZASTAVA_AGENT__EventQueue__MaxMb", "--event-queue-max-mb", "1025"},
      {"ZASTAVA_AGENT__Evidence__MaxProcesses", "--evidence-max-processes", "100001"},
      {"ZASTAVA_AGENT__Evidence__MaxLibraries", "--evidence-max-libraries", "100001"},
      {"ZASTAVA_AGENT__Evidence__MaxHashMb", "--evidence-max-hash-mb", "65537"},
  };
  for (const Range& r : ranges) {
    CAPTURE(r.env);
    CHECK(contains(envError(r.env, r.tooBig), std::string(r.env) + ": '" + r.tooBig + "'"));
    CHECK(contains(envError(r.env, "0"), std::string(r.env) + ": '0'"));
    CHECK(contains(flagError({r.flag, r.tooBig}), std::string(r.flag) + ": '" + r.tooBig + "'"));
  }
}

TEST_CASE("the audit interval may be 0 (off), not negative or over a day") {
  CHECK(parseArgs({"--reconcile-audit-interval-seconds", "0"}).ok());
  for (const char* bad : {"-1", "86401", "5m"}) {
    CAPTURE(bad);
    CHECK(contains(envError("ZASTAVA_AGENT__Reconcile__AuditIntervalSeconds", bad),
                   std::string("ZASTAVA_AGENT__Reconcile__AuditIntervalSeconds: '") + bad + "'"));
  }
}

TEST_CASE("empty values are errors, except where empty means not set") {
  CHECK(envError("ZASTAVA_AGENT__HealthCheck__Port", "") ==
        "ZASTAVA_AGENT__HealthCheck__Port: is empty; expected a whole number between 1 and "
        "65535");
  CHECK(contains(envError("ZASTAVA_AGENT__LogLevel", ""), "ZASTAVA_AGENT__LogLevel: is empty"));
  CHECK(contains(envError("ZASTAVA_AGENT__DataDirectory", ""), "DataDirectory: is empty"));
  for (const char* unset :
       {"--docker-endpoint", "--backend-url", "--backend-token-file", "--backend-ca-file"}) {
    CAPTURE(unset);
    CHECK(parseArgs({unset, ""}).ok());
  }
  auto fromEnv = parseArgs({}, {{"ZASTAVA_AGENT__Backend__Url", ""}});
  REQUIRE(fromEnv.ok());
  CHECK(fromEnv->config.backendUrl.empty());
  CHECK(contains(flagError({"--health-address", ""}), "--health-address: is empty"));
  CHECK(contains(flagError({"--health-address="}), "--health-address"));
}

TEST_CASE("backend keys: URL scheme, booleans, paths, and the client certificate with its key") {
  for (const char* bad : {"ftp://host/", "host:8080", "http://", "https:///path", "http:// x",
                          "nats://", "nats://a:4222,http://b/", "nats://a:4222,,"}) {
    CAPTURE(bad);
    CHECK(envError("ZASTAVA_AGENT__Backend__Url", bad) ==
          "ZASTAVA_AGENT__Backend__Url: '" + std::string(bad) +
              "' is not an http:// or https:// URL, nats:// or tls:// URLs separated by commas, "
              "or empty for none");
  }
  CHECK(parseArgs({"--backend-url", "HTTPS://ingest.example:8443/v1/records"}).ok());
  CHECK(parseArgs({"--backend-url", "nats://n1:4222, nats://n2:4222,tls://n3:4222"}).ok());
  CHECK(flagError({"--backend-gzip", "yes"}) == "--backend-gzip: 'yes' is not true or false");
  CHECK(parseArgs({"--backend-gzip", "TRUE"})->config.backendGzip);
  CHECK(contains(envError("ZASTAVA_AGENT__Backend__TokenFile", "token"),
                 "'token' is not an absolute path"));
  CHECK(envError("ZASTAVA_AGENT__Backend__ClientCertFile", "/etc/agent.crt") ==
        "Backend:ClientCertFile (env ZASTAVA_AGENT__Backend__ClientCertFile) and "
        "Backend:ClientKeyFile (default) go together: set both or neither");
  CHECK(contains(flagError({"--backend-client-key-file", "/etc/agent.key"}),
                 "go together: set both or neither"));
  CHECK(contains(flagError({"--backend-batch-max-wait-ms", "600001"}), "between 0 and 600000"));
  CHECK(contains(flagError({"--backend-failures-before-unready", "0"}), "between 1 and 1000"));
}

TEST_CASE("NATS keys: stream name, subject prefix, window, the user with its password file") {
  for (const char* bad : {"A.B", "A B", "A*", "A>", "a/b"}) {
    CAPTURE(bad);
    CHECK(contains(flagError({"--backend-nats-stream", bad}), "is not a stream name"));
  }
  for (const char* bad : {"a..b", ".a", "a.", "a.*", "a.>", "a b"}) {
    CAPTURE(bad);
    CHECK(contains(flagError({"--backend-nats-subject-prefix", bad}),
                   "is not subject tokens separated by '.'"));
  }
  CHECK(contains(flagError({"--backend-nats-ack-window", "0"}), "between 1 and 65536"));
  CHECK(envError("ZASTAVA_AGENT__Backend__NatsUser", "agent") ==
        "Backend:NatsUser (env ZASTAVA_AGENT__Backend__NatsUser) and Backend:NatsPasswordFile "
        "(default) go together: set both or neither");
  CHECK(contains(flagError({"--backend-nats-password-file", "/etc/pw"}),
                 "go together: set both or neither"));
  CHECK(contains(flagError({"--backend-nats-user", "a b"}), "is not text without whitespace"));
}

TEST_CASE("format checks: data directory, address, endpoint scheme, log level") {
  CHECK(envError("ZASTAVA_AGENT__DataDirectory", "var/lib/x") ==
        "ZASTAVA_AGENT__DataDirectory: 'var/lib/x' is not an absolute path");
  CHECK(contains(flagError({"--data-directory", "./data"}), "--data-directory: './data'"));
  for (const char* bad : {"localhost", "[::1]", "1.2.3", "0.0.0.0 ", "::1%lo"}) {
    CAPTURE(bad);
    CHECK(contains(envError("ZASTAVA_AGENT__HealthCheck__Address", bad),
                   "ZASTAVA_AGENT__HealthCheck__Address: '" + std::string(bad) +
                       "' is not a literal IPv4 or IPv6 address"));
  }
  for (const char* bad :
       {"/var/run/docker.sock", "npipe:////./pipe/docker", "ssh://host", "unix://", "UNIX:///x"}) {
    CAPTURE(bad);
    CHECK(contains(envError("ZASTAVA_AGENT__DockerEndpoint", bad),
                   "ZASTAVA_AGENT__DockerEndpoint: '" + std::string(bad) +
                       "' is not a unix://, tcp://, http:// or https:// URI"));
  }
  CHECK(contains(flagError({"--log-level", "loud"}), "--log-level: 'loud' is not a log level"));
}

TEST_CASE("total size below file size names both keys") {
  std::string message = flagError({"--event-buffer-max-total-size-mb", "5"});
  CHECK(contains(message, "EventBuffer:MaxTotalSizeMb (5, flag --event-buffer-max-total-size-mb)"));
  CHECK(contains(message, "EventBuffer:MaxFileSizeMb (10, default)"));

  auto parsed = parseArgs({}, {{"ZASTAVA_AGENT__EventBuffer__MaxFileSizeMb", "200"}});
  REQUIRE_FALSE(parsed.ok());
  CHECK(contains(parsed.error().message,
                 "EventBuffer:MaxFileSizeMb (200, env ZASTAVA_AGENT__EventBuffer__MaxFileSizeMb)"));
  CHECK(parseArgs({"--event-buffer-max-total-size-mb", "10"}).ok());
}

TEST_CASE("unknown environment keys are errors naming the variable and the known keys") {
  std::string message = envError("ZASTAVA_AGENT__HealthCheck__Prot", "8080");
  CHECK(message.starts_with("ZASTAVA_AGENT__HealthCheck__Prot: unknown configuration key"));
  CHECK(contains(message, "ZASTAVA_AGENT__HealthCheck__Port"));
  CHECK(contains(message, "ZASTAVA_AGENT__Reconnect__MaxBackoffSeconds"));
  CHECK(contains(envError("ZASTAVA_AGENT__", "x"), "ZASTAVA_AGENT__: unknown"));
  CHECK(parseArgs({}, {{"ZASTAVA_AGENTX", "1"}, {"DOCKER_HOST", "tcp://x:1"}}).ok());
}

TEST_CASE("the same key twice in different case is an error") {
  auto parsed =
      parseArgs({}, {{"ZASTAVA_AGENT__LogLevel", "info"}, {"ZASTAVA_AGENT__LOGLEVEL", "debug"}});
  REQUIRE_FALSE(parsed.ok());
  CHECK(contains(parsed.error().message, "ZASTAVA_AGENT__LOGLEVEL: set twice"));
}

TEST_CASE("all problems are reported, one per line") {
  auto parsed =
      parseArgs({"--inventory-concurrency", "0"},
                {{"ZASTAVA_AGENT__HealthCheck__Port", "x"}, {"ZASTAVA_AGENT__Nope", "1"}});
  REQUIRE_FALSE(parsed.ok());
  const std::string& message = parsed.error().message;
  CHECK(std::count(message.begin(), message.end(), '\n') == 2);
  CHECK(contains(message, "ZASTAVA_AGENT__Nope"));
  CHECK(contains(message, "ZASTAVA_AGENT__HealthCheck__Port"));
  CHECK(contains(message, "--inventory-concurrency"));
}

TEST_CASE("unknown flags and positional arguments are errors") {
  CHECK(contains(flagError({"--bogus"}), "--bogus"));
  CHECK(flagError({"run", "now"}) ==
        "command line: unexpected argument(s): 'run' 'now' (see --help)");
  CHECK(contains(flagError({"--health-port"}), "--health-port"));
}

}  // namespace
}  // namespace zastava

namespace zastava {
namespace {

TEST_CASE(
    "posture keys: an unknown check id or severity is refused, naming the key and the value") {
  const std::string skip = "ZASTAVA_AGENT__Posture__SkipChecks";
  CHECK(envError(skip, "5.19,9.99") ==
        skip +
            ": \"9.99\" is not a posture check id (docs/posture.md); expected a comma-separated "
            "list of posture check ids (docs/posture.md), or empty for none");
  CHECK(contains(envError(skip, "5.19,"), "\"\" is not a posture check id"));
  CHECK(contains(flagError({"--posture-skip-checks", "5.1"}),
                 "--posture-skip-checks: \"5.1\" is not a posture check id"));
  const std::string severity = "ZASTAVA_AGENT__Posture__SeverityOverrides";
  CHECK(contains(envError(severity, "5.13=urgent"),
                 severity + ": \"urgent\" is not a severity: critical, high, medium, low or info"));
  CHECK(contains(envError(severity, "5.13"), "\"5.13\" is not ID=SEVERITY"));
  CHECK(contains(envError(severity, "5.99=high"), "\"5.99\" is not a posture check id"));
  CHECK(contains(flagError({"--posture-severity-overrides=5.13=HIGH"}),
                 "\"HIGH\" is not a severity"));
  // Empty is none, as documented.
  CHECK(parseArgs({}, {{skip, ""}, {severity, ""}}).ok());
}

TEST_CASE("a name list with an empty item or a stray character is refused, naming the key") {
  for (const char* bad : {"PATH,,HOME", "PATH, ", "PATH;HOME", "A=B"}) {
    CAPTURE(bad);
    auto parsed = parseCommandLine(1, std::array<const char*, 1>{"zastava-agent"}.data(),
                                   Environment{{"ZASTAVA_AGENT__Evidence__EnvKeepValues", bad}});
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.error().message.find("ZASTAVA_AGENT__Evidence__EnvKeepValues") !=
          std::string::npos);
    CHECK(parsed.error().message.find("comma-separated list") != std::string::npos);
  }
}

}  // namespace
}  // namespace zastava
