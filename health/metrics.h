// Every metric the agent exposes, in one place, on a prometheus-cpp registry. Names follow
// Prometheus conventions: zastava_agent_*, _total for counters, base units. Any thread may call
// the setters (prometheus-cpp metrics are atomic).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace zastava {

struct BuildInfo {
  std::string version;
  std::string gitCommit;
};

class Metrics {
 public:
  explicit Metrics(const BuildInfo& build);
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // zastava_agent_docker_connected (gauge 0/1)
  void setDockerConnected(bool connected);
  // zastava_agent_buffer_writable (gauge 0/1)
  void setBufferWritable(bool writable);
  // zastava_agent_events_buffered (gauge): records held in the SQLite buffer.
  void setEventsBuffered(std::int64_t count);
  // zastava_agent_events_total{kind,source}: records made durable (`count` of them).
  void countEvent(std::string_view kind, std::string_view source, std::uint64_t count);
  // zastava_agent_stream_reconnects_total
  void countReconnect();
  // zastava_agent_engine_errors_total{kind}: kind is an errorCodeName() or "decode". The kinds
  // an engine request can fail with, and every drop and deletion reason, are exposed at 0 from
  // the start.
  void countEngineError(std::string_view kind);
  // zastava_agent_event_queue_overflows_total: the stream closed and reopened because the
  // enricher's queue was full.
  void countEventQueueOverflow();
  // zastava_agent_events_dropped_total{reason}
  void countDropped(std::string_view reason);
  // zastava_agent_duplicates_suppressed_total, by `count`
  void countDuplicates(std::int64_t count);
  // zastava_agent_buffer_written_bytes_total
  void addBytesWritten(std::uint64_t bytes);
  // zastava_agent_buffer_rotations_total
  void countRotation();
  // zastava_agent_buffer_segments_deleted_total{reason="size"|"age"}
  void countSegmentDeleted(std::string_view reason);
  // zastava_agent_buffer_bytes (gauge): NDJSON bytes on disk.
  void setBufferBytes(std::uint64_t bytes);
  // zastava_agent_buffer_max_bytes (gauge): the cap on them (EventBuffer:MaxTotalSizeMb).
  void setBufferMaxBytes(std::uint64_t bytes);
  // zastava_agent_buffer_queue_depth (gauge): records waiting for the writer.
  void setQueueDepth(std::size_t depth);
  // zastava_agent_buffer_commit_duration_seconds (histogram): one group commit, fsync included.
  void observeCommitDuration(double seconds);
  // zastava_agent_last_event_timestamp_seconds (gauge): engine time of the last durable event.
  void setLastEventTimestamp(double unixSeconds);
  // zastava_agent_gaps_total: spans in which engine events may be missing (agent.gap records).
  void countGap();
  // Seals (docs/records.md, "Seals"): zastava_agent_seals_total, and the gauges
  // zastava_agent_seal_epoch and zastava_agent_last_seal_timestamp_seconds of the newest seal.
  void countSeal(std::int64_t epoch, double unixSeconds);
  // zastava_agent_seal_seeds_on_host (gauge): seed files still in the data directory.
  void setSealSeedsOnHost(std::size_t seeds);
  // zastava_agent_seal_key_changes_total{change}: new|lost|rewound|ahead, all at 0 from the start.
  void countSealKeyChange(std::string_view change);
  // zastava_agent_seal_key_write_failures_total
  void countSealKeyWriteFailure();
  // zastava_agent_reconciled_transitions_total{action}: transitions written by reconciliation.
  void countReconciled(std::string_view action);
  // zastava_agent_inspects_total{result} and zastava_agent_inspect_duration_seconds (histogram):
  // inspects of created and started containers; result is complete, gone or failed.
  void countInspect(std::string_view result, double seconds);
  // zastava_agent_cursor_lag_seconds (gauge, computed at scrape): now minus the engine time of
  // the last durable engine event; absent until there is one.
  // zastava_agent_audits_total{result}: periodic audits of the ledger against the engine's list;
  // result is agree, disagree or failed (the list could not be had).
  void countAudit(std::string_view result);
  // zastava_agent_audit_disagreements_total: containers an audit found the ledger wrong about.
  void countAuditDisagreements(std::size_t containers);
  // zastava_agent_containers (gauge): containers currently tracked.
  void setContainersTracked(std::int64_t count);
  // zastava_agent_evidence_scans_total{scan,status}: container.evidence scans done; scan is
  // start|reconcile|rescan, status complete|partial|exited|unavailable.
  void countEvidenceScan(std::string_view scan, std::string_view status);
  // zastava_agent_evidence_scan_duration_seconds (histogram): one scan, hashing included.
  void observeEvidenceScanDuration(double seconds);
  // zastava_agent_evidence_hashed_bytes_total, zastava_agent_evidence_hash_cache_hits_total and
  // zastava_agent_evidence_hash_cache_misses_total: bytes read to hash executables and
  // libraries, and lookups of the host-wide hash cache.
  void addEvidenceHashing(std::uint64_t bytes, std::uint64_t hits, std::uint64_t misses);
  // zastava_agent_evidence_caps_hit_total{cap}: scans stopped short by a cap; cap is
  // processes|libraries|bytes.
  void countEvidenceCapHit(std::string_view cap);
  // zastava_agent_evidence_queue_depth (gauge): scans waiting for a worker, re-scans included.
  void setEvidenceQueueDepth(std::size_t depth);
  // zastava_agent_posture_failing_containers{check,severity} (gauge): running containers whose
  // latest findings fail the check (docs/posture.md), waived ones not counted.
  void setPostureFailing(std::string_view check, std::string_view severity, std::int64_t count);
  // zastava_agent_posture_critical_starts_total{check}: container starts that failed the check
  // while its severity is critical; `starts` 0 exports the series.
  void addPostureCriticalStarts(std::string_view check, std::uint64_t starts);
  // Backend delivery (docs/backend.md). zastava_agent_backend_delivered_records_total,
  // _delivered_batches_total and _delivered_bytes_total: one accepted request.
  void countBackendDelivered(std::size_t records, std::size_t bytes);
  // zastava_agent_backend_failures_total{cause}: connect|tls|timeout|http_408|http_429|
  // http_5xx|too_large|refused|rejected|other, all exposed at 0 from the start.
  void countBackendFailure(std::string_view cause);
  // zastava_agent_backend_quarantined_records_total
  void countBackendQuarantined(std::size_t records);
  // zastava_agent_backend_resent_out_of_order_records_total: records a stream lost while it
  // stored later ones (NATS, during a leader election), published again after them.
  void countBackendResentOutOfOrder(std::size_t records);
  // zastava_agent_backend_expired_records_total
  void countBackendExpired(std::int64_t records);
  // zastava_agent_backend_backlog_records and zastava_agent_backend_backlog_bytes (gauges).
  void setBackendBacklog(std::int64_t records, std::int64_t bytes);
  // zastava_agent_backend_oldest_undelivered_age_seconds (gauge, computed at scrape): now minus
  // `observedAtNanos`; 0 when it is 0 (nothing waits).
  void setBackendOldestUndelivered(std::int64_t observedAtNanos);
  // zastava_agent_backend_consecutive_failures (gauge)
  void setBackendConsecutiveFailures(int failures);
  // zastava_agent_backend_request_duration_seconds (histogram)
  void observeBackendRequest(double seconds);
  // zastava_agent_invariant_failures_total: internal invariants found broken (ZASTAVA_BUG,
  // common/invariant.h): those of earlier runs, read from the data directory at start, then
  // each one in this process just before it ends.
  void countInvariantFailures(std::uint64_t failures);
  // zastava_agent_build_info{version,git_commit} 1 is set by the constructor.

  // The Prometheus text exposition (format 0.0.4) of everything above. Any thread.
  std::string exposition() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace zastava
