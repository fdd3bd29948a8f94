// Internal to collectors/: the one place a request leaves the agent. perform() sends a GET for a
// path built by api_paths.h through net/'s CurlEasy, and adds to its Error what the engine's
// endpoint tells (why a unix socket refused). Not for use outside collectors/.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "collectors/docker_api.h"
#include "collectors/endpoint.h"
#include "common/clock.h"
#include "common/result.h"
#include "net/curl_easy.h"

namespace zastava {

// Where a streaming response goes: complete lines are decoded and passed to onEvent.
struct StreamSink {
  const std::function<void()>* onOpen = nullptr;
  const EventHandler* onEvent = nullptr;
  const std::atomic<bool>* stop = nullptr;
  // After `silenceCheck` without a byte, engineAlive() is asked (0: never); when it fails the
  // stream is given up with that error.
  std::chrono::seconds silenceCheck{0};
  std::function<Result<void>()> engineAlive;
  const Clock* clock = nullptr;  // measures the silence
};

// The state of one GET, filled in by perform()'s callbacks.
struct Transfer {
  long status = 0;               // HTTP status of the final response
  std::string body;              // whole body; for a stream only a non-200 body
  std::string apiVersionHeader;  // the Api-Version response header, any case
  std::optional<StreamSink> stream;
  // Callback state.
  bool headersDone = false;
  bool opened = false;
  bool bodyTooLarge = false;
  std::optional<Error> callbackError;  // a user callback threw
  std::string partialLine;
  MonoTime lastByteAt{};              // of a stream, on stream->clock
  std::optional<Error> silenceError;  // the stream went silent and the engine did not answer
};

// Sends GET `path` to `endpoint` on `handle` (whose options it sets from scratch). Returns ok when
// an HTTP response was received, whatever its status (see transfer.status); otherwise the
// net/curl_easy.h Error (kUnavailable when the engine cannot be reached, with why for a unix
// socket, or the connection broke; kTimeout; kTls), kCancelled when transfer.stream's stop flag
// was raised, kProtocol for a body over the size limit, kInternal when a callback threw or
// libcurl refused an option. The calling thread must own `handle` and `transfer` for the
// duration.
Result<void> perform(const Endpoint& endpoint, CurlEasy& handle, std::string_view path,
                     Transfer& transfer);

// The Error for a non-2xx answer to GET `path`: kForbidden (with diagnoseForbidden) for 401/403,
// kProtocol with the status and the engine's message otherwise.
Error statusError(const Endpoint& endpoint, std::string_view path, const Transfer& transfer);

}  // namespace zastava
