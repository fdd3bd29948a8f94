// Backend delivery (docs/backend.md): one thread sends the ledger's records to
// Backend:Url in order, in batches bounded by count, bytes and time, and moves the delivery
// cursor only after a 2xx, so every record arrives at least once. Failures are retried with a
// capped, jittered back-off (Retry-After honoured); a batch the backend rejects is quarantined;
// undelivered records the retention deletes are counted and announced by an agent.gap record.
// Readiness fails after Backend:FailuresBeforeUnready failed attempts in a row.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "buffer/backend_client.h"
#include "common/clock.h"
#include "common/result.h"

namespace zastava {

class HealthState;
class Metrics;
class Recorder;

struct DispatcherOptions {
  BackendClientOptions backend;  // an empty url: delivery is off
  std::size_t batchMaxRecords = 1000;
  std::size_t batchMaxBytes = 1024 * 1024;
  std::chrono::milliseconds batchMaxWait{1000};
  std::chrono::seconds retryMax{60};
  int failuresBeforeUnready = 3;
  std::filesystem::path dataDirectory;  // the ledger's; backend-quarantine/ goes there too
  std::int64_t retentionNanos = 24ll * 3600 * 1'000'000'000;

  bool enabled() const { return !backend.url.empty(); }
};

// Whether the token, CA and client certificate files can be read and the token is not empty.
// Errors: kInvalidArgument naming the key ("Backend:TokenFile /etc/...: cannot be read"). Any
// thread.
Result<void> checkBackendFiles(const DispatcherOptions& options);

class Dispatcher {
 public:
  // Checks the token, CA and client certificate files (kInvalidArgument naming the key). Does
  // not touch the ledger yet. Main thread.
  static Result<std::unique_ptr<Dispatcher>> create(const DispatcherOptions& options, Clock& clock,
                                                    Metrics& metrics, HealthState& health);
  virtual ~Dispatcher() = default;

  // The Recorder's writer made `records` records (`bytes` NDJSON bytes) durable: they join the
  // backlog and may complete a batch. Any thread; also before start().
  virtual void recordsCommitted(std::size_t records, std::uint64_t bytes) = 0;

  // Opens its own connection to the ledger the Recorder opened, counts the backlog and starts
  // the delivery thread. Call it before anything is submitted to `recorder`, which receives the
  // agent.gap records of expired records. Errors: kIo naming the database; kInternal when the
  // thread cannot start. Main thread.
  virtual Result<void> start(Recorder& recorder) = 0;

  // Cancels a request in flight and joins the thread; the backlog stays in the ledger for the
  // next start. Idempotent. Main thread.
  virtual void stop() = 0;
};

}  // namespace zastava
