// Secret-safe evidence: env values and secret-looking labels never leave the agent.
#include "agent/redaction.h"

#include <doctest/doctest.h>

#include <algorithm>

#include "agent/tracker.h"
#include "collectors/decoders.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

TEST_CASE("env values are redacted unless allow-listed; secret names always") {
  RedactionPolicy policy;
  policy.keepValues.push_back("DB_PASSWORD");  // allowed, yet it looks secret
  Redactor redactor(policy);
  auto env = redactor.environment({"PATH=/usr/bin:/bin", "HOME=/root", "GREETING=hello",
                                   "DB_PASSWORD=hunter2", "api_token=abc", "EMPTY=", "NOVALUE",
                                   "EQUALS=a=b"});
  CHECK(env.at("PATH") == "/usr/bin:/bin");
  CHECK(env.at("HOME") == "/root");
  CHECK(env.at("GREETING") == "<redacted>");
  CHECK(env.at("DB_PASSWORD") == "<redacted>");
  CHECK(env.at("api_token") == "<redacted>");
  CHECK(env.at("EMPTY") == "<redacted>");
  CHECK(env.at("NOVALUE").empty());
  CHECK(env.at("EQUALS") == "<redacted>");
}

TEST_CASE("secret patterns are case-insensitive globs; ordinary names pass") {
  Redactor redactor;
  for (const char* name : {"AWS_SECRET_ACCESS_KEY", "github_token", "SSH_PRIVATE_KEY", "PGPASSWORD",
                           "AUTH_HEADER", "BASIC_AUTH", "tls.cert", "aws_secret_key"}) {
    CAPTURE(name);
    CHECK(redactor.looksSecret(name));
  }
  for (const char* name : {"PATH", "app", "org.opencontainers.image.authors",
                           "org.opencontainers.image.source", "com.docker.compose.project"}) {
    CAPTURE(name);
    CHECK_FALSE(redactor.looksSecret(name));
  }
  auto labels = redactor.labels({{"app", "demo"}, {"aws_secret_key", "shh"}});
  CHECK(labels.at("app") == "demo");
  CHECK(labels.at("aws_secret_key") == "<redacted>");
}

TEST_CASE("command lines: secret-looking flag values and URL passwords are redacted") {
  Redactor redactor;
  using Args = std::vector<std::string>;
  CHECK(redactor.commandLine({"mysqld", "--password=hunter2", "--port=3306"}) ==
        Args{"mysqld", "--password=<redacted>", "--port=3306"});
  CHECK(redactor.commandLine({"app", "--api-key", "abc123", "--verbose", "serve"}) ==
        Args{"app", "--api-key", "<redacted>", "--verbose", "serve"});
  CHECK(redactor.commandLine({"app", "-token", "-v"}) == Args{"app", "-token", "-v"});
  CHECK(redactor.commandLine({"env", "DB_PASSWORD=x", "PATH=/bin"}) ==
        Args{"env", "DB_PASSWORD=<redacted>", "PATH=/bin"});
  CHECK(redactor.commandLine({"psql", "postgres://app:s3cret@db:5432/app"}) ==
        Args{"psql", "postgres://app:<redacted>@db:5432/app"});
  CHECK(redactor.commandLine({"curl", "https://example.com/a@b", "http://host:8080/x"}) ==
        Args{"curl", "https://example.com/a@b", "http://host:8080/x"});
  CHECK(redactor.commandLine({"curl", "-H", "Authorization: Bearer abc", "-H", "Accept: a/b"}) ==
        Args{"curl", "-H", "Authorization: <redacted>", "-H", "Accept: a/b"});
  CHECK(redactor.commandLine({"sh", "-c", "echo token: x"}) == Args{"sh", "-c", "echo token: x"});
  CHECK(redactor.commandLine({"sleep", "60"}) == Args{"sleep", "60"});
  CHECK(redactor.commandLine({}).empty());
}

TEST_CASE("records of a risky container carry its posture and none of its secrets") {
  auto inspect = decodeContainerInspect(testing::readFixture("inspect-posture.json"));
  REQUIRE(inspect.ok());
  ManualClock clock(1'795'358'100'000'000'000);
  Redactor redactor;
  Tracker tracker(clock, redactor);
  Record snapshot = tracker.snapshot(*inspect);

  REQUIRE(snapshot.container.posture);
  std::vector<std::string_view> failed;
  for (const CheckFinding& finding : snapshot.container.posture->checks) {
    if (PostureFindings::counts(finding)) failed.push_back(finding.id);
  }
  for (std::string_view id : {"5.4", "5.5", "5.32"}) {
    CAPTURE(id);
    CHECK(std::find(failed.begin(), failed.end(), id) != failed.end());
  }
  const std::string line = chainedLine(snapshot, kGenesisHash).line;
  for (const char* secret : {"hunter2", "abc123", "hello", "shh"}) {
    CAPTURE(secret);
    CHECK(line.find(secret) == std::string::npos);
  }
  CHECK(line.find(R"("DB_PASSWORD":"<redacted>")") != std::string::npos);
  CHECK(line.find(R"("PATH":"/usr/bin:/bin")") != std::string::npos);
  CHECK(line.find(R"("imageDigest":null)") != std::string::npos);
  CHECK(line.find(R"({"id":"5.5","severity":"critical","title":"Ensure that privileged containers )"
                  R"(are not used","value":"Privileged=true"})") != std::string::npos);

  // A later event without inspect names the container but does not repeat its posture.
  EngineEvent pause;
  pause.type = "container";
  pause.action = pause.rawAction = "pause";
  pause.actorId = inspect->id;
  // Its attributes leave out the label the snapshot said (redacted), and redact a new one.
  pause.attributes = {{"name", "lead-posture"}, {"aws_secret_key", "shh"}, {"new_token", "t0k"}};
  pause.timeNano = 1'795'358'100'000'000'001;
  Record paused = tracker.fromEvent(receivedEvent(pause, RecordSource::kStream, clock.now()));
  CHECK_FALSE(paused.container.security);
  CHECK_FALSE(paused.container.posture);
  CHECK(paused.attributes == std::map<std::string, std::string>{{"new_token", "<redacted>"}});
}

}  // namespace
}  // namespace zastava
