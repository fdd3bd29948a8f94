#include "collectors/decoders.h"

#include <doctest/doctest.h>

#include <sstream>

#include "tests/fixture_files.h"

namespace zastava {
namespace {

using testing::fixtureLines;
using testing::readFixture;

constexpr const char* kLifeId = "8c34fcfba77da56b39cd470acdeca9458d14af0b3bb48facba38aafce31e71c7";
constexpr const char* kHealthId =
    "8c25e9a5ef590ce80a47442ee458be89a0c2c2e578e7027a18cb2a47da5cca25";

TEST_CASE("splitAction splits on the first ': ' and keeps the detail exactly as sent") {
  std::string action;
  std::string detail;
  splitAction("exec_create: true ", action, detail);
  CHECK(action == "exec_create");
  CHECK(detail == "true ");
  splitAction("health_status: healthy", action, detail);
  CHECK(action == "health_status");
  CHECK(detail == "healthy");
  splitAction("exec_start: sh -c a: b", action, detail);
  CHECK(action == "exec_start");
  CHECK(detail == "sh -c a: b");
  splitAction("die", action, detail);
  CHECK(action == "die");
  CHECK(detail.empty());
}

TEST_CASE("every captured event decodes in both shapes to the same fields") {
  const auto old = fixtureLines("events-lifecycle.ndjson");
  const auto v152 = fixtureLines("events-v152.ndjson");
  REQUIRE(old.size() == 42);
  REQUIRE(v152.size() == old.size());
  for (std::size_t i = 0; i < old.size(); ++i) {
    CAPTURE(i);
    const auto a = decodeEvent(old[i]);
    const auto b = decodeEvent(v152[i]);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->type == "container");
    CHECK(a->type == b->type);
    CHECK(a->rawAction == b->rawAction);
    CHECK(a->action == b->action);
    CHECK(a->actionDetail == b->actionDetail);
    CHECK(a->actorId == b->actorId);
    CHECK(a->attributes == b->attributes);
    CHECK(a->scope == "local");
    CHECK(a->timeNano == b->timeNano);
    CHECK(a->timeNano / 1'000'000'000 == a->time);
  }
}

TEST_CASE("the create event's fields are exact") {
  const auto e = decodeEvent(fixtureLines("events-lifecycle.ndjson").at(0));
  REQUIRE(e.ok());
  CHECK(e->rawAction == "create");
  CHECK(e->action == "create");
  CHECK(e->actionDetail.empty());
  CHECK(e->actorId == kLifeId);
  CHECK(e->time == 1795358252);
  CHECK(e->timeNano == 1795358252478213243);
  const std::map<std::string, std::string> attributes{
      {"image", "zastava-test/busybox:1"}, {"name", "col-life"}, {"zastava.fixture", "col"}};
  CHECK(e->attributes == attributes);
}

TEST_CASE("exec_create keeps the engine's trailing space in the detail") {
  const auto e = decodeEvent(fixtureLines("events-lifecycle.ndjson").at(4));
  REQUIRE(e.ok());
  CHECK(e->rawAction == "exec_create: true ");
  CHECK(e->action == "exec_create");
  CHECK(e->actionDetail == "true ");
  CHECK(e->attributes.at("execID") ==
        "ee3a7d6d83356edf61c2fb5b66b749684ceafbdd937b0b365bfb3edea868793a");
}

TEST_CASE("die carries the exit code, health_status its detail") {
  const auto lines = fixtureLines("events-v152.ndjson");
  const auto die = decodeEvent(lines.at(9));
  REQUIRE(die.ok());
  CHECK(die->action == "die");
  CHECK(die->attributes.at("exitCode") == "137");
  CHECK(die->attributes.at("name") == "col-life2");
  const auto health = decodeEvent(lines.at(28));
  REQUIRE(health.ok());
  CHECK(health->rawAction == "health_status: healthy");
  CHECK(health->action == "health_status");
  CHECK(health->actionDetail == "healthy");
  CHECK(health->actorId == kHealthId);
  CHECK(health->timeNano == 1795358257617405940);
}

TEST_CASE("event fallbacks: id for Actor.ID, status for Type and Action, time for timeNano") {
  const auto e = decodeEvent(R"({"status":"start","id":"abc","time":12})");
  REQUIRE(e.ok());
  CHECK(e->type == "container");
  CHECK(e->rawAction == "start");
  CHECK(e->actorId == "abc");
  CHECK(e->timeNano == 12'000'000'000);
  CHECK(e->attributes.empty());
}

TEST_CASE("non-string attribute values are kept as their text") {
  const auto e = decodeEvent(
      R"({"Type":"container","Action":"die","Actor":{"ID":"x","Attributes":)"
      R"({"exitCode":137,"ratio":1.5,"flag":true,"none":null,"name":"n"}},"timeNano":5})");
  REQUIRE(e.ok());
  CHECK(e->attributes.at("exitCode") == "137");
  CHECK(e->attributes.at("ratio") == "1.5");
  CHECK(e->attributes.at("flag") == "true");
  CHECK(e->attributes.at("none").empty());
  CHECK(e->attributes.at("name") == "n");
  CHECK(e->timeNano == 5);
}

TEST_CASE("malformed events are kMalformed and say what is missing") {
  const std::string line = fixtureLines("events-lifecycle.ndjson").at(0);
  const auto truncated = decodeEvent(std::string_view(line).substr(0, line.size() / 2));
  REQUIRE_FALSE(truncated.ok());
  CHECK(truncated.error().code == ErrorCode::kMalformed);
  CHECK(truncated.error().message.find("not valid JSON") != std::string::npos);

  const auto noAction = decodeEvent(R"({"Type":"container","Actor":{"ID":"x"}})");
  REQUIRE_FALSE(noAction.ok());
  CHECK(noAction.error().code == ErrorCode::kMalformed);
  CHECK(noAction.error().message.find("neither Action nor status") != std::string::npos);

  const auto noId = decodeEvent(R"({"Type":"container","Action":"start","Actor":{}})");
  REQUIRE_FALSE(noId.ok());
  CHECK(noId.error().message.find("neither Actor.ID nor id") != std::string::npos);

  CHECK(decodeEvent("").error().code == ErrorCode::kMalformed);
  CHECK(decodeEvent("[1,2]").error().code == ErrorCode::kMalformed);
  CHECK(decodeEvent(R"({"Action":"start","Actor":{"ID":"x"}})").error().code ==
        ErrorCode::kMalformed);

  const std::string huge = R"({"Action":)" + std::string(5000, ' ') + "secret";
  const auto quoted = decodeEvent(huge);
  REQUIRE_FALSE(quoted.ok());
  CHECK(quoted.error().message.find("secret") == std::string::npos);
  CHECK(quoted.error().message.size() < 400);
}

TEST_CASE("fuzz finding: a number beyond 64 bits counts as absent, a time beyond it is malformed") {
  // A captured exec_die whose timeNano is above 2^63 - 1: it was cast from a double (undefined
  // behaviour); now it is absent and comes from time.
  const auto e =
      decodeEvent(testing::readFuzzFixture("fuzz_decode_event-timenano-beyond-int64.json"));
  REQUIRE(e.ok());
  CHECK(e->time == 1795358252);
  CHECK(e->timeNano == 1795358252000000000);

  const auto far = decodeEvent(R"({"Type":"container","Action":"die","Actor":{"ID":"x"},)"
                               R"("time":9300000000})");
  REQUIRE_FALSE(far.ok());
  CHECK(far.error().code == ErrorCode::kMalformed);
  CHECK(far.error().message.find("time is out of range") != std::string::npos);

  const auto inspect = decodeContainerInspect(
      R"({"Id":"x","State":{"Pid":1e300,"ExitCode":-1e19},"RestartCount":2.5})");
  REQUIRE(inspect.ok());
  CHECK(inspect->state.pid == 0);
  CHECK(inspect->state.exitCode == 0);
  CHECK(inspect->restartCount == 2);
}

TEST_CASE("fuzz finding: an API version is <digits>.<digits> and nothing else") {
  // Docker 26.1's captured ping headers, mutated: "Api-Version: 1.+5" was read as 1.5.
  std::optional<std::string> header;
  std::istringstream in(testing::readFuzzFixture("fuzz_ping_headers-api-version-plus-sign.txt"));
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (auto value = decodeApiVersionHeader(line)) header = value;
  }
  REQUIRE(header == "1.+5");
  CHECK_FALSE(parseApiVersion(*header));
  for (const char* bad : {"1. 41", " 1.41", "-1.41", "1.-41", "1.41 ", "1.41x", "1", ".41", "1.",
                          "99999999999.41", "1.99999999999"}) {
    CAPTURE(bad);
    CHECK_FALSE(parseApiVersion(bad));
  }
  CHECK(parseApiVersion("1.41") == std::make_pair(1, 41));
  CHECK(parseApiVersion("1.045") == std::make_pair(1, 45));
}

TEST_CASE("container list: four captured containers in four states") {
  const auto list = decodeContainerList(readFixture("containers-list.json"));
  REQUIRE(list.ok());
  REQUIRE(list->size() == 4);
  std::map<std::string, std::string> stateByName;
  for (const auto& c : *list) {
    REQUIRE(c.names.size() == 1);
    stateByName[c.names[0]] = c.state;
    CHECK(c.image == "zastava-test/busybox:1");
    CHECK(c.imageId == "sha256:31db03b08020d054ab408407b5705a62c8c6a4bf614b0e2b7b2925679b1c74ee");
    CHECK(c.id.size() == 64);
    CHECK(c.labels.at("zastava.fixture") == "col");
  }
  const std::map<std::string, std::string> expected{{"/col-paused", "paused"},
                                                    {"/col-created", "created"},
                                                    {"/col-exited", "exited"},
                                                    {"/col-run", "running"}};
  CHECK(stateByName == expected);
  const auto& paused = list->at(0);
  CHECK(paused.id == "3fdee55990f1ffca55c4c0405ae6dc31b4b5b57ee00acc2943a63a26c4c7f2f3");
  CHECK(paused.command == "sleep 300");
  CHECK(paused.created == 1795358268);
  CHECK(paused.status == "Up 1 second (Paused)");
  CHECK(list->at(2).status == "Exited (3) 1 second ago");
  CHECK(list->at(3).labels.at("app") == "web");
}

TEST_CASE("container list errors") {
  CHECK(decodeContainerList("{}").error().code == ErrorCode::kMalformed);
  CHECK(decodeContainerList(R"([{"Names":["/a"]}])").error().message.find("has no Id") !=
        std::string::npos);
  const auto empty = decodeContainerList("[]");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
  const auto nullLabels = decodeContainerList(R"([{"Id":"a","Labels":null,"Names":null}])");
  REQUIRE(nullLabels.ok());
  CHECK(nullLabels->at(0).labels.empty());
}

TEST_CASE("inspect of a running container") {
  const auto c = decodeContainerInspect(readFixture("inspect-running.json"));
  REQUIRE(c.ok());
  CHECK(c->id == "36c7a3b3f3594f63c6bb9c1bc5095d93ba7d25bdd0e9c92bd9936dc5aee64d57");
  CHECK(c->name == "col-run");
  CHECK(c->created == "2026-11-22T14:37:48.595036161Z");
  CHECK(c->image == "zastava-test/busybox:1");
  CHECK(c->imageId == "sha256:31db03b08020d054ab408407b5705a62c8c6a4bf614b0e2b7b2925679b1c74ee");
  CHECK(c->path == "sleep");
  CHECK(c->args == std::vector<std::string>{"300"});
  CHECK(c->state.status == "running");
  CHECK(c->state.running);
  CHECK_FALSE(c->state.paused);
  CHECK(c->state.pid == 5905);
  CHECK(c->state.exitCode == 0);
  CHECK(c->state.startedAt == "2026-11-22T14:37:48.730033649Z");
  CHECK(c->state.finishedAt == "0001-01-01T00:00:00Z");
  CHECK(c->restartCount == 0);
  const std::map<std::string, std::string> labels{{"app", "web"}, {"zastava.fixture", "col"}};
  CHECK(c->labels == labels);
}

TEST_CASE("inspect of a container that exited with 3") {
  const auto c = decodeContainerInspect(readFixture("inspect-exited.json"));
  REQUIRE(c.ok());
  CHECK(c->name == "col-exited");
  CHECK(c->path == "sh");
  CHECK(c->args == std::vector<std::string>{"-c", "exit 3"});
  CHECK(c->state.status == "exited");
  CHECK_FALSE(c->state.running);
  CHECK_FALSE(c->state.oomKilled);
  CHECK(c->state.pid == 0);
  CHECK(c->state.exitCode == 3);
  CHECK(c->state.finishedAt == "2026-11-22T14:37:48.889193231Z");
}

TEST_CASE("inspect errors and null labels") {
  const auto notFound = decodeContainerInspect(readFixture("inspect-404.json"));
  REQUIRE_FALSE(notFound.ok());
  CHECK(notFound.error().code == ErrorCode::kMalformed);
  CHECK(notFound.error().message.find("no Id") != std::string::npos);
  CHECK(decodeErrorMessage(readFixture("inspect-404.json")) ==
        "No such container: col-does-not-exist");
  CHECK(decodeErrorMessage(readFixture("proxy-403.html")).empty());

  std::string json = readFixture("inspect-running.json");
  const std::string_view labels = R"("Labels":{"app":"web","zastava.fixture":"col"})";
  const auto at = json.find(labels);
  REQUIRE(at != std::string::npos);
  json.replace(at, labels.size(), R"("Labels":null)");
  const auto c = decodeContainerInspect(json);
  REQUIRE(c.ok());
  CHECK(c->labels.empty());
}

TEST_CASE("version") {
  const auto v = decodeVersion(readFixture("version.json"));
  REQUIRE(v.ok());
  CHECK(v->version == "20.10.24+dfsg1");
  CHECK(v->apiVersion == "1.41");
  CHECK(v->minApiVersion == "1.12");
  CHECK(v->os == "linux");
  CHECK(v->arch == "amd64");
  CHECK(v->kernelVersion == "6.18.44-fc-v669");
  CHECK(decodeVersion(R"({"Version":"x"})").error().code == ErrorCode::kMalformed);
}

// The same containers on Docker 26.1 (API 1.45) and Podman 4.3's compat API (API 1.41), captured
// by tests/integration/capture_engine_fixtures.py: each engine's answers decode to the same facts.
struct EngineCapture {
  const char* dir;
  const char* runningId;
  const char* image;  // Config.Image as the engine reports it
  const char* imageId;
  std::int64_t runningPid;
  const char* exitedAt;
  const char* apiVersion;
  const char* version;
};

constexpr EngineCapture kDocker26{
    "docker-26.1/",
    "294b0d97c00d9695024eab45d9a7bbd537f41cb512dc07a00a3463fd3df2d895",
    "zastava-test/busybox:1",
    "sha256:b9f8c97da9c560a1637c9fc51e765fa329e3fd10e139590ee76f0f7251b94374",
    32650,
    "2026-12-06T06:14:43.567424755Z",
    "1.45",
    "26.1.5+dfsg1"};
constexpr EngineCapture kPodman43{
    "podman-4.3/",
    "c7bbcac69ddf7211ca84dff40ed4022b73a5845f894a154a7f478a19aaff91cd",
    "docker.io/zastava-test/busybox:1",
    "sha256:4a7bb38ce62dfec51be2a9cdbceb7aec30fd96389ad3dc84a9b52cf3bd3a08ed",
    1457,
    "2026-12-06T06:15:09.855333503Z",
    "1.41",
    "4.3.1"};

TEST_CASE("each engine's list, inspects and version decode to the same facts") {
  for (const EngineCapture& engine : {kDocker26, kPodman43}) {
    CAPTURE(engine.dir);
    const std::string dir = engine.dir;
    const auto running = decodeContainerInspect(readFixture(dir + "inspect-running.json"));
    REQUIRE(running.ok());
    CHECK(running->id == engine.runningId);
    CHECK(running->name == "col-run");
    CHECK(running->image == engine.image);
    CHECK(running->imageId == engine.imageId);
    CHECK(running->path == "sleep");
    CHECK(running->args == std::vector<std::string>{"300"});
    CHECK(running->state.status == "running");
    CHECK(running->state.running);
    CHECK(running->state.pid == engine.runningPid);
    CHECK(running->labels.at("app") == "web");
    CHECK_FALSE(running->posture.privileged);
    CHECK(running->manifestDigest.empty());  // API < 1.48: no ImageManifestDescriptor

    const auto exited = decodeContainerInspect(readFixture(dir + "inspect-exited.json"));
    REQUIRE(exited.ok());
    CHECK(exited->name == "col-exited");
    CHECK(exited->state.status == "exited");
    CHECK_FALSE(exited->state.running);
    CHECK(exited->state.pid == 0);
    CHECK(exited->state.exitCode == 3);
    CHECK(exited->state.finishedAt == engine.exitedAt);

    const auto list = decodeContainerList(readFixture(dir + "containers-list.json"));
    REQUIRE(list.ok());
    std::map<std::string, std::string> stateByName;
    for (const auto& c : *list) {
      REQUIRE(c.names.size() == 1);
      stateByName[c.names[0]] = c.state;
      CHECK(c.imageId == engine.imageId);
      CHECK(c.labels.at("zastava.fixture") == "col");
    }
    const std::map<std::string, std::string> expected{{"/col-paused", "paused"},
                                                      {"/col-created", "created"},
                                                      {"/col-exited", "exited"},
                                                      {"/col-run", "running"}};
    CHECK(stateByName == expected);

    const auto version = decodeVersion(readFixture(dir + "version.json"));
    REQUIRE(version.ok());
    CHECK(version->apiVersion == engine.apiVersion);
    CHECK(version->minApiVersion == "1.24");
    CHECK(version->version == engine.version);
  }
}

TEST_CASE("Podman's answer for a container it is removing has a cause") {
  const std::string body = readFixture("podman-4.3/inspect-rm-exited.json");
  CHECK(decodeErrorCause(body) == "no such container");
  CHECK(decodeErrorMessage(body).find("does not exist in database") != std::string::npos);
  CHECK(decodeErrorCause(readFixture("inspect-404.json")).empty());  // Docker's has none
}

}  // namespace
}  // namespace zastava

namespace zastava {
namespace {

TEST_CASE("inspect of a risky container: privileges, socket mount, limits, env as sent") {
  const auto inspect = decodeContainerInspect(testing::readFixture("inspect-posture.json"));
  REQUIRE(inspect.ok());
  const SecurityPosture& p = inspect->posture;
  CHECK(p.privileged);
  CHECK(p.user == "1000:1000");
  CHECK(p.capAdd == std::vector<std::string>{"CAP_NET_ADMIN"});
  CHECK(p.capDrop == std::vector<std::string>{"CAP_MKNOD"});
  CHECK(p.noNewPrivileges);
  CHECK(p.readOnlyRootfs);
  CHECK(p.ipcMode == "private");
  CHECK(p.restartPolicy == "on-failure:3");
  CHECK(p.memoryBytes == 64 * 1024 * 1024);
  CHECK(p.nanoCpus == 500'000'000);
  CHECK(p.pidsLimit == 100);
  CHECK(p.healthcheck == std::vector<std::string>{"CMD-SHELL", "true"});
  CHECK(p.healthStatus == "healthy");
  REQUIRE(p.mounts.size() == 2);
  CHECK(p.mounts[0].destination == "/var/run/docker.sock");
  CHECK(p.mounts[0].dockerSocket);
  CHECK_FALSE(p.mounts[0].readWrite);
  CHECK(p.mounts[0].propagation == "rprivate");
  CHECK(p.mounts[1].destination == "/host-etc");
  CHECK_FALSE(p.mounts[1].dockerSocket);
  CHECK(inspect->env.size() == 5);
  CHECK(inspect->env[0] == "DB_PASSWORD=hunter2");
  CHECK(inspect->manifestDigest.empty());  // API 1.41 has no ImageManifestDescriptor
  CHECK(inspect->labels.at("org.opencontainers.image.source") == "https://example.com/app");
}

TEST_CASE("inspect: the posture's new facts, and no-new-privileges in each spelling") {
  const auto hardened =
      decodeContainerInspect(testing::readFixture("posture/inspect-hardened.json"));
  REQUIRE(hardened.ok());
  CHECK(hardened->posture.cpuShares == 512);
  CHECK(hardened->posture.ulimits == std::vector<std::string>{"nofile=1024:2048"});
  CHECK(hardened->posture.noNewPrivileges);
  const auto uts = decodeContainerInspect(testing::readFixture("posture/inspect-host-uts.json"));
  REQUIRE(uts.ok());
  CHECK(uts->posture.utsMode == "host");
  const auto parent =
      decodeContainerInspect(testing::readFixture("posture/inspect-cgroup-parent.json"));
  REQUIRE(parent.ok());
  CHECK(parent->posture.cgroupParent == "zastava-fixture");
  // The engine keeps SecurityOpt as the client sent it.
  const std::string captured = testing::readFixture("posture/inspect-hardened.json");
  for (const char* spelling : {"no-new-privileges:true", "no-new-privileges=true"}) {
    std::string document = captured;
    const auto at = document.find("\"no-new-privileges\"");
    REQUIRE(at != std::string::npos);
    document.replace(at, 19, std::string("\"") + spelling + "\"");
    const auto inspect = decodeContainerInspect(document);
    REQUIRE(inspect.ok());
    CHECK(inspect->posture.noNewPrivileges);
  }
}

TEST_CASE("inspect of a default container: nothing flagged") {
  const auto inspect = decodeContainerInspect(testing::readFixture("inspect-plain.json"));
  REQUIRE(inspect.ok());
  const SecurityPosture& p = inspect->posture;
  CHECK_FALSE(p.privileged);
  CHECK(p.user.empty());
  CHECK(p.capAdd.empty());
  CHECK_FALSE(p.noNewPrivileges);
  CHECK_FALSE(p.readOnlyRootfs);
  CHECK(p.mounts.empty());
  CHECK(p.healthcheck.empty());
  CHECK(p.restartPolicy == "no");
  CHECK(inspect->env.empty());  // an imported image sets no Env: the engine sends null
}

}  // namespace
}  // namespace zastava
