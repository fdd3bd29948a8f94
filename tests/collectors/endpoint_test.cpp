#include "collectors/endpoint.h"

#include <doctest/doctest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <map>

namespace zastava {
namespace {

EnvLookup envOf(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](std::string_view name) -> std::optional<std::string> {
    const auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

// A fresh directory under the temp dir, removed at the end of the test.
struct TempDir {
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "zcol-XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  void touch(const std::string& name) const { std::ofstream(path / name) << "x"; }
  std::filesystem::path path;
};

TEST_CASE("unix endpoints") {
  const auto e = parseEndpoint("unix:///var/run/docker.sock");
  REQUIRE(e.ok());
  CHECK(e->kind == Endpoint::Kind::kUnix);
  CHECK(e->socketPath == "/var/run/docker.sock");
  CHECK(e->uri == "unix:///var/run/docker.sock");
  CHECK_FALSE(e->tls.has_value());

  const auto empty = parseEndpoint("unix://");
  REQUIRE_FALSE(empty.ok());
  CHECK(empty.error().code == ErrorCode::kInvalidArgument);
  CHECK(empty.error().message.find("empty socket path") != std::string::npos);

  const auto relative = parseEndpoint("unix://run/docker.sock");
  REQUIRE_FALSE(relative.ok());
  CHECK(relative.error().message.find("unix://run/docker.sock") != std::string::npos);
  CHECK(relative.error().message.find("unix:///absolute/path") != std::string::npos);
}

TEST_CASE("tcp, http and https endpoints") {
  const auto tcp = parseEndpoint("tcp://127.0.0.1:2375");
  REQUIRE(tcp.ok());
  CHECK(tcp->kind == Endpoint::Kind::kTcp);
  CHECK(tcp->host == "127.0.0.1");
  CHECK(tcp->port == 2375);
  CHECK_FALSE(tcp->tls.has_value());

  const auto noPort = parseEndpoint("tcp://socket-proxy");
  REQUIRE(noPort.ok());
  CHECK(noPort->host == "socket-proxy");
  CHECK(noPort->port == 2375);

  const auto http = parseEndpoint("http://proxy:8080/");
  REQUIRE(http.ok());
  CHECK(http->port == 8080);
  CHECK_FALSE(http->tls.has_value());

  const auto https = parseEndpoint("https://docker.example");
  REQUIRE(https.ok());
  CHECK(https->port == 2376);
  CHECK(https->tls.has_value());

  const auto v6 = parseEndpoint("tcp://[::1]:2375");
  REQUIRE(v6.ok());
  CHECK(v6->host == "::1");
  CHECK(v6->port == 2375);
}

TEST_CASE("bad endpoints name the value and what is accepted") {
  for (const char* bad :
       {"tcp://host:0", "tcp://host:65536", "tcp://host:abc", "tcp://host:", "tcp://:2375",
        "ftp://host", "/var/run/docker.sock", "", "tcp://host:2375/path"}) {
    CAPTURE(bad);
    const auto e = parseEndpoint(bad);
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code == ErrorCode::kInvalidArgument);
    CHECK(e.error().message.find("\"" + std::string(bad) + "\"") != std::string::npos);
    CHECK(e.error().message.find("accepted") != std::string::npos);
  }
}

TEST_CASE("resolveEndpoint: configured, then DOCKER_HOST, then the default") {
  const auto env = envOf({{"DOCKER_HOST", "tcp://proxy:2375"}});
  CHECK(resolveEndpoint("unix:///run/a.sock", env)->socketPath == "/run/a.sock");
  CHECK(resolveEndpoint("", env)->host == "proxy");
  CHECK(resolveEndpoint("", envOf({}))->socketPath == "/var/run/docker.sock");
  CHECK(resolveEndpoint("", envOf({{"DOCKER_HOST", ""}}))->uri == kDefaultDockerEndpoint);
  const auto bad = resolveEndpoint("", envOf({{"DOCKER_HOST", "nope://x"}}));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("nope://x") != std::string::npos);
}

TEST_CASE("DOCKER_TLS_VERIFY and DOCKER_CERT_PATH") {
  TempDir dir;
  const std::string certs = dir.path.string();

  SUBCASE("a missing file is an error naming it") {
    dir.touch("ca.pem");
    dir.touch("cert.pem");
    const auto e = resolveEndpoint(
        "tcp://docker:2376", envOf({{"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", certs}}));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().code == ErrorCode::kInvalidArgument);
    CHECK(e.error().message.find(certs + "/key.pem") != std::string::npos);
  }
  SUBCASE("all files present") {
    dir.touch("ca.pem");
    dir.touch("cert.pem");
    dir.touch("key.pem");
    const auto e = resolveEndpoint("", envOf({{"DOCKER_HOST", "tcp://docker"},
                                              {"DOCKER_TLS_VERIFY", "1"},
                                              {"DOCKER_CERT_PATH", certs}}));
    REQUIRE(e.ok());
    REQUIRE(e->tls.has_value());
    CHECK(e->port == 2376);
    CHECK(e->tls->caFile == certs + "/ca.pem");
    CHECK(e->tls->certFile == certs + "/cert.pem");
    CHECK(e->tls->keyFile == certs + "/key.pem");
    CHECK(e->tls->verifyPeer);
  }
  SUBCASE("default cert dir is $HOME/.docker") {
    std::filesystem::create_directory(dir.path / ".docker");
    dir.touch(".docker/ca.pem");
    dir.touch(".docker/cert.pem");
    dir.touch(".docker/key.pem");
    const auto e = resolveEndpoint("https://docker:9999", envOf({{"HOME", certs}}));
    REQUIRE(e.ok());
    CHECK(e->port == 9999);
    CHECK(e->tls->caFile == certs + "/.docker/ca.pem");
  }
  SUBCASE("https without certificates is an error") {
    const auto e = resolveEndpoint("https://docker", envOf({{"DOCKER_CERT_PATH", certs}}));
    REQUIRE_FALSE(e.ok());
    CHECK(e.error().message.find(certs + "/ca.pem") != std::string::npos);
  }
  SUBCASE("DOCKER_TLS_VERIFY off values leave tcp plain") {
    for (const char* off : {"", "0", "false"}) {
      const auto e = resolveEndpoint(
          "tcp://docker", envOf({{"DOCKER_TLS_VERIFY", off}, {"DOCKER_CERT_PATH", certs}}));
      REQUIRE(e.ok());
      CHECK_FALSE(e->tls.has_value());
      CHECK(e->port == 2375);
    }
  }
  SUBCASE("TLS on a unix socket is ignored") {
    const auto e =
        resolveEndpoint("unix:///run/docker.sock",
                        envOf({{"DOCKER_TLS_VERIFY", "1"}, {"DOCKER_CERT_PATH", certs}}));
    REQUIRE(e.ok());
    CHECK_FALSE(e->tls.has_value());
  }
}

}  // namespace
}  // namespace zastava
