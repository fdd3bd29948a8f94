#include "buffer/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <random>
#include <system_error>
#include <thread>

#include "buffer/backend_client.h"
#include "buffer/delivery_queue.h"
#include "buffer/quarantine.h"
#include "buffer/record.h"
#include "buffer/recorder.h"
#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;
using SteadyTime = std::chrono::steady_clock::time_point;

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
                 Clock& clock, Metrics& metrics, HealthState& health)
      : options_(options),
        client_(std::move(client)),
        clock_(clock),
        metrics_(metrics),
        health_(health),
        batchLimit_(options.batchMaxRecords),
        random_(std::random_device{}()) {}

  ~DispatcherImpl() override { stop(); }

  void recordsCommitted(std::size_t records, std::uint64_t bytes) override {
    {
      std::lock_guard lock(mu_);
      backlog_.records += static_cast<std::int64_t>(records);
      backlog_.bytes += static_cast<std::int64_t>(bytes);
      metrics_.setBackendBacklog(backlog_.records, backlog_.bytes);
    }
    wake_.notify_one();
  }

  Result<void> start(Recorder& recorder) override {
    recorder_ = &recorder;
    auto queue = DeliveryQueue::open(options_.dataDirectory / kDatabaseFileName);
    if (!queue) return queue.error();
    queue_ = std::move(*queue);
    auto backlog = queue_->backlog();
    if (!backlog) return backlog.error();
    {
      std::lock_guard lock(mu_);
      backlog_ = *backlog;
      metrics_.setBackendBacklog(backlog_.records, backlog_.bytes);
    }
    spdlog::info("backend: delivering to {}; {} records ({} bytes) waiting", urlForLog(options_.backend.url),
                 backlog->records, backlog->bytes);
    try {
      thread_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      return Error{ErrorCode::kInternal,
                   std::string("cannot start the delivery thread: ") + e.what()};
    }
    return okResult();
  }

  void stop() override {
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
    }
    cancel_ = true;
    wake_.notify_all();
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
  // Waits until `deadline`, stop(), or `ready` (checked under mu_). False once stopping.
  template <typename Ready>
  bool waitUntil(SteadyTime deadline, Ready ready);
  std::chrono::milliseconds nextBackoff();
  bool stopping() {
    std::lock_guard lock(mu_);
    return stopping_;
  }
  std::int64_t backlogRecords();
  bool batchWouldBeFull() const;

  const DispatcherOptions options_;
  std::unique_ptr<BackendClient> client_;
  Clock& clock_;
  Metrics& metrics_;
  HealthState& health_;
  Recorder* recorder_ = nullptr;
  std::unique_ptr<DeliveryQueue> queue_;
  std::thread thread_;
  std::atomic<bool> cancel_{false};

  std::mutex mu_;
  std::condition_variable wake_;
  bool stopping_ = false;  // guarded by mu_
  Backlog backlog_;        // guarded by mu_: records after the cursor

  // Delivery thread only.
  std::size_t batchLimit_;  // records per batch; halved by 413s
  int failures_ = 0;        // failed attempts since the last accepted batch
  std::chrono::seconds backoff_{kFirstBackoff};
  std::int64_t headRowid_ = -1;  // the first undelivered record, as last seen
  SteadyTime headSeenAt_;
  std::string queueError_;  // the current ledger read error, empty when none
  UnixNanos lastExpiry_ = 0;
  std::minstd_rand random_;
};

template <typename Ready>
bool DispatcherImpl::waitUntil(SteadyTime deadline, Ready ready) {
  std::unique_lock lock(mu_);
  wake_.wait_until(lock, deadline, [&] { return stopping_ || ready(); });
  return !stopping_;
}

void DispatcherImpl::run() {
  nameThisThread("zastava-deliver");
  while (!stopping()) {
    expireIfDue();
    const std::int64_t backlogBefore = backlogRecords();
    auto batch = queue_->next(batchLimit_, options_.batchMaxBytes);
    if (!batch) {
      if (queueError_ != batch.error().message) {
        queueError_ = batch.error().message;
        spdlog::warn("backend: cannot read the records to deliver, retrying: {}", queueError_);
      }
      waitUntil(std::chrono::steady_clock::now() + nextBackoff(), [] { return false; });
      continue;
    }
    queueError_.clear();
    reportHead(*batch);
    // Records committed since the read wake the wait: they may fill the batch.
    auto more = [&] { return backlog_.records != backlogBefore && batchWouldBeFull(); };
    if (batch->records == 0) {
      waitUntil(std::chrono::steady_clock::now() + kExpiryInterval,
                [&] { return backlog_.records != backlogBefore; });
    } else if (sendNow(*batch)) {
      deliver(*batch);
    } else {
      waitUntil(headSeenAt_ + options_.batchMaxWait, more);
    }
  }
}

std::int64_t DispatcherImpl::backlogRecords() {
  std::lock_guard lock(mu_);
  return backlog_.records;
}

// Under mu_: the backlog holds a full batch (next() would stop at a limit).
bool DispatcherImpl::batchWouldBeFull() const {
  return backlog_.records >= static_cast<std::int64_t>(batchLimit_) ||
         backlog_.bytes > static_cast<std::int64_t>(options_.batchMaxBytes);
}

// A batch goes when it is full or its first record has waited Backend:BatchMaxWaitMs.
bool DispatcherImpl::sendNow(const PendingBatch& batch) {
  return batch.full || std::chrono::steady_clock::now() >= headSeenAt_ + options_.batchMaxWait;
}

void DispatcherImpl::reportHead(const PendingBatch& batch) {
  const std::int64_t head = batch.records == 0 ? 0 : batch.firstRowid;
  if (head == headRowid_) return;
  headRowid_ = head;
  headSeenAt_ = std::chrono::steady_clock::now();
  auto observed = head == 0 ? Result<UnixNanos>(UnixNanos{0}) : queue_->observedAt(head);
  metrics_.setBackendOldestUndelivered(observed ? *observed : clock_.now());
}

void DispatcherImpl::deliver(const PendingBatch& batch) {
  const BackendAnswer answer = client_->post(batch.body, batch.records, cancel_);
  if (answer.verdict == DeliveryVerdict::kStopped) return;
  metrics_.observeBackendRequest(answer.seconds);
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
  if (auto stored = queue_->markDelivered(batch.lastRowid); !stored) {
    spdlog::warn("backend: delivered, but the delivery cursor was not stored ({}); a restart "
                 "sends these records again",
                 stored.error().message);
  }
  std::lock_guard lock(mu_);
  backlog_.records = std::max<std::int64_t>(backlog_.records - batch.records, 0);
  backlog_.bytes = std::max<std::int64_t>(
      backlog_.bytes - static_cast<std::int64_t>(batch.body.size()), 0);
  metrics_.setBackendBacklog(backlog_.records, backlog_.bytes);
}

void DispatcherImpl::accepted(const PendingBatch& batch, const BackendAnswer& answer) {
  moveCursorPast(batch);
  metrics_.countBackendDelivered(batch.records, answer.sentBytes);
  backendAnswered();
  backoff_ = kFirstBackoff;
}

void DispatcherImpl::failed(const BackendAnswer& answer) {
  metrics_.countBackendFailure(answer.cause);
  metrics_.setBackendConsecutiveFailures(++failures_);
  const std::string why = answer.detail + (answer.bodyStart.empty() ? "" : ": " + answer.bodyStart);
  if (failures_ == 1) {
    const auto level = answer.verdict == DeliveryVerdict::kRefused ? spdlog::level::err
                                                                    : spdlog::level::warn;
    spdlog::log(level, "backend: POST {} failed ({}): {}; retrying with back-off, records stay in "
                "the buffer", urlForLog(options_.backend.url), answer.cause, why);
  } else {
    spdlog::debug("backend: attempt {} failed ({}): {}", failures_, answer.cause, why);
  }
  if (failures_ >= options_.failuresBeforeUnready) {
    health_.setBackendFailing(true, answer.cause + ": " + answer.detail);
  }
  std::chrono::milliseconds wait = nextBackoff();
  if (answer.retryAfter) {
    wait = std::max<std::chrono::milliseconds>(wait, std::min(*answer.retryAfter, kMaxRetryAfter));
  }
  waitUntil(std::chrono::steady_clock::now() + wait, [] { return false; });
}

// Between half and all of the current back-off, which then doubles up to Backend:RetryMaxSeconds.
std::chrono::milliseconds DispatcherImpl::nextBackoff() {
  const auto full = std::chrono::duration_cast<std::chrono::milliseconds>(backoff_);
  std::uniform_int_distribution<std::int64_t> pick(full.count() / 2, full.count());
  backoff_ = std::min(backoff_ * 2, options_.retryMax);
  return std::chrono::milliseconds(pick(random_));
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
  auto expired = queue_->expireOlderThan(now - options_.retentionNanos);
  if (!expired) {
    spdlog::warn("backend: cannot apply the retention to undelivered records: {}",
                 expired.error().message);
    return;
  }
  if (expired->records == 0) return;
  {
    std::lock_guard lock(mu_);
    backlog_.records = std::max<std::int64_t>(backlog_.records - expired->records, 0);
    backlog_.bytes = std::max<std::int64_t>(backlog_.bytes - expired->bytes, 0);
    metrics_.setBackendBacklog(backlog_.records, backlog_.bytes);
  }
  metrics_.countBackendExpired(expired->records);
  spdlog::warn("backend: {} records from {} to {} reached the retention before the backend "
               "accepted them and were deleted; an agent.gap record tells the backend",
               expired->records, formatRfc3339Nanos(expired->oldest),
               formatRfc3339Nanos(expired->newest));
  // Its time is now, not the span's: the retention must not delete the record at once.
  Record gap = gapRecord(GapFacts{expired->oldest, expired->newest,
                                  "backend delivery: records deleted by the retention "
                                  "(EventBuffer:RetentionHours) before the backend accepted them",
                                  expired->records},
                         now, now);
  recorder_->submit(std::move(gap));
}

}  // namespace

Result<void> checkBackendFiles(const DispatcherOptions& options) {
  if (!options.enabled()) return okResult();
  auto client = BackendClient::create(options.backend);
  if (!client) return client.error();
  return okResult();
}

Result<std::unique_ptr<Dispatcher>> Dispatcher::create(const DispatcherOptions& options,
                                                       Clock& clock, Metrics& metrics,
                                                       HealthState& health) {
  auto client = BackendClient::create(options.backend);
  if (!client) return client.error();
  return std::unique_ptr<Dispatcher>(
      new DispatcherImpl(options, std::move(*client), clock, metrics, health));
}

}  // namespace zastava
