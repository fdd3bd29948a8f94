// Internal to collectors/: the one place a request leaves the agent. perform() sends a GET for a
// path built by api_paths.h and maps libcurl failures to Error. Not for use outside collectors/.
#pragma once

#include <curl/curl.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "collectors/docker_api.h"
#include "collectors/endpoint.h"
#include "common/result.h"

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
  std::chrono::steady_clock::time_point lastByteAt = std::chrono::steady_clock::now();
  std::optional<Error> silenceError;  // the stream went silent and the engine did not answer
};

// Owns a CURL easy handle.
class CurlHandle {
 public:
  CurlHandle() : handle_(curl_easy_init()) {}
  ~CurlHandle() {
    if (handle_ != nullptr) curl_easy_cleanup(handle_);
  }
  CurlHandle(const CurlHandle&) = delete;
  CurlHandle& operator=(const CurlHandle&) = delete;
  explicit operator bool() const { return handle_ != nullptr; }
  CURL* get() const { return handle_; }

 private:
  CURL* handle_;
};

// curl_global_init, once per process. Any thread.
void initCurlOnce();

// Sends GET `path` to `endpoint` on `handle` (whose options it sets from scratch). Returns ok when
// an HTTP response was received, whatever its status (see transfer.status); kUnavailable when the
// engine cannot be reached or the connection broke, kTimeout, kCancelled when transfer.stream's
// stop flag was raised, kProtocol for a body over the size limit, kInternal when a callback threw.
// The calling thread must own `handle` and `transfer` for the duration.
Result<void> perform(const Endpoint& endpoint, CURL* handle, std::string_view path,
                     Transfer& transfer);

// The Error for a non-2xx answer to GET `path`: kForbidden (with diagnoseForbidden) for 401/403,
// kProtocol with the status and the engine's message otherwise.
Error statusError(const Endpoint& endpoint, std::string_view path, const Transfer& transfer);

}  // namespace zastava
