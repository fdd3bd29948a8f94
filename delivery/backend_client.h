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
#include "delivery/transport.h"

namespace zastava {

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

// What identifies a batch (docs/backend.md "Batch identity"): the X-Zastava-Batch header's value
// ("first=<eventId>, last=<eventId>, prev-hash=<first record's prevHash>, last-hash=<SHA-256 of
// the last line>") and X-Zastava-Batch-Id, the first 32 hex characters of SHA-256 of
// "zastava.batch\n<host>\n<that value>": the same records from the same host, the same id,
// however often they are sent. Any thread.
struct BatchIdentity {
  std::string batch;
  std::string id;
};
BatchIdentity batchIdentity(const PendingBatch& batch, std::string_view host);

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

class BackendClient final : public DeliveryTransport {
 public:
  // Checks that the files named in `options` can be read and the token file is not empty.
  // Errors: kInvalidArgument naming the key (Backend:TokenFile, ...) and the reason.
  static Result<std::unique_ptr<BackendClient>> create(const BackendClientOptions& options);
  ~BackendClient() override;
  BackendClient(const BackendClient&) = delete;
  BackendClient& operator=(const BackendClient&) = delete;

  // A receiver keeps no position the agent could read.
  bool keepsPosition() const override { return false; }
  PositionAnswer position(const std::atomic<bool>& cancel) override;

  // POSTs the batch's body and says how it ended. Setting `cancel` from another thread aborts a
  // request in flight (verdict kStopped).
  BackendAnswer send(const PendingBatch& batch, const std::atomic<bool>& cancel) override;

  // Backend:Url without user:password@.
  std::string describe() const override;

 private:
  struct Impl;
  explicit BackendClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace zastava
