// Process and loaded-library evidence of running containers, off the event path. The enricher
// asks for a scan when a container starts (and when reconciliation finds one running whose
// process has no evidence yet) and goes on at once: a small pool of "zastava-scan" threads
// reads /proc under the configured root, hashes executables and libraries through a host-wide
// cache, and submits one container.evidence record per scan to the Recorder. Each first scan
// schedules one re-scan after a delay, which catches libraries loaded after start (dlopen).
// The queue is bounded: a request that does not fit is dropped and counted, never waited for,
// so lifecycle records are never delayed by evidence.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "agent/redaction.h"
#include "buffer/record.h"
#include "collectors/procfs/file_hasher.h"
#include "collectors/procfs/process_evidence.h"
#include "common/clock.h"
#include "posture/policy.h"

namespace zastava {

class Metrics;
class PostureCensus;
class Recorder;

// The defaults of Evidence:ProcRoot, Evidence:Workers and Evidence:RescanSeconds (Config starts
// from these; the limits' are in collectors/procfs/process_evidence.h).
inline constexpr std::string_view kDefaultProcRoot = "/proc";
inline constexpr int kDefaultEvidenceWorkers = 2;
inline constexpr std::chrono::seconds kDefaultRescanDelay{30};

struct EvidenceOptions {
  std::string procRoot{kDefaultProcRoot};
  int workers = kDefaultEvidenceWorkers;  // 0: no evidence is collected
  std::size_t queueCapacity = 1024;
  TreeOptions tree;  // maxProcesses and maxExeBytes; expectedContainerId is set per scan
  LibraryLimits libraries;
  std::chrono::seconds rescanDelay = kDefaultRescanDelay;  // 0: no re-scan
  PosturePolicy posture;  // for the checks the processes decide (5.7)
};

// One scan to do: which container, its init pid as the engine reported it (0 when it was not
// running), and why.
struct EvidenceRequest {
  ContainerFacts container;  // identity only: id, name, image, image ID, pid, start time
  EvidenceScan scan = EvidenceScan::kStart;
  // What asked for the scan, which its record's source says: the start event's own source
  // (stream or replay), the first inventory of a new ledger (snapshot), or a reconciliation
  // (reconcile). A re-scan keeps the source of the scan it repeats.
  RecordSource source = RecordSource::kStream;
  // Times this scan found the container's init still starting (kStartRetries).
  int startAttempts = 0;
  std::string postureWaiver;  // the container's zastava.posture.ignore label, or empty
};

// The engine reports a start before the runtime's init has exec'd the container's program. A
// scan that finds the init still the runtime's (runc names it "runc:[2:INIT]"), in the middle
// of its exec (no command line yet), or with the dynamic loader still mapping its libraries
// (only the program and the loader mapped) is done again kStartRetryDelay later, up to
// kStartRetries times; then its record says so.
inline constexpr int kStartRetries = 20;
inline constexpr std::chrono::milliseconds kStartRetryDelay{50};

// The reason the scanned init has not started the container's program yet, or "" when it has
// (or when nothing of it was read). Any thread.
std::string initStillStarting(const EvidenceFacts& evidence);

// The request for a scan of the container `facts` describe, keeping only its identity: evidence
// says what ran, the lifecycle records say what state the container is in. Any thread.
EvidenceRequest evidenceRequest(const ContainerFacts& facts, EvidenceScan scan,
                                RecordSource source);

// Reads one container's evidence from procfs: its process tree (init first; command lines
// redacted) and the libraries the whole tree maps. Never fails: what could not be read is in
// the result's status and reason. Any thread.
EvidenceFacts collectEvidence(const ProcfsReader& reader, const EvidenceRequest& request,
                              const EvidenceOptions& options, const Redactor& redactor);

// The container.evidence record of a scan observed at `observedAt`, with the findings of the
// posture checks its processes decide. Any thread.
Record evidenceRecord(const EvidenceRequest& request, EvidenceFacts evidence, UnixNanos observedAt,
                      const PosturePolicy& posture);

class EvidenceCollector {
 public:
  // Each record is told to `census` before the Recorder.
  EvidenceCollector(Recorder& recorder, PostureCensus& census, Metrics& metrics, const Clock& clock,
                    const Redactor& redactor, EvidenceOptions options);
  ~EvidenceCollector();
  EvidenceCollector(const EvidenceCollector&) = delete;
  EvidenceCollector& operator=(const EvidenceCollector&) = delete;

  // Starts the workers (none when options.workers is 0). Main thread, once.
  void start();
  // Stops and joins the workers after the scans in progress; scans still queued are not done
  // (logged: the reconciliation at the next start scans every running container). Idempotent.
  // Main thread.
  void stop();

  // Queues a scan. Never blocks. Returns false when evidence is off, after stop(), or when the
  // queue is full: the scan is dropped and counted in
  // zastava_agent_events_dropped_total{reason="evidence_queue_full"}. Any thread.
  bool request(EvidenceRequest request);

 private:
  using Due = MonoTime;  // on clock_
  bool schedule(Due due, EvidenceRequest request);
  void runWorker();
  void scan(const EvidenceRequest& request);
  void reportHashing();
  void countCaps(const EvidenceFacts& evidence);

  Recorder& recorder_;
  PostureCensus& census_;
  Metrics& metrics_;
  const Clock& clock_;
  const Redactor& redactor_;
  const EvidenceOptions options_;
  FileHashCache cache_;
  ProcfsReader reader_;

  std::mutex mu_;
  std::condition_variable wake_;
  std::multimap<Due, EvidenceRequest> pending_;  // guarded by mu_
  bool stopping_ = false;                        // guarded by mu_
  bool queueFullWarned_ = false;                 // guarded by mu_
  bool unavailableWarned_ = false;               // guarded by mu_

  std::mutex statsMu_;
  FileHashStats reported_;  // guarded by statsMu_: the cache counters already in metrics

  std::vector<std::thread> workers_;
};

}  // namespace zastava
