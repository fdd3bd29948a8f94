#include "collectors/api_paths.h"

#include <doctest/doctest.h>

#include "tests/fixture_files.h"

namespace zastava {
namespace {

constexpr const char* kFilter = "filters=%7B%22type%22%3A%5B%22container%22%5D%7D";

TEST_CASE("paths are exact") {
  CHECK(pingPath() == "/_ping");
  CHECK(versionPath("") == "/version");
  CHECK(versionPath("1.41") == "/v1.41/version");
  CHECK(containersListPath("1.41") == "/v1.41/containers/json?all=1");
  CHECK(containerInspectPath("1.41", "3fdee559") == "/v1.41/containers/3fdee559/json");
  CHECK(eventsPath("1.41", 0) == std::string("/v1.41/events?") + kFilter);
}

TEST_CASE("container ids are escaped so they cannot change the path") {
  CHECK(containerInspectPath("1.41", "col-run_2.x~") == "/v1.41/containers/col-run_2.x~/json");
  CHECK(containerInspectPath("1.41", "../../images/json?a=b") ==
        "/v1.41/containers/..%2F..%2Fimages%2Fjson%3Fa%3Db/json");
  CHECK(containerInspectPath("1.41", "a b#c%") == "/v1.41/containers/a%20b%23c%25/json");
}

TEST_CASE("since has seconds and nine digits of nanoseconds") {
  const std::string base = std::string("/v1.41/events?") + kFilter;
  CHECK(eventsPath("1.41", 1795358252478213243) == base + "&since=1795358252.478213243");
  CHECK(eventsPath("1.41", 1795358252000000007) == base + "&since=1795358252.000000007");
  CHECK(eventsPath("1.41", 1'000'000'000) == base + "&since=1.000000000");
  CHECK(eventsPath("1.41", -5) == base);
}

TEST_CASE("a proxy's HTML 403 names the permission for each path family") {
  const std::string body = testing::readFixture("proxy-403.html");
  REQUIRE(body.find("403 Forbidden") != std::string::npos);
  CHECK(diagnoseForbidden("/v1.41/containers/json?all=1", body, "tcp://127.0.0.1:2375") ==
        "the Docker API proxy at tcp://127.0.0.1:2375 refused GET /v1.41/containers/json?all=1 "
        "(403 Forbidden); allow it with CONTAINERS=1 in docker-socket-proxy");
  CHECK(diagnoseForbidden("/v1.41/containers/abc/json", body).find("CONTAINERS=1") !=
        std::string::npos);
  CHECK(diagnoseForbidden(eventsPath("1.41", 5), body).find("EVENTS=1") != std::string::npos);
  CHECK(diagnoseForbidden("/_ping", body).find("PING=1") != std::string::npos);
  CHECK(diagnoseForbidden("/version", body).find("VERSION=1") != std::string::npos);
  CHECK(diagnoseForbidden("/v1.41/version", body).find("VERSION=1") != std::string::npos);
  const std::string other = diagnoseForbidden("/v1.41/info", body);
  CHECK(other.find("=1") == std::string::npos);
  CHECK(other.find("refused GET /v1.41/info") != std::string::npos);
}

TEST_CASE("a JSON 403 is the engine's own refusal") {
  const std::string message = diagnoseForbidden(
      "/v1.41/containers/json?all=1", R"({"message":"authorization denied by plugin opa"})",
      "unix:///var/run/docker.sock");
  CHECK(message.find("Docker engine at unix:///var/run/docker.sock itself refused") !=
        std::string::npos);
  CHECK(message.find("authorization denied by plugin opa") != std::string::npos);
  CHECK(message.find("not a socket proxy") != std::string::npos);
  CHECK(message.find("CONTAINERS=1") == std::string::npos);
}

}  // namespace
}  // namespace zastava
