// The delivery backlog: how many records, and NDJSON bytes, wait after the delivery cursor. The
// Recorder's writer adds each commit (this is its CommitObserver); the delivery thread takes
// away what the backend accepted, what was quarantined and what the retention expired, and
// waits here for more records or for close(). It is made before the Recorder and the
// Dispatcher, so that each is constructed with everything it needs. Every change sets
// zastava_agent_backend_backlog_records and _bytes. Thread-safe.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <mutex>

#include "buffer/commit_observer.h"
#include "buffer/delivery_ledger.h"
#include "common/clock.h"

namespace zastava {

class Metrics;

class DeliveryBacklog final : public CommitObserver {
 public:
  explicit DeliveryBacklog(Metrics& metrics) : metrics_(metrics) {}
  DeliveryBacklog(const DeliveryBacklog&) = delete;
  DeliveryBacklog& operator=(const DeliveryBacklog&) = delete;

  // Adds committed records and wakes the delivery thread: they may complete a batch. Writer
  // thread.
  void recordsCommitted(std::size_t records, std::uint64_t bytes) override;

  // Replaces the counts with what the ledger holds after the cursor: once, when delivery
  // starts, before anything is submitted to the Recorder. Any thread.
  void set(Backlog counted);

  // Takes away `records` records of `bytes` bytes (never below 0). Any thread.
  void remove(std::int64_t records, std::int64_t bytes);

  // The current counts. Any thread.
  Backlog current() const;

  // Waits until `deadline` on `clock`, close(), or `ready(current counts)` is true (called with
  // the lock held, on the waiting thread). False once closed. The delivery thread.
  template <typename Ready>
  bool waitUntil(const Clock& clock, MonoTime deadline, Ready ready) {
    std::unique_lock lock(mu_);
    clock.waitUntil(lock, wake_, deadline, [&] { return closed_ || ready(counts_); });
    return !closed_;
  }

  // Ends every wait, now and later: delivery is stopping. Idempotent. Any thread.
  void close();
  bool closed() const;

 private:
  void report();  // under mu_

  Metrics& metrics_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  Backlog counts_;       // guarded by mu_
  bool closed_ = false;  // guarded by mu_
};

}  // namespace zastava
