// Where the engine is and how to reach it: a unix socket (direct, ACL'd, rootless) or TCP
// (a socket proxy), optionally with TLS following the Docker CLI's DOCKER_TLS_VERIFY /
// DOCKER_CERT_PATH conventions.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zastava {

struct TlsFiles {
  std::string caFile;    // ca.pem
  std::string certFile;  // cert.pem
  std::string keyFile;   // key.pem
  bool verifyPeer = true;
};

struct Endpoint {
  enum class Kind { kUnix, kTcp };
  Kind kind = Kind::kUnix;
  std::string socketPath;       // kUnix
  std::string host;             // kTcp
  int port = 0;                 // kTcp
  std::optional<TlsFiles> tls;  // kTcp with TLS
  std::string uri;              // as configured, for logs ("unix:///var/run/docker.sock")
};

inline constexpr std::string_view kDefaultDockerEndpoint = "unix:///var/run/docker.sock";

// Reads an environment variable; std::nullopt when unset. Injected so tests need no setenv.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;

// Parses "unix:///path", "tcp://host:port" (also "http://", and "https://" meaning TLS).
// Errors (kInvalidArgument) name what is wrong: unknown scheme, empty path, bad port.
Result<Endpoint> parseEndpoint(std::string_view uri);

// The endpoint to use: `configured` if non-empty, else DOCKER_HOST, else the default socket.
// For tcp://, DOCKER_TLS_VERIFY=1 (or an https:// scheme) turns on TLS with the certificates in
// DOCKER_CERT_PATH (default ~/.docker) named ca.pem, cert.pem, key.pem; a missing file is an error.
Result<Endpoint> resolveEndpoint(std::string_view configured, const EnvLookup& env);

}  // namespace zastava
