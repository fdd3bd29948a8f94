#include "delivery/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

#include "buffer/delivery_ledger.h"
#include "buffer/record.h"
#include "buffer/recorder.h"  // kDatabaseFileName
#include "common/backoff.h"
#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "delivery/backend_client.h"
#include "delivery/quarantine.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::seconds kFirstBackoff{1};
constexpr std::chrono::seconds kMaxRetryAfter{3600};
// How often undelivered records are checked against the retention, and the longest idle wait.
constexpr std::chrono::seconds kExpiryInterval{60};

// The URL without user:password@, for logs.
std::string urlForLog(const std::string& url) {
  const std::size_t hostStart = url.find("://");
  if (hostStart == std::string::npos) return url;
  const std::size_t at = url.find('@', hostStart + 3);
  const std::size_t pathStart = url.find('/', hostStart + 3);
  if (at == std::string::npos || (pathStart != std::string::npos && at > pathStart)) return url;
  return url.substr(0, hostStart + 3) + "***@" + url.substr(at + 1);
}

class DispatcherImpl final : public Dispatcher {
 public:
  DispatcherImpl(const DispatcherOptions& options, std::unique_ptr<BackendClient> client,
                 std::unique_ptr<DeliveryLedger> ledger, DeliveryBacklog& backlog, RecordSink& gaps,
                 Clock& clock, Metrics& metrics, HealthState& health)
      : options_(options),
        client_(std::move(client)),
        ledger_(std::move(ledger)),
        backlog_(backlog),
        gaps_(gaps),
        clock_(clock),
        metrics_(metrics),
        health_(health),
        batchLimit_(options.batchMaxRecords),
        backoff_(kFirstBackoff, options.retryMax, Backoff::Jitter::kHalfToFull) {}

  ~DispatcherImpl() override { stop(); }

  Result<void> startThread() {
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      return Error{ErrorCode::kInternal,
                   std::string("cannot start the delivery thread: ") + e.what()};
    }
    return okResult();
  }

  void stop() override {
    backlog_.close();
    cancel_ = true;
    if (thread_.joinable()) thread_.join();
  }

 private:
  void run();
  void deliver(const PendingBatch& batch);
  void accepted(const PendingBatch& batch, const BackendAnswer& answer);
  void failed(const BackendAnswer& answer);
  void backendAnswered();
  void quarantine(const PendingBatch& batch, const BackendAnswer& answer);
  void moveCursorPast(const PendingBatch& batch);
  void expireIfDue();
  void reportHead(const PendingBatch& batch);
  bool sendNow(const PendingBatch& batch);
  // Waits `wait` on the clock, or until stop().
  void sleepFor(std::chrono::milliseconds wait);
  bool batchWouldBeFull(const Backlog& backlog) const;

  const DispatcherOptions options_;
  std::unique_ptr<BackendClient> client_;
  std::unique_ptr<DeliveryLedger> ledger_;
  DeliveryBacklog& backlog_;  // records after the cursor
  RecordSink& gaps_;
  Clock& clock_;
  Metrics& metrics_;
  HealthState& health_;
  std::thread thread_;
  std::atomic<bool> cancel_{false};

  // Delivery thread only.
  std::size_t batchLimit_;  // records per batch; halved by 413s
  int failures_ = 0;        // failed attempts since the last accepted batch
  // Between half and all of the current step, which then doubles up to Backend:RetryMaxSeconds;
  // back to kFirstBackoff once a batch is accepted.
  Backoff backoff_;
  std::int64_t headRowid_ = -1;  // the first undelivered record, as last seen
  MonoTime headSeenAt_;          // on clock_
  std::string ledgerError_;      // the current ledger read error, empty when none
  UnixNanos lastExpiry_ = 0;
};

void DispatcherImpl::sleepFor(std::chrono::milliseconds wait) {
  backlog_.waitUntil(clock_, clock_.monotonic() + wait, [](const Backlog&) { return false; });
}

void DispatcherImpl::run() {
  nameThisThread("zastava-deliver");
  while (!backlog_.closed()) {
    expireIfDue();
    const std::int64_t backlogBefore = backlog_.current().records;
    auto batch = ledger_->next(batchLimit_, options_.batchMaxBytes);
    if (!batch) {
      if (ledgerError_ != batch.error().message) {
        ledgerError_ = batch.error().message;
        spdlog::warn("backend: cannot read the records to deliver, retrying: {}", ledgerError_);
      }
      sleepFor(backoff_.next());
      continue;
    }
    ledgerError_.clear();
    reportHead(*batch);
    // Records committed since the read wake the wait: they may fill the batch.
    auto more = [&](const Backlog& now) {
      return now.records != backlogBefore && batchWouldBeFull(now);
    };
    if (batch->records == 0) {
      backlog_.waitUntil(clock_, clock_.monotonic() + kExpiryInterval,
                         [&](const Backlog& now) { return now.records != backlogBefore; });
    } else if (sendNow(*batch)) {
      deliver(*batch);
    } else {
      backlog_.waitUntil(clock_, headSeenAt_ + options_.batchMaxWait, more);
    }
  }
}

// The backlog holds a full batch (next() would stop at a limit).
bool DispatcherImpl::batchWouldBeFull(const Backlog& backlog) const {
  return backlog.records >= static_cast<std::int64_t>(batchLimit_) ||
         backlog.bytes > static_cast<std::int64_t>(options_.batchMaxBytes);
}

// A batch goes when it is full or its first record has waited Backend:BatchMaxWaitMs.
bool DispatcherImpl::sendNow(const PendingBatch& batch) {
  return batch.full || clock_.monotonic() >= headSeenAt_ + options_.batchMaxWait;
}

void DispatcherImpl::reportHead(const PendingBatch& batch) {
  const std::int64_t head = batch.records == 0 ? 0 : batch.firstRowid;
  if (head == headRowid_) return;
  headRowid_ = head;
  headSeenAt_ = clock_.monotonic();
  auto observed = head == 0 ? Result<UnixNanos>(UnixNanos{0}) : ledger_->observedAt(head);
  metrics_.setBackendOldestUndelivered(observed ? *observed : clock_.now());
}

void DispatcherImpl::deliver(const PendingBatch& batch) {
  const MonoTime sent = clock_.monotonic();
  const BackendAnswer answer = client_->post(batch.body, batch.records, cancel_);
  if (answer.verdict == DeliveryVerdict::kStopped) return;
  metrics_.observeBackendRequest(clock_.secondsSince(sent));
  switch (answer.verdict) {
    case DeliveryVerdict::kAccepted:
      accepted(batch, answer);
      return;
    case DeliveryVerdict::kTooLarge:
      metrics_.countBackendFailure(answer.cause);
      if (batch.records > 1) {
        batchLimit_ = std::max<std::size_t>(batch.records / 2, 1);
        spdlog::info("backend: {} records were too large a batch (HTTP 413); sending {} at most",
                     batch.records, batchLimit_);
        return;
      }
      quarantine(batch, answer);
      return;
    case DeliveryVerdict::kRejected:
      metrics_.countBackendFailure(answer.cause);
      quarantine(batch, answer);
      return;
    default:
      failed(answer);
  }
}

void DispatcherImpl::moveCursorPast(const PendingBatch& batch) {
  if (auto stored = ledger_->markDelivered(batch.lastRowid); !stored) {
    spdlog::warn(
        "backend: delivered, but the delivery cursor was not stored ({}); a restart "
        "sends these records again",
        stored.error().message);
  }
  backlog_.remove(static_cast<std::int64_t>(batch.records),
                  static_cast<std::int64_t>(batch.body.size()));
}

void DispatcherImpl::accepted(const PendingBatch& batch, const BackendAnswer& answer) {
  moveCursorPast(batch);
  metrics_.countBackendDelivered(batch.records, answer.sentBytes);
  backendAnswered();
  backoff_.reset();
}

void DispatcherImpl::failed(const BackendAnswer& answer) {
  metrics_.countBackendFailure(answer.cause);
  metrics_.setBackendConsecutiveFailures(++failures_);
  const std::string why = answer.detail + (answer.bodyStart.empty() ? "" : ": " + answer.bodyStart);
  if (failures_ == 1) {
    const auto level =
        answer.verdict == DeliveryVerdict::kRefused ? spdlog::level::err : spdlog::level::warn;
    spdlog::log(level,
                "backend: POST {} failed ({}): {}; retrying with back-off, records stay in "
                "the buffer",
                urlForLog(options_.backend.url), answer.cause, why);
  } else {
    spdlog::debug("backend: attempt {} failed ({}): {}", failures_, answer.cause, why);
  }
  if (failures_ >= options_.failuresBeforeUnready) {
    health_.setBackendFailing(true, answer.cause + ": " + answer.detail);
  }
  // The back-off, or longer when the backend's Retry-After asks for it (up to kMaxRetryAfter).
  std::chrono::milliseconds wait = backoff_.next();
  if (answer.retryAfter) {
    wait = std::max<std::chrono::milliseconds>(wait, std::min(*answer.retryAfter, kMaxRetryAfter));
  }
  sleepFor(wait);
}

void DispatcherImpl::quarantine(const PendingBatch& batch, const BackendAnswer& answer) {
  auto file = quarantineBatch(options_.dataDirectory, batch);
  if (!file) {
    BackendAnswer notKept = answer;
    notKept.cause = "other";
    notKept.detail = "the backend rejected a batch (" + answer.detail +
                     ") and it cannot be quarantined: " + file.error().message;
    failed(notKept);
    return;
  }
  moveCursorPast(batch);
  metrics_.countBackendQuarantined(batch.records);
  spdlog::error("backend: rejected {} records with {}{}{}; they are in {} and delivery goes on",
                batch.records, answer.detail, answer.bodyStart.empty() ? "" : ": ",
                answer.bodyStart, file->string());
  batchLimit_ = options_.batchMaxRecords;
  backendAnswered();
}

// The backend took a batch (accepted or quarantined): an incident of failures is over.
void DispatcherImpl::backendAnswered() {
  if (failures_ == 0) return;
  spdlog::info("backend: delivering again after {} failed attempts", failures_);
  failures_ = 0;
  metrics_.setBackendConsecutiveFailures(0);
  health_.setBackendFailing(false);
}

void DispatcherImpl::expireIfDue() {
  const UnixNanos now = clock_.now();
  if (now - lastExpiry_ < std::chrono::nanoseconds(kExpiryInterval).count()) return;
  lastExpiry_ = now;
  auto expired = ledger_->expireOlderThan(now - options_.retentionNanos);
  if (!expired) {
    spdlog::warn("backend: cannot apply the retention to undelivered records: {}",
                 expired.error().message);
    return;
  }
  if (expired->records == 0) return;
  backlog_.remove(expired->records, expired->bytes);
  metrics_.countBackendExpired(expired->records);
  spdlog::warn(
      "backend: {} records from {} to {} reached the retention before the backend "
      "accepted them and were deleted; an agent.gap record tells the backend",
      expired->records, formatRfc3339Nanos(expired->oldest), formatRfc3339Nanos(expired->newest));
  // Its time is now, not the span's: the retention must not delete the record at once.
  Record gap = gapRecord(GapFacts{expired->oldest, expired->newest,
                                  "backend delivery: records deleted by the retention "
                                  "(EventBuffer:RetentionHours) before the backend accepted them",
                                  expired->records},
                         now, now);
  gaps_.submit(std::move(gap));
}

}  // namespace

Result<void> checkBackendFiles(const DispatcherOptions& options) {
  if (!options.enabled()) return okResult();
  auto client = BackendClient::create(options.backend);
  if (!client) return client.error();
  return okResult();
}

Result<std::unique_ptr<Dispatcher>> Dispatcher::start(const DispatcherOptions& options,
                                                      std::unique_ptr<BackendClient> client,
                                                      DeliveryBacklog& backlog, RecordSink& gaps,
                                                      Clock& clock, Metrics& metrics,
                                                      HealthState& health) {
  auto ledger = DeliveryLedger::open(options.dataDirectory / kDatabaseFileName);
  if (!ledger) return ledger.error();
  auto counted = (*ledger)->backlog();
  if (!counted) return counted.error();
  backlog.set(*counted);
  spdlog::info("backend: delivering to {}; {} records ({} bytes) waiting",
               urlForLog(options.backend.url), counted->records, counted->bytes);
  auto dispatcher = std::make_unique<DispatcherImpl>(options, std::move(client), std::move(*ledger),
                                                     backlog, gaps, clock, metrics, health);
  auto started = dispatcher->startThread();
  if (!started) return started.error();
  return std::unique_ptr<Dispatcher>(std::move(dispatcher));
}

}  // namespace zastava
