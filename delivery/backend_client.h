// The backend seen from the agent: one HTTP(S) POST of a batch of NDJSON records, with the
// headers, authentication and TLS of docs/backend.md, over net/'s CurlEasy, which keeps its
// connection between requests. The verdict on each answer (accepted, retry, refused, too large,
// rejected) is delivery's policy and a pure function of the status, so the contract's table is
// tested on its own; a request that got no answer fails with net/'s Error.
#pragma once

#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zastava {

// What the Dispatcher does with an answer (docs/backend.md "The answer").
enum class DeliveryVerdict {
  kAccepted,  // 2xx: move the cursor past the batch
  kRetry,     // 408, 429, 5xx, no answer: send again after a back-off
  kRefused,   // 3xx, 401, 403, 404, 405: configuration; send again after a back-off
  kTooLarge,  // 413: halve the batch
  kRejected,  // any other 4xx: quarantine the batch
  kStopped,   // the request was cancelled because the agent is stopping
};

// The verdict on an HTTP status that arrived.
DeliveryVerdict verdictOfStatus(long status);

// The failure cause label of zastava_agent_backend_failures_total for an answered request that
// was not accepted: http_408, http_429, http_5xx, too_large, refused, rejected.
std::string_view causeOfStatus(long status);

// The failure cause label of zastava_agent_backend_failures_total for a request that got no
// answer: connect (kUnavailable: not reached, or the connection broke), tls, timeout, other.
std::string_view causeOfError(const Error& error);

// A Retry-After value: delay-seconds ("120") or an HTTP date, as a delay from `now`; a date in
// the past is 0 s. std::nullopt when it is neither. Any thread.
std::optional<std::chrono::seconds> parseRetryAfter(std::string_view value, std::time_t now);

// How a POST ended: an HTTP answer and its verdict, or the Error that kept any answer away.
struct BackendAnswer {
  DeliveryVerdict verdict = DeliveryVerdict::kRetry;
  long status = 0;             // the HTTP status; 0 when no answer arrived
  std::optional<Error> error;  // why no answer arrived (then verdict is kRetry or kStopped): the
                               // transfer's (net/curl_easy.h), or the token or gzip failure
  std::string cause;           // failure label: causeOfStatus(status) or causeOfError(*error)
  std::string detail;          // what went wrong, for the log: error->message or "HTTP 503"
  std::string bodyStart;       // the first 200 bytes of the answer's body
  std::optional<std::chrono::seconds> retryAfter;
  std::size_t sentBytes = 0;  // the request body, after compression
};

// The default of Backend:TimeoutSeconds (Config starts from it).
inline constexpr std::chrono::seconds kDefaultBackendTimeout{30};

struct BackendClientOptions {
  std::string url;
  std::filesystem::path tokenFile;  // empty: no Authorization header
  std::filesystem::path caFile;     // empty: the system's CA store
  std::filesystem::path clientCertFile;
  std::filesystem::path clientKeyFile;
  bool gzip = false;
  std::chrono::seconds timeout = kDefaultBackendTimeout;
};

class BackendClient {
 public:
  // Checks that the files named in `options` can be read and the token file is not empty.
  // Errors: kInvalidArgument naming the key (Backend:TokenFile, ...) and the reason.
  static Result<std::unique_ptr<BackendClient>> create(const BackendClientOptions& options);
  ~BackendClient();
  BackendClient(const BackendClient&) = delete;
  BackendClient& operator=(const BackendClient&) = delete;

  // POSTs `body` (`records` NDJSON lines) and says how it ended. Setting `cancel` from another
  // thread aborts a request in flight (verdict kStopped). Never throws; one thread at a time.
  BackendAnswer post(std::string_view body, std::size_t records, const std::atomic<bool>& cancel);

 private:
  struct Impl;
  explicit BackendClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zastava
