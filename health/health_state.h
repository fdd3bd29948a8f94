// What /readyz and /livez answer, kept in one place. Pipeline threads report facts; the HTTP
// thread reads verdicts. Reporting a fact also updates the matching gauge in Metrics, so the
// gauges and the probes can never disagree. Any thread.
#pragma once

#include <mutex>
#include <string>

namespace zastava {

class Metrics;

struct Verdict {
  bool ok = false;
  std::string reason;  // short plain text: "ok", or what is wrong
};

class HealthState {
 public:
  explicit HealthState(Metrics& metrics);
  HealthState(const HealthState&) = delete;
  HealthState& operator=(const HealthState&) = delete;

  // The engine answered (true) or a request/stream failed (false, with why).
  void setEngineReachable(bool reachable, const std::string& reason = {});
  // The last group commit succeeded (true) or failed (false, with why: "disk full: ...").
  void setBufferWritable(bool writable, const std::string& reason = {});
  // The first inventory after start is done (true): records can now be trusted to be complete;
  // or it failed (false, with why) and is being retried.
  void setInventoryDone(bool done = true, const std::string& reason = {});
  // A critical subsystem stopped for good (writer thread died, ...): liveness fails.
  void setFailed(const std::string& subsystem, const std::string& reason);

  // 200 when events can be processed: inventory done, engine reachable, buffer writable.
  Verdict readiness() const;
  // 200 unless a critical subsystem has failed.
  Verdict liveness() const;

 private:
  Metrics& metrics_;
  mutable std::mutex mu_;
  bool engineReachable_ = false;                                  // guarded by mu_
  std::string engineReason_ = "docker engine not contacted yet";  // guarded by mu_
  bool bufferWritable_ = true;                                    // guarded by mu_
  std::string bufferReason_;                                      // guarded by mu_
  bool inventoryDone_ = false;                                    // guarded by mu_
  std::string inventoryReason_ = "starting: first container inventory not done yet";  // mu_
  std::string failure_;  // guarded by mu_; empty while alive
};

}  // namespace zastava
