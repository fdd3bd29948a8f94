// How records leave the host. The Dispatcher is delivery's one policy (batches, the cursor,
// back-off, readiness, quarantine, expiry); it drives one transport, chosen by Backend:Url's
// scheme: the BackendClient (http://, https://: one POST per batch) or the NatsTransport
// (nats://, tls://: one JetStream publish per record, acks pipelined). What a transport answers
// is the same for both, so the policy, the metrics and the alerts are too.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "buffer/delivery_ledger.h"  // PendingBatch
#include "common/result.h"

namespace zastava {

// What the Dispatcher does with an answer (docs/backend.md "The answer").
enum class DeliveryVerdict {
  kAccepted,  // the destination holds the whole batch: move the cursor past it
  kRetry,     // no answer, or a passing failure: send again after a back-off
  kRefused,   // configuration (credentials, permissions, no such stream): same, logged as error
  kTooLarge,  // HTTP 413: halve the batch
  kRejected,  // HTTP 4xx about the records: quarantine the batch
  kStopped,   // cancelled because the agent is stopping
};

// How sending a batch (or asking for the position) ended.
struct BackendAnswer {
  DeliveryVerdict verdict = DeliveryVerdict::kRetry;
  // Records of the batch, from its first, that the destination now holds: all of them when
  // accepted; with NATS, also the acknowledged ones before a failure.
  std::size_t delivered = 0;
  long status = 0;             // HTTP: the status; 0 when no answer arrived
  std::optional<Error> error;  // why no answer arrived (then verdict is kRetry or kStopped)
  std::string cause;           // zastava_agent_backend_failures_total's cause label
  std::string detail;          // what went wrong, for the log and /readyz: never a credential
  std::string bodyStart;       // HTTP: the first 200 bytes of the answer's body
  std::optional<std::chrono::seconds> retryAfter;
  std::size_t sentBytes = 0;  // bytes sent for the batch (HTTP: after compression)
};

// Where the destination says this host's records stand.
struct PositionAnswer {
  BackendAnswer answer;  // kAccepted when the position was read
  // The last record the destination holds of this host, exactly as sent; std::nullopt when it
  // holds none.
  std::optional<std::string> lastRecord;
  // Records the destination lost while it stored later ones, sent again after them (NATS).
  std::size_t resentOutOfOrder = 0;
};

class DeliveryTransport {
 public:
  virtual ~DeliveryTransport() = default;

  // Whether the destination keeps this host's position, which then decides where delivery
  // resumes on start and after every failure (NATS: the stream's last message of the host's
  // subject). HTTP keeps none: the cursor alone decides.
  virtual bool keepsPosition() const = 0;

  // Asks the destination for its position. Only when keepsPosition(). Never throws.
  virtual PositionAnswer position(const std::atomic<bool>& cancel) = 0;

  // Sends `batch`, in order. Setting `cancel` from another thread ends it early (kStopped, with
  // `delivered` still counting what was acknowledged). Never throws; one thread at a time.
  virtual BackendAnswer send(const PendingBatch& batch, const std::atomic<bool>& cancel) = 0;

  // The destination for logs, without credentials.
  virtual std::string describe() const = 0;
};

// The content of a credential file (a token, a password, an NKey seed) without surrounding
// whitespace: one line, at most 16 KiB, not empty. Read at each use, so a rotated file is taken
// without a restart. Errors: kInvalidArgument naming `key` and the file
// ("Backend:TokenFile /etc/zastava-agent/token: is empty"), never the content.
Result<std::string> readCredentialFile(std::string_view key, const std::filesystem::path& file);

// Whether `file`, when set, can be opened for reading. Errors: kInvalidArgument naming `key`.
Result<void> checkReadable(std::string_view key, const std::filesystem::path& file);

// gethostname(), or "unknown": the X-Zastava-Host header, the NATS subject's last token.
std::string localHostName();

// `url` without user:password@ (or token@) before its host, for logs.
std::string urlForLog(std::string_view url);

}  // namespace zastava
