// Pure decoders from the Docker Engine's JSON bytes to the structs of engine_types.h. They copy
// every string out of the parser's buffer, keep no state between calls and may be called from any
// thread. Errors are kMalformed and say what is wrong or missing; they quote at most the first
// 200 bytes of the input.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "collectors/engine_types.h"
#include "common/result.h"

namespace zastava {

// One line of GET /events, either shape (pre-1.52 with status/id/from, or 1.52+ with only
// Type/Action/Actor). Requires Action (or status) and Actor.ID (or id). A missing Type is
// "container" when status is present. Attribute values that are not strings are kept as their
// JSON text. A missing timeNano is time * 1e9. A number beyond 64 bits (timeNano, Created,
// Pid, ExitCode, ...) counts as absent; an event whose time in nanoseconds does not fit in 64
// bits is kMalformed.
// The action is split (splitAction) and put in Docker's vocabulary (toDockerVocabulary, with
// the top-level HealthStatus): Podman's `remove` is a `destroy`. `rawAction` is always the
// Action exactly as sent.
Result<EngineEvent> decodeEvent(std::string_view json);

// GET /containers/json. Every element needs an Id; Labels may be null.
Result<std::vector<ContainerSummary>> decodeContainerList(std::string_view json);

// GET /containers/{id}/json. Needs Id; Config.Labels and Args may be null.
Result<ContainerInspect> decodeContainerInspect(std::string_view json);

// GET /version. Needs ApiVersion.
Result<VersionInfo> decodeVersion(std::string_view json);

// GET /_ping answers in its headers. One header line, without its line end:
// The status of an HTTP status line ("HTTP/1.1 200 OK" -> 200); std::nullopt when the line does
// not start with "HTTP/" or has no number after the version.
std::optional<long> decodeStatusLine(std::string_view line);
// The value of an Api-Version header (the name in any case; "Api-Version: 1.41" -> "1.41", the
// blanks after the colon removed); std::nullopt for any other line.
std::optional<std::string> decodeApiVersionHeader(std::string_view line);
// An API version, "1.41" -> {1, 41}; std::nullopt when it is not <digits>.<digits> (no sign, no
// blank) or a number does not fit in an int.
std::optional<std::pair<int, int>> parseApiVersion(std::string_view text);

// Splits an event Action on the first ": " ("health_status: healthy" -> "health_status",
// "healthy"). `detail` is kept exactly as sent, trailing space included ("exec_create: true " ->
// "true "), and is empty when there is no ": ".
void splitAction(std::string_view raw, std::string& action, std::string& detail);

// The text of the engine's {"message": "..."} error body; empty when `body` is not such JSON.
std::string decodeErrorMessage(std::string_view body);
// The `cause` of Podman's {"cause": "...", "message": "...", "response": N} error body (Docker's
// has none); empty when absent.
std::string decodeErrorCause(std::string_view body);

}  // namespace zastava
