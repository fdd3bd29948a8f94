// parseEndpoint and resolveEndpoint: DockerEndpoint (flag or environment), DOCKER_HOST,
// DOCKER_TLS_VERIFY and DOCKER_CERT_PATH. Input: the configured URI, then '\n'-separated
// values of those three variables (a missing line is an unset variable).
#include <optional>
#include <string>

#include "collectors/endpoint.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto fields = fuzz::lines(fuzz::text(data, size));
  const std::string_view configured = fields.empty() ? std::string_view() : fields[0];
  const auto parsed = parseEndpoint(configured);
  if (parsed.ok()) {
    fuzz::check(parsed->uri == configured, "an endpoint keeps its URI");
    if (parsed->kind == Endpoint::Kind::kTcp) {
      fuzz::check(!parsed->host.empty() && parsed->port >= 1 && parsed->port <= 65535,
                  "a tcp endpoint has a host and a port in 1..65535");
    } else {
      fuzz::check(!parsed->socketPath.empty() && parsed->socketPath.front() == '/',
                  "a unix endpoint has an absolute socket path");
    }
  } else {
    fuzz::check(parsed.error().code == ErrorCode::kInvalidArgument,
                "an endpoint error is kInvalidArgument");
  }
  const EnvLookup env = [&](std::string_view name) -> std::optional<std::string> {
    std::size_t index = name == "DOCKER_HOST"         ? 1
                        : name == "DOCKER_TLS_VERIFY" ? 2
                        : name == "DOCKER_CERT_PATH"  ? 3
                                                      : 0;
    if (index == 0 || index >= fields.size()) return std::nullopt;
    return std::string(fields[index]);
  };
  const auto resolved = resolveEndpoint(configured, env);
  if (!resolved.ok()) {
    fuzz::check(resolved.error().code == ErrorCode::kInvalidArgument,
                "a resolve error is kInvalidArgument");
  }
  return 0;
}
