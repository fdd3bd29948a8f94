#include "health/metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <atomic>
#include <chrono>

#include "common/result.h"

namespace zastava {

namespace {

prometheus::Family<prometheus::Gauge>& gauge(prometheus::Registry& registry, const char* name,
                                             const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<prometheus::Counter>& counter(prometheus::Registry& registry, const char* name,
                                                 const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

// Group commits take from ~100 us (tmpfs) to seconds (a struggling disk).
const prometheus::Histogram::BucketBoundaries kCommitBuckets = {
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};

// A scan takes from ~1 ms (cached hashes) to seconds (hundreds of MB of libraries, cold).
const prometheus::Histogram::BucketBoundaries kEvidenceBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

// The engine answers an inspect in ~1 ms, or once the container's start or clean-up is over, or
// never (the request timeout, 30 s).
const prometheus::Histogram::BucketBoundaries kInspectBuckets = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30};

// A backend answers in ~1 ms on a LAN to the request timeout (30 s by default).
const prometheus::Histogram::BucketBoundaries kBackendBuckets = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

}  // namespace

struct Metrics::Impl {
  prometheus::Registry registry;

  prometheus::Gauge& dockerConnected =
      gauge(registry, "zastava_agent_docker_connected",
            "1 when the Docker engine answered the last request and the event stream is open")
          .Add({});
  prometheus::Gauge& bufferWritable =
      gauge(registry, "zastava_agent_buffer_writable",
            "1 when the last group commit to the event buffer succeeded")
          .Add({});
  prometheus::Gauge& eventsBuffered =
      gauge(registry, "zastava_agent_events_buffered", "Records held in the SQLite event buffer")
          .Add({});
  prometheus::Family<prometheus::Counter>& events =
      counter(registry, "zastava_agent_events_total", "Records made durable, by kind and source");
  prometheus::Counter& reconnects =
      counter(registry, "zastava_agent_stream_reconnects_total",
              "Times the engine event stream was reopened after it failed")
          .Add({});
  prometheus::Family<prometheus::Counter>& engineErrors =
      counter(registry, "zastava_agent_engine_errors_total",
              "Failed engine requests and undecodable engine JSON, by kind");
  prometheus::Counter& eventQueueOverflows =
      counter(registry, "zastava_agent_event_queue_overflows_total",
              "Times the queue between the event stream and the enricher was full, so the stream "
              "was closed and reopened from the last event queued")
          .Add({});
  prometheus::Family<prometheus::Counter>& dropped =
      counter(registry, "zastava_agent_events_dropped_total",
              "Records lost before they were buffered, by reason");
  prometheus::Counter& duplicates =
      counter(registry, "zastava_agent_duplicates_suppressed_total",
              "Engine events not written twice: received again (replay after a reconnect), or "
              "a destroy a reconciliation wrote first")
          .Add({});
  prometheus::Counter& bytesWritten = counter(registry, "zastava_agent_buffer_written_bytes_total",
                                              "Bytes appended to NDJSON segments")
                                          .Add({});
  prometheus::Counter& rotations =
      counter(registry, "zastava_agent_buffer_rotations_total", "NDJSON segments sealed").Add({});
  prometheus::Family<prometheus::Counter>& segmentsDeleted =
      counter(registry, "zastava_agent_buffer_segments_deleted_total",
              "NDJSON segments deleted by the size cap or the retention, by reason");
  prometheus::Gauge& bufferBytes =
      gauge(registry, "zastava_agent_buffer_bytes", "Bytes of NDJSON segments on disk").Add({});
  prometheus::Gauge& bufferMaxBytes =
      gauge(registry, "zastava_agent_buffer_max_bytes",
            "Cap on the bytes of NDJSON segments; the oldest are deleted beyond it")
          .Add({});
  prometheus::Gauge& queueDepth =
      gauge(registry, "zastava_agent_buffer_queue_depth", "Records waiting for the writer thread")
          .Add({});
  prometheus::Histogram& commitDuration =
      prometheus::BuildHistogram()
          .Name("zastava_agent_buffer_commit_duration_seconds")
          .Help("Duration of one group commit to SQLite and NDJSON, fsync included")
          .Register(registry)
          .Add({}, kCommitBuckets);
  prometheus::Gauge& lastEventTimestamp =
      gauge(registry, "zastava_agent_last_event_timestamp_seconds",
            "Engine time of the newest durable engine event, seconds since the epoch")
          .Add({});
  prometheus::Counter& gaps =
      counter(registry, "zastava_agent_gaps_total",
              "Spans in which engine events may be missing from the ledger (agent.gap records)")
          .Add({});
  prometheus::Counter& seals =
      counter(registry, "zastava_agent_seals_total", "agent.seal records committed").Add({});
  prometheus::Gauge& lastSealTimestamp =
      gauge(registry, "zastava_agent_last_seal_timestamp_seconds",
            "Time of the newest committed seal, seconds since the epoch; 0 before the first")
          .Add({});
  prometheus::Gauge& sealEpoch =
      gauge(registry, "zastava_agent_seal_epoch", "Epoch of the newest committed seal").Add({});
  prometheus::Gauge& sealSeedsOnHost =
      gauge(registry, "zastava_agent_seal_seeds_on_host",
            "Sealing seed files still in the data directory; whoever reads one can forge seals")
          .Add({});
  prometheus::Family<prometheus::Counter>& sealKeyChanges =
      counter(registry, "zastava_agent_seal_key_changes_total",
              "agent.seal-key records, by change: new, lost, rewound, ahead");
  prometheus::Counter& sealKeyWriteFailures =
      counter(registry, "zastava_agent_seal_key_write_failures_total",
              "Failed overwrites of the sealing key file with the next epoch's key")
          .Add({});
  prometheus::Family<prometheus::Counter>& reconciled =
      counter(registry, "zastava_agent_reconciled_transitions_total",
              "Container transitions the engine did not deliver, written by reconciliation");
  prometheus::Family<prometheus::Counter>& audits =
      counter(registry, "zastava_agent_audits_total",
              "Periodic audits of the ledger against the engine's container list, by result");
  prometheus::Counter& auditDisagreements =
      counter(registry, "zastava_agent_audit_disagreements_total",
              "Containers an audit found the ledger disagreeing with the engine about")
          .Add({});
  prometheus::Family<prometheus::Counter>& inspects =
      counter(registry, "zastava_agent_inspects_total",
              "Inspects of created and started containers, by result: complete, gone (the "
              "container was removed first) or failed (the engine did not answer)");
  prometheus::Histogram& inspectDuration =
      prometheus::BuildHistogram()
          .Name("zastava_agent_inspect_duration_seconds")
          .Help("Duration of one inspect of a created or started container, retries included")
          .Register(registry)
          .Add({}, kInspectBuckets);
  prometheus::Family<prometheus::Gauge>& postureFailing =
      gauge(registry, "zastava_agent_posture_failing_containers",
            "Running containers whose latest posture findings fail the check (CIS Docker "
            "Benchmark id), waived ones not counted");
  prometheus::Family<prometheus::Counter>& postureCriticalStarts =
      counter(registry, "zastava_agent_posture_critical_starts_total",
              "Container starts that failed the posture check while its severity is critical");
  prometheus::Family<prometheus::Gauge>& cursorLag =
      gauge(registry, "zastava_agent_cursor_lag_seconds",
            "Seconds between now and the engine time of the last durable engine event");
  std::atomic<double> lastEventSeconds{0};
  prometheus::Gauge& containers =
      gauge(registry, "zastava_agent_containers", "Containers the agent currently tracks").Add({});
  prometheus::Family<prometheus::Counter>& evidenceScans =
      counter(registry, "zastava_agent_evidence_scans_total",
              "Process and library evidence scans of containers, by scan and status");
  prometheus::Histogram& evidenceScanDuration =
      prometheus::BuildHistogram()
          .Name("zastava_agent_evidence_scan_duration_seconds")
          .Help("Duration of one container evidence scan, hashing included")
          .Register(registry)
          .Add({}, kEvidenceBuckets);
  prometheus::Counter& evidenceHashedBytes =
      counter(registry, "zastava_agent_evidence_hashed_bytes_total",
              "Bytes read to hash container executables and libraries")
          .Add({});
  prometheus::Counter& evidenceCacheHits =
      counter(registry, "zastava_agent_evidence_hash_cache_hits_total",
              "File hashes taken from the host-wide cache, no bytes read")
          .Add({});
  prometheus::Counter& evidenceCacheMisses =
      counter(registry, "zastava_agent_evidence_hash_cache_misses_total",
              "File hashes not in the cache")
          .Add({});
  prometheus::Family<prometheus::Counter>& evidenceCapsHit =
      counter(registry, "zastava_agent_evidence_caps_hit_total",
              "Evidence scans stopped short by a cap, by cap");
  prometheus::Gauge& evidenceQueueDepth =
      gauge(registry, "zastava_agent_evidence_queue_depth",
            "Evidence scans waiting for a worker, re-scans included")
          .Add({});
  prometheus::Counter& backendDeliveredRecords =
      counter(registry, "zastava_agent_backend_delivered_records_total",
              "Records accepted by the backend")
          .Add({});
  prometheus::Counter& backendDeliveredBatches =
      counter(registry, "zastava_agent_backend_delivered_batches_total",
              "Requests to the backend answered with 2xx")
          .Add({});
  prometheus::Counter& backendDeliveredBytes =
      counter(registry, "zastava_agent_backend_delivered_bytes_total",
              "Request body bytes accepted by the backend, after compression")
          .Add({});
  prometheus::Family<prometheus::Counter>& backendFailures =
      counter(registry, "zastava_agent_backend_failures_total",
              "Delivery attempts that were not accepted, by cause");
  prometheus::Counter& backendQuarantined =
      counter(registry, "zastava_agent_backend_quarantined_records_total",
              "Records of batches the backend rejected, set aside in backend-quarantine/")
          .Add({});
  prometheus::Counter& backendResentOutOfOrder =
      counter(registry, "zastava_agent_backend_resent_out_of_order_records_total",
              "Records a NATS stream lost while it stored later ones, published again after them")
          .Add({});
  prometheus::Counter& backendExpired =
      counter(registry, "zastava_agent_backend_expired_records_total",
              "Records the retention deleted before the backend accepted them")
          .Add({});
  prometheus::Gauge& backendBacklogRecords =
      gauge(registry, "zastava_agent_backend_backlog_records",
            "Records waiting for delivery to the backend")
          .Add({});
  prometheus::Gauge& backendBacklogBytes =
      gauge(registry, "zastava_agent_backend_backlog_bytes",
            "Bytes of the records waiting for delivery, before compression")
          .Add({});
  prometheus::Gauge& backendOldestAge =
      gauge(registry, "zastava_agent_backend_oldest_undelivered_age_seconds",
            "Seconds since the oldest record waiting for delivery was observed; 0 when none")
          .Add({});
  std::atomic<std::int64_t> backendOldestObservedAt{0};
  prometheus::Gauge& backendConsecutiveFailures =
      gauge(registry, "zastava_agent_backend_consecutive_failures",
            "Failed delivery attempts since the last accepted batch")
          .Add({});
  prometheus::Histogram& backendRequestDuration =
      prometheus::BuildHistogram()
          .Name("zastava_agent_backend_request_duration_seconds")
          .Help("Duration of one request to the backend, answered or not")
          .Register(registry)
          .Add({}, kBackendBuckets);
  prometheus::Counter& invariantFailures =
      counter(registry, "zastava_agent_invariant_failures_total",
              "Internal invariants found broken (bugs), each of which ended the agent; kept in "
              "the data directory across the restarts they cause")
          .Add({});
  prometheus::Family<prometheus::Gauge>& buildInfo =
      gauge(registry, "zastava_agent_build_info", "Always 1; labels say which build runs");
};

Metrics::Metrics(const BuildInfo& build) : impl_(std::make_unique<Impl>()) {
  impl_->buildInfo.Add({{"version", build.version}, {"git_commit", build.gitCommit}}).Set(1);
  // Every label value known in advance starts at 0, so rate() and alerts see a series from the
  // first scrape instead of nothing.
  for (auto code : {ErrorCode::kUnavailable, ErrorCode::kForbidden, ErrorCode::kProtocol,
                    ErrorCode::kMalformed, ErrorCode::kTimeout, ErrorCode::kTls}) {
    impl_->engineErrors.Add({{"kind", std::string(errorCodeName(code))}});
  }
  impl_->engineErrors.Add({{"kind", "decode"}});
  for (const char* result : {"complete", "gone", "failed"}) {
    impl_->inspects.Add({{"result", result}});
  }
  for (const char* result : {"agree", "disagree", "failed"}) {
    impl_->audits.Add({{"result", result}});
  }
  for (const char* reason : {"queue_full", "evidence_queue_full", "stopped"}) {
    impl_->dropped.Add({{"reason", reason}});
  }
  for (const char* reason : {"size", "age"}) impl_->segmentsDeleted.Add({{"reason", reason}});
  for (const char* change : {"new", "lost", "rewound", "ahead"}) {
    impl_->sealKeyChanges.Add({{"change", change}});
  }
  for (const char* action :
       {"create", "start", "restart", "die", "pause", "unpause", "rename", "destroy"}) {
    impl_->reconciled.Add({{"action", action}});
  }
  for (const char* scan : {"start", "reconcile", "rescan"}) {
    for (const char* status : {"complete", "partial", "exited", "unavailable"}) {
      impl_->evidenceScans.Add({{"scan", scan}, {"status", status}});
    }
  }
  for (const char* cap : {"processes", "libraries", "bytes"}) {
    impl_->evidenceCapsHit.Add({{"cap", cap}});
  }
  for (const char* cause : {"connect", "tls", "timeout", "http_408", "http_429", "http_5xx",
                            "too_large", "refused", "rejected", "other"}) {
    impl_->backendFailures.Add({{"cause", cause}});
  }
}

Metrics::~Metrics() = default;

void Metrics::setDockerConnected(bool connected) { impl_->dockerConnected.Set(connected ? 1 : 0); }
void Metrics::setBufferWritable(bool writable) { impl_->bufferWritable.Set(writable ? 1 : 0); }
void Metrics::setEventsBuffered(std::int64_t count) {
  impl_->eventsBuffered.Set(static_cast<double>(count));
}
void Metrics::countEvent(std::string_view kind, std::string_view source, std::uint64_t count) {
  impl_->events.Add({{"kind", std::string(kind)}, {"source", std::string(source)}})
      .Increment(static_cast<double>(count));
}
void Metrics::countReconnect() { impl_->reconnects.Increment(); }
void Metrics::countEngineError(std::string_view kind) {
  impl_->engineErrors.Add({{"kind", std::string(kind)}}).Increment();
}
void Metrics::countDropped(std::string_view reason) {
  impl_->dropped.Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::countDuplicates(std::int64_t count) {
  if (count > 0) impl_->duplicates.Increment(static_cast<double>(count));
}
void Metrics::addBytesWritten(std::uint64_t bytes) {
  impl_->bytesWritten.Increment(static_cast<double>(bytes));
}
void Metrics::countRotation() { impl_->rotations.Increment(); }
void Metrics::countSegmentDeleted(std::string_view reason) {
  impl_->segmentsDeleted.Add({{"reason", std::string(reason)}}).Increment();
}
void Metrics::setBufferBytes(std::uint64_t bytes) {
  impl_->bufferBytes.Set(static_cast<double>(bytes));
}
void Metrics::setBufferMaxBytes(std::uint64_t bytes) {
  impl_->bufferMaxBytes.Set(static_cast<double>(bytes));
}
void Metrics::setQueueDepth(std::size_t depth) {
  impl_->queueDepth.Set(static_cast<double>(depth));
}
void Metrics::observeCommitDuration(double seconds) { impl_->commitDuration.Observe(seconds); }
void Metrics::setLastEventTimestamp(double unixSeconds) {
  impl_->lastEventTimestamp.Set(unixSeconds);
  impl_->lastEventSeconds = unixSeconds;
}
void Metrics::countGap() { impl_->gaps.Increment(); }
void Metrics::countSeal(std::int64_t epoch, double unixSeconds) {
  impl_->seals.Increment();
  impl_->sealEpoch.Set(static_cast<double>(epoch));
  impl_->lastSealTimestamp.Set(unixSeconds);
}
void Metrics::setSealSeedsOnHost(std::size_t seeds) {
  impl_->sealSeedsOnHost.Set(static_cast<double>(seeds));
}
void Metrics::countSealKeyChange(std::string_view change) {
  impl_->sealKeyChanges.Add({{"change", std::string(change)}}).Increment();
}
void Metrics::countSealKeyWriteFailure() { impl_->sealKeyWriteFailures.Increment(); }
void Metrics::countReconciled(std::string_view action) {
  impl_->reconciled.Add({{"action", std::string(action)}}).Increment();
}
void Metrics::countEventQueueOverflow() { impl_->eventQueueOverflows.Increment(); }
void Metrics::countAudit(std::string_view result) {
  impl_->audits.Add({{"result", std::string(result)}}).Increment();
}
void Metrics::countAuditDisagreements(std::size_t containers) {
  impl_->auditDisagreements.Increment(static_cast<double>(containers));
}
void Metrics::countInspect(std::string_view result, double seconds) {
  impl_->inspects.Add({{"result", std::string(result)}}).Increment();
  impl_->inspectDuration.Observe(seconds);
}
void Metrics::setPostureFailing(std::string_view check, std::string_view severity,
                                std::int64_t count) {
  impl_->postureFailing.Add({{"check", std::string(check)}, {"severity", std::string(severity)}})
      .Set(static_cast<double>(count));
}
void Metrics::addPostureCriticalStarts(std::string_view check, std::uint64_t starts) {
  impl_->postureCriticalStarts.Add({{"check", std::string(check)}})
      .Increment(static_cast<double>(starts));
}
void Metrics::setContainersTracked(std::int64_t count) {
  impl_->containers.Set(static_cast<double>(count));
}

void Metrics::countEvidenceScan(std::string_view scan, std::string_view status) {
  impl_->evidenceScans.Add({{"scan", std::string(scan)}, {"status", std::string(status)}})
      .Increment();
}
void Metrics::observeEvidenceScanDuration(double seconds) {
  impl_->evidenceScanDuration.Observe(seconds);
}
void Metrics::addEvidenceHashing(std::uint64_t bytes, std::uint64_t hits, std::uint64_t misses) {
  impl_->evidenceHashedBytes.Increment(static_cast<double>(bytes));
  impl_->evidenceCacheHits.Increment(static_cast<double>(hits));
  impl_->evidenceCacheMisses.Increment(static_cast<double>(misses));
}
void Metrics::countEvidenceCapHit(std::string_view cap) {
  impl_->evidenceCapsHit.Add({{"cap", std::string(cap)}}).Increment();
}
void Metrics::setEvidenceQueueDepth(std::size_t depth) {
  impl_->evidenceQueueDepth.Set(static_cast<double>(depth));
}

void Metrics::countBackendDelivered(std::size_t records, std::size_t bytes) {
  impl_->backendDeliveredRecords.Increment(static_cast<double>(records));
  impl_->backendDeliveredBatches.Increment();
  impl_->backendDeliveredBytes.Increment(static_cast<double>(bytes));
}
void Metrics::countBackendFailure(std::string_view cause) {
  impl_->backendFailures.Add({{"cause", std::string(cause)}}).Increment();
}
void Metrics::countBackendResentOutOfOrder(std::size_t records) {
  impl_->backendResentOutOfOrder.Increment(static_cast<double>(records));
}

void Metrics::countBackendQuarantined(std::size_t records) {
  impl_->backendQuarantined.Increment(static_cast<double>(records));
}
void Metrics::countBackendExpired(std::int64_t records) {
  impl_->backendExpired.Increment(static_cast<double>(records));
}
void Metrics::setBackendBacklog(std::int64_t records, std::int64_t bytes) {
  impl_->backendBacklogRecords.Set(static_cast<double>(records));
  impl_->backendBacklogBytes.Set(static_cast<double>(bytes));
}
void Metrics::setBackendOldestUndelivered(std::int64_t observedAtNanos) {
  impl_->backendOldestObservedAt = observedAtNanos;
}
void Metrics::setBackendConsecutiveFailures(int failures) {
  impl_->backendConsecutiveFailures.Set(failures);
}
void Metrics::observeBackendRequest(double seconds) {
  impl_->backendRequestDuration.Observe(seconds);
}

void Metrics::countInvariantFailures(std::uint64_t failures) {
  impl_->invariantFailures.Increment(static_cast<double>(failures));
}

std::string Metrics::exposition() const {
  if (double last = impl_->lastEventSeconds; last > 0) {
    const double now =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    impl_->cursorLag.Add({}).Set(now - last);
  }
  const std::int64_t oldest = impl_->backendOldestObservedAt;
  const std::int64_t nowNanos = std::chrono::duration_cast<std::chrono::nanoseconds>(
                                    std::chrono::system_clock::now().time_since_epoch())
                                    .count();
  impl_->backendOldestAge.Set(oldest == 0 ? 0.0 : static_cast<double>(nowNanos - oldest) / 1e9);
  return prometheus::TextSerializer().Serialize(impl_->registry.Collect());
}

}  // namespace zastava
