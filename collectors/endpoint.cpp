#include "collectors/endpoint.h"

#include <charconv>
#include <filesystem>
#include <system_error>

namespace zastava {
namespace {

constexpr int kDefaultPlainPort = 2375;
constexpr int kDefaultTlsPort = 2376;
constexpr std::string_view kAccepted =
    "accepted: unix:///absolute/path, tcp://host:port, http://host:port, https://host:port";

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

bool startsWith(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

Result<Endpoint> parseTcp(std::string_view uri, std::string_view rest, bool tls) {
  while (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
  if (rest.find('/') != std::string_view::npos) {
    return invalid("docker endpoint \"" + std::string(uri) + "\" has a path; " +
                   std::string(kAccepted));
  }
  Endpoint endpoint;
  endpoint.kind = Endpoint::Kind::kTcp;
  endpoint.uri = std::string(uri);
  std::string_view host = rest;
  std::string_view portText;
  if (startsWith(rest, "[")) {  // [ipv6]:port
    const auto close = rest.find(']');
    if (close == std::string_view::npos) {
      return invalid("docker endpoint \"" + std::string(uri) + "\" has an unclosed '[' in host");
    }
    host = rest.substr(1, close - 1);
    std::string_view after = rest.substr(close + 1);
    if (!after.empty()) {
      if (after.front() != ':') {
        return invalid("docker endpoint \"" + std::string(uri) + "\": expected ':port' after ']'");
      }
      portText = after.substr(1);
      if (portText.empty()) portText = "!";
    }
  } else if (const auto colon = rest.rfind(':'); colon != std::string_view::npos) {
    host = rest.substr(0, colon);
    portText = rest.substr(colon + 1);
    if (portText.empty()) portText = "!";
  }
  if (host.empty()) {
    return invalid("docker endpoint \"" + std::string(uri) + "\" has an empty host; " +
                   std::string(kAccepted));
  }
  endpoint.host = std::string(host);
  if (portText.empty()) {
    endpoint.port = tls ? kDefaultTlsPort : kDefaultPlainPort;
  } else {
    int port = 0;
    const auto [end, ec] =
        std::from_chars(portText.data(), portText.data() + portText.size(), port);
    if (ec != std::errc() || end != portText.data() + portText.size() || port < 1 || port > 65535) {
      return invalid("docker endpoint \"" + std::string(uri) + "\" has a bad port \"" +
                     (portText == "!" ? std::string() : std::string(portText)) +
                     "\"; accepted: a number from 1 to 65535");
    }
    endpoint.port = port;
  }
  if (tls) endpoint.tls = TlsFiles{};
  return endpoint;
}

bool envTruthy(const std::optional<std::string>& value) {
  return value && !value->empty() && *value != "0" && *value != "false";
}

Result<Endpoint> parseWithTls(std::string_view uri, bool tcpTls) {
  if (startsWith(uri, "unix://")) {
    const std::string_view path = uri.substr(7);
    if (path.empty()) {
      return invalid("docker endpoint \"" + std::string(uri) +
                     "\" has an empty socket path; accepted: unix:///absolute/path");
    }
    if (path.front() != '/') {
      return invalid("docker endpoint \"" + std::string(uri) +
                     "\" has a relative socket path; accepted: unix:///absolute/path");
    }
    Endpoint endpoint;
    endpoint.kind = Endpoint::Kind::kUnix;
    endpoint.socketPath = std::string(path);
    endpoint.uri = std::string(uri);
    return endpoint;
  }
  if (startsWith(uri, "tcp://")) return parseTcp(uri, uri.substr(6), tcpTls);
  if (startsWith(uri, "http://")) return parseTcp(uri, uri.substr(7), false);
  if (startsWith(uri, "https://")) return parseTcp(uri, uri.substr(8), true);
  return invalid("docker endpoint \"" + std::string(uri) + "\" has an unknown scheme; " +
                 std::string(kAccepted));
}

}  // namespace

Result<Endpoint> parseEndpoint(std::string_view uri) { return parseWithTls(uri, false); }

Result<Endpoint> resolveEndpoint(std::string_view configured, const EnvLookup& env) {
  std::string uri(configured);
  if (uri.empty()) {
    const auto dockerHost = env("DOCKER_HOST");
    uri = dockerHost && !dockerHost->empty() ? *dockerHost : std::string(kDefaultDockerEndpoint);
  }
  auto parsed = parseWithTls(uri, envTruthy(env("DOCKER_TLS_VERIFY")));
  if (!parsed.ok()) return parsed;
  Endpoint endpoint = std::move(parsed).value();
  if (endpoint.kind == Endpoint::Kind::kUnix) return endpoint;
  if (!endpoint.tls) return endpoint;

  std::string certDir;
  if (const auto certPath = env("DOCKER_CERT_PATH"); certPath && !certPath->empty()) {
    certDir = *certPath;
  } else {
    const auto home = env("HOME");
    if (!home || home->empty()) {
      return invalid("TLS for docker endpoint \"" + endpoint.uri +
                     "\" needs DOCKER_CERT_PATH (or HOME for ~/.docker) to find ca.pem, cert.pem, "
                     "key.pem");
    }
    certDir = *home + "/.docker";
  }
  const std::filesystem::path dir(certDir);
  TlsFiles& files = *endpoint.tls;
  files.caFile = (dir / "ca.pem").string();
  files.certFile = (dir / "cert.pem").string();
  files.keyFile = (dir / "key.pem").string();
  files.verifyPeer = true;
  for (const std::string* file : {&files.caFile, &files.certFile, &files.keyFile}) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(*file, ec)) {
      return invalid("TLS for docker endpoint \"" + endpoint.uri + "\" needs " + *file +
                     ", which does not exist or is not a file; set DOCKER_CERT_PATH to the "
                     "directory holding ca.pem, cert.pem and key.pem");
    }
  }
  return endpoint;
}

}  // namespace zastava
