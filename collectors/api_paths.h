// The closed set of request paths the agent can send to the engine, and the diagnosis of a refusal.
// Every request of CurlDockerApi is built by one of these functions, so this file is the whole
// read-only surface. Pure functions; any thread.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace zastava {

// "/_ping" (never versioned, so it works before negotiation).
std::string pingPath();
// "/v<ver>/version", or "/version" when `ver` is empty (before negotiation).
std::string versionPath(std::string_view ver);
// "/v<ver>/containers/json?all=1".
std::string containersListPath(std::string_view ver);
// "/v<ver>/containers/<id>/json" with `id` percent-encoded (only A-Z a-z 0-9 - . _ ~ kept).
std::string containerInspectPath(std::string_view ver, std::string_view id);
// "/v<ver>/events?filters=<{"type":["container"]} percent-encoded>", plus
// "&since=<seconds>.<9-digit nanoseconds>" when sinceNano > 0.
std::string eventsPath(std::string_view ver, std::int64_t sinceNano);

// Percent-encodes every byte except the RFC 3986 unreserved characters.
std::string urlEscape(std::string_view text);

// The message for a 401/403 answer to GET `path` from the endpoint `endpointUri`. When `body` is
// HTML (a socket proxy such as tecnativa/docker-socket-proxy, which is haproxy) it names the
// refused request and the proxy permission that allows it (CONTAINERS=1, EVENTS=1, PING=1,
// VERSION=1). Otherwise it says the engine itself refused and quotes the engine's message.
std::string diagnoseForbidden(std::string_view path, std::string_view body,
                              std::string_view endpointUri = {}, long status = 403);

}  // namespace zastava
