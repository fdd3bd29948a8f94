// The Recorder makes records durable. Producers submit() into a bounded queue (waiting for room
// only while the writer is behind but healthy); one writer thread takes everything pending and
// group-commits it: SQLite first (the source of truth: dedup by eventId, hash chain, cursor,
// containers table, all in one transaction), then the NDJSON segment, then one fdatasync. A
// record is counted as buffered only after both.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <vector>

#include "buffer/commit_observer.h"
#include "buffer/record.h"
#include "buffer/record_sink.h"
#include "common/clock.h"
#include "common/result.h"

namespace zastava {

class Metrics;
class HealthState;

// How many of the last engine events committed the Recorder reports at open: more than the
// engine's memory (256 events), so every event it can replay that the ledger holds is among them.
inline constexpr std::size_t kRecentEngineEvents = 1024;

// The ledger's SQLite database, in the data directory.
inline constexpr const char* kDatabaseFileName = "zastava-agent.db";

// The defaults of EventBuffer:MaxFileSizeMb, MaxTotalSizeMb and RetentionHours: Config
// (agent/config.h) and BufferLimits both start from these.
inline constexpr std::int64_t kDefaultMaxFileSizeMb = 10;
inline constexpr std::int64_t kDefaultMaxTotalSizeMb = 100;
inline constexpr std::int64_t kDefaultRetentionHours = 24;

struct BufferLimits {
  std::uint64_t maxFileBytes = kDefaultMaxFileSizeMb * 1024 * 1024;             // MaxFileSizeMb
  std::uint64_t maxTotalBytes = kDefaultMaxTotalSizeMb * 1024 * 1024;           // MaxTotalSizeMb
  std::int64_t retentionNanos = kDefaultRetentionHours * 3600 * 1'000'000'000;  // RetentionHours
};

struct RecorderOptions {
  std::filesystem::path dataDirectory;  // holds runtime-events/ and zastava-agent.db
  BufferLimits limits;
  // Records waiting for a healthy writer: beyond this, submit() waits. Small, because a burst
  // fills it and glibc keeps the pages it took.
  std::size_t queueCapacity = 512;
  // Records kept while the buffer is not writable (disk full); beyond this they are dropped.
  std::size_t failingQueueCapacity = 8192;
  std::size_t maxBatch = 512;  // records per group commit
  // Backend delivery is on: the retention leaves records the backend has not accepted to the
  // Dispatcher, which counts them as expired (docs/backend.md).
  bool keepUndelivered = false;
  // Told after each group commit, on the writer thread; null: nobody is. Borrowed: it must
  // outlive the Recorder.
  CommitObserver* commitObserver = nullptr;
  // How often an agent.seal is written (and once more at stop): Ledger:SealIntervalSeconds.
  // Zero: no sealing, for tests of other things; the agent always seals.
  std::chrono::seconds sealInterval{0};
};

class Recorder : public RecordSink {
 public:
  // Creates the data directory layout (0750 dirs, 0640 NDJSON, 0600 db), opens SQLite in WAL
  // mode, appends to NDJSON what only SQLite holds (see resync.h), opens the sealing key (see
  // sealer.h; its agent.seal-key record, if any, is the first committed), and starts the writer
  // thread; new records go to a new segment. Errors: kIo/kDiskFull naming the path;
  // kInvalidArgument for a database with a newer schema; kInternal if the thread cannot start. Main
  // thread.
  static Result<std::unique_ptr<Recorder>> open(const RecorderOptions& options, Clock& clock,
                                                Metrics& metrics, HealthState& health);
  virtual ~Recorder() = default;

  // Queues a record. While the writer is healthy a full queue makes the caller wait until the
  // writer takes its next batch: a producer faster than the disk slows down and loses nothing.
  // While the buffer is failing (disk full) it never waits: a full queue drops the record,
  // counted in zastava_agent_events_dropped_total{reason="queue_full"}. False when dropped, and
  // after stop() (reason="stopped"). Any thread.
  bool submit(Record record) override = 0;

  // Blocks until everything submitted before the call is committed (or failed). Any thread.
  virtual void flush() = 0;

  // Drains the queue, commits, closes files and joins the writer. Idempotent. Main thread.
  virtual void stop() = 0;

  // The durable event cursor: the committed stream/replay record with the largest engine
  // timeNano (timeNano 0 when none). Any thread.
  virtual EventCursor cursor() const = 0;

  // The eventIds of the last kRecentEngineEvents engine events committed, as of open(), oldest
  // first: a replay of them after a restart is recognised before it is recorded. Any thread.
  virtual const std::vector<std::string>& recentEngineEventsAtOpen() const = 0;

  // The containers table as it was when open() returned: the ledger's last word on each
  // container, for reconciliation. Any thread.
  virtual const std::vector<ContainerFacts>& containersAtOpen() const = 0;
};

}  // namespace zastava
