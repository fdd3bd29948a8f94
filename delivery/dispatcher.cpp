#include "delivery/dispatcher.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <system_error>
#include <thread>

#include "buffer/delivery_ledger.h"
#include "buffer/ledger_entry.h"
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

class DispatcherImpl final : public Dispatcher {
 public:
  DispatcherImpl(const DispatcherOptions& options, std::unique_ptr<DeliveryTransport> transport,
                 std::unique_ptr<DeliveryLedger> ledger, DeliveryBacklog& backlog, RecordSink& gaps,
                 Clock& clock, Metrics& metrics, HealthState& health)
      : options_(options),
        transport_(std::move(transport)),
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
  bool catchUpWithDestination();
  std::int64_t rowidOfDestinationsLast(const std::string& line);
  void deliver(const PendingBatch& batch);
  void accepted(const PendingBatch& batch, const BackendAnswer& answer);
  void failed(const BackendAnswer& answer);
  void backendAnswered();
  void quarantine(const PendingBatch& batch, const BackendAnswer& answer);
  void moveCursorPast(const PendingBatch& batch, std::size_t records);
  void expireIfDue();
  void reportHead(const PendingBatch& batch);
  bool sendNow(const PendingBatch& batch);
  // Waits `wait` on the clock, or until stop().
  void sleepFor(std::chrono::milliseconds wait);
  bool batchWouldBeFull(const Backlog& backlog) const;

  const DispatcherOptions options_;
  std::unique_ptr<DeliveryTransport> transport_;
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
  // The destination keeps the position and it must be read before the next batch: at start
  // and after every failure.
  bool positionUnknown_ = true;
  MonoTime headSeenAt_;          // on clock_
  std::string ledgerError_;      // the current ledger read error, empty when none
  bool positionWarned_ = false;  // the destination lost records: said once
  UnixNanos lastExpiry_ = 0;
};

void DispatcherImpl::sleepFor(std::chrono::milliseconds wait) {
  backlog_.waitUntil(clock_, clock_.monotonic() + wait, [](const Backlog&) { return false; });
}

void DispatcherImpl::run() {
  nameThisThread("zastava-deliver");
  while (!backlog_.closed()) {
    expireIfDue();
    if (positionUnknown_ && transport_->keepsPosition() && !catchUpWithDestination()) continue;
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

// Reads where the destination says this host's records stand and moves the cursor past what it
// holds. False after a failure (backed off) or a stop.
bool DispatcherImpl::catchUpWithDestination() {
  const PositionAnswer position = transport_->position(cancel_);
  if (position.answer.verdict == DeliveryVerdict::kStopped) return false;
  if (position.answer.verdict != DeliveryVerdict::kAccepted) {
    failed(position.answer);
    return false;
  }
  if (position.resentOutOfOrder > 0) {
    metrics_.countBackendResentOutOfOrder(position.resentOutOfOrder);
  }
  const std::int64_t cursor = ledger_->cursor();
  if (!position.lastRecord) {
    if (cursor > 0 && !positionWarned_) {
      spdlog::warn(
          "backend: {} holds no record of this host, though the ledger says records up to rowid "
          "{} were delivered (the stream was purged, or its limits deleted them); they are not "
          "sent again",
          transport_->describe(), cursor);
      positionWarned_ = true;
    }
    positionUnknown_ = false;
    return true;
  }
  const std::int64_t held = rowidOfDestinationsLast(*position.lastRecord);
  if (held < 0) return false;
  if (held < cursor && !positionWarned_) {
    spdlog::warn(
        "backend: the last record {} holds of this host is older than the delivery cursor (the "
        "stream lost newer ones: purged, or deleted by its limits); they are not sent again",
        transport_->describe());
    positionWarned_ = true;
  }
  auto skipped = ledger_->skipTo(held);
  if (!skipped) {
    spdlog::warn("backend: cannot move the delivery cursor to what {} holds: {}",
                 transport_->describe(), skipped.error().message);
    sleepFor(backoff_.next());
    return false;
  }
  if (skipped->records > 0) {
    backlog_.remove(skipped->records, skipped->bytes);
    spdlog::info(
        "backend: {} already holds {} records after the delivery cursor; delivery goes "
        "on after them",
        transport_->describe(), skipped->records);
  }
  positionUnknown_ = false;
  return true;
}

// The rowid of the destination's last record in the ledger. When the ledger does not hold it
// (the database was restored from an older copy, or the retention deleted it), the records
// right after the cursor that are not newer than it are taken as held. -1 when the ledger
// cannot be read (backed off).
std::int64_t DispatcherImpl::rowidOfDestinationsLast(const std::string& line) {
  const ledger::Entry last = ledger::parseEntry(line);
  if (!last.record || !last.timeNanos) {
    spdlog::warn(
        "backend: the last message of {} is not a record of this agent; delivery goes "
        "on after the cursor",
        transport_->describe());
    return ledger_->cursor();
  }
  auto found = ledger_->rowidOf(last.eventId, *last.timeNanos);
  if (found && *found) return **found;
  auto notNewer =
      found ? ledger_->lastNotNewerThan(*last.timeNanos) : Result<std::int64_t>(found.error());
  if (!notNewer) {
    spdlog::warn("backend: cannot read the ledger to find where delivery stands: {}",
                 notNewer.error().message);
    sleepFor(backoff_.next());
    return -1;
  }
  if (*notNewer > ledger_->cursor()) {
    spdlog::warn(
        "backend: the last record {} holds of this host (eventId {}, {}) is not in the ledger "
        "(the database was restored from an older copy?); the undelivered records not newer "
        "than it are taken as delivered",
        transport_->describe(), last.eventId, last.time);
  }
  return *notNewer;
}

void DispatcherImpl::deliver(const PendingBatch& batch) {
  const MonoTime sent = clock_.monotonic();
  const BackendAnswer answer = transport_->send(batch, cancel_);
  if (answer.delivered > 0 && answer.verdict != DeliveryVerdict::kAccepted) {
    moveCursorPast(batch, answer.delivered);
    metrics_.countBackendDelivered(answer.delivered, 0);
  }
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

// Moves the cursor past the first `records` of `batch`.
void DispatcherImpl::moveCursorPast(const PendingBatch& batch, std::size_t records) {
  const BatchRecord& last = batch.rows[records - 1];
  if (auto stored = ledger_->markDelivered(last.rowid); !stored) {
    spdlog::warn(
        "backend: delivered, but the delivery cursor was not stored ({}); a restart "
        "sends these records again",
        stored.error().message);
  }
  backlog_.remove(static_cast<std::int64_t>(records),
                  static_cast<std::int64_t>(last.offset + last.length + 1));
}

void DispatcherImpl::accepted(const PendingBatch& batch, const BackendAnswer& answer) {
  moveCursorPast(batch, batch.records);
  metrics_.countBackendDelivered(batch.records, answer.sentBytes);
  backendAnswered();
  backoff_.reset();
}

void DispatcherImpl::failed(const BackendAnswer& answer) {
  positionUnknown_ = true;
  metrics_.countBackendFailure(answer.cause);
  metrics_.setBackendConsecutiveFailures(++failures_);
  const std::string why = answer.detail + (answer.bodyStart.empty() ? "" : ": " + answer.bodyStart);
  if (failures_ == 1) {
    const auto level =
        answer.verdict == DeliveryVerdict::kRefused ? spdlog::level::err : spdlog::level::warn;
    spdlog::log(level,
                "backend: delivery to {} failed ({}): {}; retrying with back-off, records stay "
                "in the buffer",
                transport_->describe(), answer.cause, why);
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
  moveCursorPast(batch, batch.records);
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

Result<std::unique_ptr<DeliveryTransport>> makeTransport(const DispatcherOptions& options) {
  if (isNatsUrl(options.backend.url)) {
    NatsTransportOptions nats = options.nats;
    nats.urls = options.backend.url;
    auto transport = NatsTransport::create(nats);
    if (!transport) return transport.error();
    return std::unique_ptr<DeliveryTransport>(std::move(*transport));
  }
  auto client = BackendClient::create(options.backend);
  if (!client) return client.error();
  return std::unique_ptr<DeliveryTransport>(std::move(*client));
}

Result<std::unique_ptr<Dispatcher>> Dispatcher::start(const DispatcherOptions& options,
                                                      std::unique_ptr<DeliveryTransport> transport,
                                                      DeliveryBacklog& backlog, RecordSink& gaps,
                                                      Clock& clock, Metrics& metrics,
                                                      HealthState& health) {
  auto ledger = DeliveryLedger::open(options.dataDirectory / kDatabaseFileName);
  if (!ledger) return ledger.error();
  auto counted = (*ledger)->backlog();
  if (!counted) return counted.error();
  backlog.set(*counted);
  spdlog::info("backend: delivering to {}; {} records ({} bytes) waiting", transport->describe(),
               counted->records, counted->bytes);
  auto dispatcher = std::make_unique<DispatcherImpl>(
      options, std::move(transport), std::move(*ledger), backlog, gaps, clock, metrics, health);
  auto started = dispatcher->startThread();
  if (!started) return started.error();
  return std::unique_ptr<Dispatcher>(std::move(dispatcher));
}

}  // namespace zastava
