// What /readyz and /livez answer, kept in one place. Pipeline threads report facts; the HTTP
// thread reads verdicts. Reporting a fact also updates the matching gauge in Metrics, so the
// gauges and the probes can never disagree. Any thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "common/clock.h"

namespace zastava {

class Metrics;

// The threads that move events to disk. Each says when it takes a piece of work and when it
// goes back to waiting for more, so a thread stuck on one piece (a hung fsync, a deadlock) shows.
enum class Worker { kStream, kEnricher, kWriter };
inline constexpr std::size_t kWorkerCount = 3;

// Longer than any piece of work that waits on something bounded: an engine request (30 s), an
// inventory (stops at the first failed request), a full queue (1 s).
inline constexpr std::chrono::seconds kDefaultStallLimit{90};

struct Verdict {
  bool ok = false;
  std::string reason;  // short plain text: "ok", or what is wrong
};

class HealthState {
 public:
  // Stalls are measured on `clock`'s monotonic time; `clock` must outlive the HealthState.
  HealthState(Metrics& metrics, const Clock& clock,
              std::chrono::nanoseconds stallLimit = kDefaultStallLimit);
  HealthState(const HealthState&) = delete;
  HealthState& operator=(const HealthState&) = delete;

  // The engine answered (true) or a request/stream failed (false, with why).
  void setEngineReachable(bool reachable, const std::string& reason = {});
  // The last group commit succeeded (true) or failed (false, with why: "disk full: ...").
  void setBufferWritable(bool writable, const std::string& reason = {});
  // The first inventory after start is done (true): records can now be trusted to be complete;
  // or it failed (false, with why) and is being retried.
  void setInventoryDone(bool done = true, const std::string& reason = {});
  // Backend delivery failed too many times in a row (true, with why), or works (false).
  void setBackendFailing(bool failing, const std::string& reason = {});
  // `worker` took a piece of work / went back to waiting for work. Lock-free.
  void working(Worker worker);
  void waiting(Worker worker);

  // 200 when events can be processed: inventory done, engine reachable, buffer writable, backend
  // (when configured) not failing.
  Verdict readiness() const;
  // 200 unless a worker has been on one piece of work for longer than the stall limit. systemd's
  // watchdog is fed only while this is ok.
  Verdict liveness() const;

 private:
  std::int64_t ticks() const;  // the clock's monotonic time, in nanoseconds; at least 1

  Metrics& metrics_;
  const Clock& clock_;
  mutable std::mutex mu_;
  bool engineReachable_ = false;                                  // guarded by mu_
  std::string engineReason_ = "docker engine not contacted yet";  // guarded by mu_
  bool bufferWritable_ = true;                                    // guarded by mu_
  std::string bufferReason_;                                      // guarded by mu_
  bool inventoryDone_ = false;                                    // guarded by mu_
  std::string inventoryReason_ = "starting: first container inventory not done yet";  // mu_
  bool backendFailing_ = false;  // guarded by mu_
  std::string backendReason_;    // guarded by mu_
  const std::chrono::nanoseconds stallLimit_;
  // Per worker: when it took its current piece of work (ticks()); 0 while waiting.
  std::array<std::atomic<std::int64_t>, kWorkerCount> workingSince_{};
};

}  // namespace zastava
