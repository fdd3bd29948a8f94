// Backend delivery (docs/backend.md): one thread sends the ledger's records to
// Backend:Url in order, in batches bounded by count, bytes and time, and moves the delivery
// cursor only after a 2xx, so every record arrives at least once. Failures are retried with a
// capped, jittered back-off (Retry-After honoured); a batch the backend rejects is quarantined;
// undelivered records the retention deletes are counted and announced by an agent.gap record.
// Readiness fails after Backend:FailuresBeforeUnready failed attempts in a row.
//
// It reads the ledger through buffer/'s DeliveryLedger (a SQLite connection of its own), learns
// of commits through the DeliveryBacklog the Recorder tells, and writes its agent.gap records to
// a RecordSink (the Recorder). It sends through a DeliveryTransport (delivery/transport.h):
// HTTP or NATS JetStream, by Backend:Url's scheme. Made in this order: the transport (checks the
// files), DeliveryBacklog, Recorder, Dispatcher.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "buffer/record_sink.h"
#include "buffer/recorder.h"  // BufferLimits
#include "common/clock.h"
#include "common/result.h"
#include "delivery/backend_client.h"
#include "delivery/delivery_backlog.h"
#include "delivery/nats_transport.h"
#include "delivery/transport.h"

namespace zastava {

class HealthState;
class Metrics;

// The defaults of Backend:BatchMaxRecords, BatchMaxKb, BatchMaxWaitMs, RetryMaxSeconds and
// FailuresBeforeUnready (Config starts from these).
inline constexpr int kDefaultBatchMaxRecords = 1000;
inline constexpr int kDefaultBatchMaxKb = 1024;
inline constexpr std::chrono::milliseconds kDefaultBatchMaxWait{1000};
inline constexpr std::chrono::seconds kDefaultRetryMax{60};
inline constexpr int kDefaultFailuresBeforeUnready = 3;

struct DispatcherOptions {
  BackendClientOptions backend;  // an empty url: delivery is off
  NatsTransportOptions nats;     // used when backend.url names NATS servers (urls is taken from it)
  std::size_t batchMaxRecords = kDefaultBatchMaxRecords;
  std::size_t batchMaxBytes = std::size_t{kDefaultBatchMaxKb} * 1024;
  std::chrono::milliseconds batchMaxWait = kDefaultBatchMaxWait;
  std::chrono::seconds retryMax = kDefaultRetryMax;
  int failuresBeforeUnready = kDefaultFailuresBeforeUnready;
  std::filesystem::path dataDirectory;  // the ledger's; backend-quarantine/ goes there too
  std::int64_t retentionNanos = BufferLimits{}.retentionNanos;  // EventBuffer:RetentionHours

  bool enabled() const { return !backend.url.empty(); }
};

// The transport options.backend.url names: a NatsTransport for nats:// and tls:// URLs, else a
// BackendClient. Checks that their files can be read and the credentials are not empty.
// Errors: kInvalidArgument naming the key ("Backend:TokenFile /etc/...: cannot be read"). Any
// thread.
Result<std::unique_ptr<DeliveryTransport>> makeTransport(const DispatcherOptions& options);

class Dispatcher {
 public:
  // Opens its own connection to the ledger the Recorder opened (options.dataDirectory), sets
  // `backlog` to the records after the cursor and starts the delivery thread, which sends with
  // `transport`, waits on `backlog` and submits the agent.gap records of expired records to `gaps`.
  // Call it before anything is submitted to the Recorder; `backlog` and `gaps` must outlive the
  // Dispatcher. Errors: kIo naming the database; kInternal when the thread cannot start. Main
  // thread.
  static Result<std::unique_ptr<Dispatcher>> start(const DispatcherOptions& options,
                                                   std::unique_ptr<DeliveryTransport> transport,
                                                   DeliveryBacklog& backlog, RecordSink& gaps,
                                                   Clock& clock, Metrics& metrics,
                                                   HealthState& health);
  virtual ~Dispatcher() = default;

  // Cancels a request in flight, closes the backlog and joins the thread; the records not
  // delivered stay in the ledger for the next start. Idempotent. Main thread.
  virtual void stop() = 0;
};

}  // namespace zastava
