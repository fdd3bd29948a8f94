#include "buffer/recorder.h"

#include <malloc.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <iterator>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>
#include <vector>

#include "buffer/resync.h"
#include "buffer/sealer.h"
#include "buffer/segment_writer.h"
#include "buffer/sqlite_store.h"
#include "common/backoff.h"
#include "common/rfc3339.h"
#include "common/thread_name.h"
#include "health/health_state.h"
#include "health/metrics.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;

// A failed write is retried after 100 ms, then twice as long each time, up to 5 s.
constexpr auto kFirstBackoff = 100ms;
constexpr auto kMaxBackoff = 5000ms;
constexpr auto kIdleWake = 1000ms;
constexpr auto kStopGrace = 3000ms;
// Records committed (a burst, an inventory) after which an idle writer hands freed memory back
// to the system.
constexpr std::uint64_t kReleaseMemoryAfter = 1024;
constexpr std::int64_t kPruneIntervalNanos = 60ll * 1'000'000'000;
constexpr const char* kSegmentDirName = "runtime-events";

class RecorderImpl final : public Recorder {
 public:
  RecorderImpl(const RecorderOptions& options, Clock& clock, Metrics& metrics, HealthState& health,
               std::unique_ptr<SqliteStore> store, std::unique_ptr<SegmentWriter> segments,
               std::unique_ptr<Sealer> sealer, std::vector<ContainerFacts> containers,
               std::vector<std::string> recentEngineEvents)
      : options_(options),
        clock_(clock),
        metrics_(metrics),
        health_(health),
        store_(std::move(store)),
        segments_(std::move(segments)),
        sealer_(std::move(sealer)),
        nextSealAt_(clock.monotonic() + options.sealInterval),
        cursor_(store_->cursor()),
        containersAtOpen_(std::move(containers)),
        recentEngineEventsAtOpen_(std::move(recentEngineEvents)),
        lastPrune_(clock.now() - kPruneIntervalNanos) {}

  ~RecorderImpl() override { stop(); }

  // Commits the sealer's agent.seal-key record, if any, before the writer starts: it is the
  // first record of the run, and delivery, which counts its backlog from the ledger after this,
  // counts it once. Main thread. Errors: as a commit's.
  Result<void> commitFirst(std::vector<Record> records) {
    if (records.empty()) return okResult();
    batch_ = std::move(records);
    return writeOnce();
  }

  Result<void> start() {
    try {
      writer_ = std::thread([this] { run(); });
    } catch (const std::system_error& e) {
      return Error{ErrorCode::kInternal,
                   std::string("cannot start the writer thread: ") + e.what()};
    }
    return okResult();
  }

  bool submit(Record record) override {
    std::string_view dropReason;
    std::size_t depth = 0;
    {
      std::unique_lock lock(mu_);
      room_.wait(lock,
                 [&] { return stopping_ || failing_ || queue_.size() < options_.queueCapacity; });
      if (stopping_) {
        dropReason = "stopped";
      } else if (queue_.size() >=
                 (failing_ ? options_.failingQueueCapacity : options_.queueCapacity)) {
        dropReason = "queue_full";
        rememberDropped(record);
      } else {
        queue_.push_back(std::move(record));
        ++submitted_;
        depth = queue_.size();
      }
    }
    if (!dropReason.empty()) {
      metrics_.countDropped(dropReason);
      return false;
    }
    metrics_.setQueueDepth(depth);
    wake_.notify_one();
    return true;
  }

  void flush() override {
    std::unique_lock lock(mu_);
    const std::uint64_t target = submitted_;
    progress_.wait(lock, [&] { return completed_ >= target || failing_ || writerExited_; });
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    {
      std::lock_guard lock(mu_);
      stopping_ = true;
      stopDeadline_ = clock_.monotonic() + kStopGrace;
    }
    wake_.notify_all();
    room_.notify_all();
    if (writer_.joinable()) writer_.join();
    segments_.reset();
    store_.reset();
  }

  EventCursor cursor() const override {
    std::lock_guard lock(cursorMu_);
    return cursor_;
  }

  const std::vector<std::string>& recentEngineEventsAtOpen() const override {
    return recentEngineEventsAtOpen_;
  }

  const std::vector<ContainerFacts>& containersAtOpen() const override { return containersAtOpen_; }

 private:
  void run();
  bool waitForWork(std::chrono::milliseconds backoff);
  Result<void> writeOnce();
  Result<void> sealIfDue(bool final);
  Result<void> maintain();
  void releaseMemoryAfterBurst(std::size_t committed);
  void reportOutcome(const Result<void>& result);
  void rememberDropped(const Record& record);
  void queueGapForDropped();

  const RecorderOptions options_;
  Clock& clock_;
  Metrics& metrics_;
  HealthState& health_;
  std::unique_ptr<SqliteStore> store_;
  std::unique_ptr<SegmentWriter> segments_;
  std::unique_ptr<Sealer> sealer_;  // null without sealing; writer thread only
  MonoTime nextSealAt_;             // writer thread only
  bool sealPending_ = false;        // writer thread only: a seal is in batch_ or not yet synced
  UnixNanos sealTime_ = 0;          // writer thread only: the pending seal's time
  mutable std::mutex cursorMu_;
  EventCursor cursor_;  // guarded by cursorMu_
  const std::vector<ContainerFacts> containersAtOpen_;
  const std::vector<std::string> recentEngineEventsAtOpen_;
  std::thread writer_;
  bool stopped_ = false;  // main thread only

  std::mutex mu_;
  std::condition_variable wake_;      // the writer waits for work
  std::condition_variable progress_;  // flush() waits for the writer
  std::condition_variable room_;      // submit() waits for the writer to take a batch
  std::vector<Record> queue_;         // guarded by mu_
  std::uint64_t submitted_ = 0;       // guarded by mu_: records ever accepted
  std::uint64_t completed_ = 0;       // guarded by mu_: of those, durable (or duplicates)
  bool failing_ = false;              // guarded by mu_
  bool stopping_ = false;             // guarded by mu_
  bool writerExited_ = false;         // guarded by mu_
  MonoTime stopDeadline_;             // guarded by mu_
  // Records refused while the buffer was not writable: an agent.gap once it is again.
  struct Dropped {
    std::int64_t records = 0;
    UnixNanos from = 0;
    UnixNanos to = 0;
  };
  std::optional<Dropped> dropped_;  // guarded by mu_

  // Writer thread only.
  std::vector<Record> batch_;              // taken from queue_, not yet committed to SQLite
  std::uint64_t taken_ = 0;                // records ever taken from queue_
  std::uint64_t batchEnd_ = 0;             // taken_ when batch_ was taken
  std::vector<CommittedRecord> unsynced_;  // in SQLite, waiting for the NDJSON sync
  std::uint64_t unsyncedEnd_ = 0;
  std::uint64_t unsyncedBytes_ = 0;  // NDJSON bytes of unsynced_, newlines included
  std::string failure_;              // the error of the current incident, empty when healthy
  UnixNanos lastPrune_;
  std::uint64_t committedSinceRelease_ = 0;
  struct EventCount {
    std::string_view kind;  // of a record in unsynced_
    RecordSource source;
    std::uint64_t count;
  };
  std::vector<EventCount> eventCounts_;  // of one commit, for the metric
};

// Returns false when the writer should exit. Takes the next batch from the queue. While failing,
// waits `backoff` first (cut short by stop(), and never past the stop grace).
bool RecorderImpl::waitForWork(std::chrono::milliseconds backoff) {
  std::unique_lock lock(mu_);
  if (failing_) {
    const bool wasStopping = stopping_;
    MonoTime deadline = clock_.monotonic() + backoff;
    if (stopping_) deadline = std::min(deadline, stopDeadline_);
    clock_.waitUntil(lock, wake_, deadline, [&] { return stopping_ != wasStopping; });
  } else {
    clock_.waitFor(lock, wake_, kIdleWake, [&] { return stopping_ || !queue_.empty(); });
  }
  const bool idle = queue_.empty() && batch_.empty() && !segments_->hasPending();
  if (stopping_ && (idle || (failing_ && clock_.monotonic() >= stopDeadline_))) {
    return false;
  }
  if (batch_.empty() && !queue_.empty()) {
    const std::size_t count = std::min(queue_.size(), std::max<std::size_t>(options_.maxBatch, 1));
    if (count == queue_.size()) {
      // The whole queue, without moving a record: the queue takes the empty batch's buffer.
      batch_.swap(queue_);
    } else {
      const auto end = queue_.begin() + static_cast<std::ptrdiff_t>(count);
      batch_.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(end));
      queue_.erase(queue_.begin(), end);
    }
    taken_ += count;
    batchEnd_ = taken_;
    room_.notify_all();
  }
  metrics_.setQueueDepth(queue_.size());
  return true;
}

// glibc keeps the pages a burst's queued records and batches took; once the writer has caught
// up, the batch buffers are freed and malloc_trim returns free pages, so RSS falls after a burst.
void RecorderImpl::releaseMemoryAfterBurst(std::size_t committed) {
  committedSinceRelease_ += committed;
  if (committedSinceRelease_ < kReleaseMemoryAfter) return;
  {
    std::lock_guard lock(mu_);
    if (!queue_.empty()) return;
    queue_.shrink_to_fit();
  }
  committedSinceRelease_ = 0;
  batch_.shrink_to_fit();  // empty after a commit; a full batch of Records is ~0.7 MiB
  unsynced_.shrink_to_fit();
  malloc_trim(0);
}

void RecorderImpl::run() {
  nameThisThread("zastava-writer");
  Backoff retry(kFirstBackoff, kMaxBackoff, Backoff::Jitter::kNone);
  std::chrono::milliseconds backoff = kFirstBackoff;  // waited only while failing
  while (waitForWork(backoff)) {
    health_.working(Worker::kWriter);
    const std::size_t batch = batch_.size();
    Result<void> result = writeOnce();
    if (result) result = sealIfDue(/*final=*/false);
    if (result) result = maintain();
    reportOutcome(result);
    if (result) releaseMemoryAfterBurst(batch);
    if (result) {
      retry.reset();
    } else {
      backoff = retry.next();
    }
    health_.waiting(Worker::kWriter);
  }
  if (sealer_ && batch_.empty() && !segments_->hasPending()) {
    auto sealed = sealIfDue(/*final=*/true);
    if (!sealed) spdlog::error("buffer: cannot write the seal at stop: {}", sealed.error().message);
  }
  std::size_t lost = batch_.size();
  {
    std::lock_guard lock(mu_);
    lost += queue_.size();
    writerExited_ = true;
  }
  progress_.notify_all();
  if (lost > 0 || segments_->hasPending()) {
    spdlog::error("buffer: stopped with {} records not committed and NDJSON lines {}written", lost,
                  segments_->hasPending() ? "not " : "");
  }
}

Result<void> RecorderImpl::writeOnce() {
  if (batch_.empty() && !segments_->hasPending()) return okResult();
  const MonoTime started = clock_.monotonic();
  if (!batch_.empty()) {
    auto fresh = store_->commit(batch_);
    if (!fresh) return fresh.error();
    batch_.clear();
    metrics_.countDuplicates(fresh->duplicates);
    for (CommittedRecord& committed : fresh->records) {
      unsyncedBytes_ += committed.line.size() + 1;
      segments_->append(std::move(committed.line));  // the segment writer holds it now
      unsynced_.push_back(std::move(committed));
    }
    unsyncedEnd_ = batchEnd_;
    std::lock_guard lock(cursorMu_);
    cursor_ = store_->cursor();
  }
  auto synced = segments_->sync();
  if (!synced) return synced;
  std::int64_t newest = 0;
  // One metric update per kind and source, not per record: each takes the registry's lock and
  // builds its label set.
  eventCounts_.clear();
  for (const CommittedRecord& committed : unsynced_) {
    newest = std::max(newest, committed.timeNano);
    auto same = std::find_if(eventCounts_.begin(), eventCounts_.end(), [&](const EventCount& c) {
      return c.source == committed.source && c.kind == committed.kind;
    });
    if (same == eventCounts_.end()) {
      eventCounts_.push_back(EventCount{committed.kind, committed.source, 1});
    } else {
      ++same->count;
    }
  }
  for (const EventCount& counted : eventCounts_) {
    metrics_.countEvent(counted.kind, recordSourceName(counted.source), counted.count);
  }
  if (options_.commitObserver != nullptr && !unsynced_.empty()) {
    options_.commitObserver->recordsCommitted(unsynced_.size(), unsyncedBytes_);
  }
  unsynced_.clear();
  unsyncedBytes_ = 0;
  if (newest > 0) metrics_.setLastEventTimestamp(static_cast<double>(newest) / 1e9);
  metrics_.setEventsBuffered(store_->eventCount());
  metrics_.observeCommitDuration(clock_.secondsSince(started));
  {
    std::lock_guard lock(mu_);
    completed_ = unsyncedEnd_;
  }
  progress_.notify_all();
  return okResult();
}

// Every sealInterval, and once more at stop (`final`): an agent.seal of the chain head,
// committed on its own, then the next epoch's key. A seal that could not be committed stays in
// batch_ and is retried like any batch; the key moves on only once it is durable.
Result<void> RecorderImpl::sealIfDue(bool final) {
  if (!sealer_) return okResult();
  if (!sealPending_) {
    if (!final && clock_.monotonic() < nextSealAt_) return okResult();
    sealTime_ = clock_.now();
    batch_.push_back(
        sealer_->seal(sealTime_, store_->lastHash(), store_->sealState().recordsSince));
    sealPending_ = true;
    auto written = writeOnce();
    if (!written) return written;
  }
  sealPending_ = false;
  metrics_.countSeal(sealer_->epoch(), static_cast<double>(sealTime_) / 1e9);
  sealer_->advance();
  sealer_->countSeedsOnHost(/*warn=*/false);
  nextSealAt_ = clock_.monotonic() + options_.sealInterval;
  return okResult();
}

Result<void> RecorderImpl::maintain() {
  auto maintained = segments_->maintain();
  if (!maintained) return maintained;
  const UnixNanos now = clock_.now();
  if (now - lastPrune_ < kPruneIntervalNanos) return okResult();
  lastPrune_ = now;
  auto pruned =
      store_->pruneOlderThan(now - options_.limits.retentionNanos, options_.keepUndelivered);
  if (!pruned) return pruned.error();
  if (*pruned > 0) metrics_.setEventsBuffered(store_->eventCount());
  return okResult();
}

// Under mu_.
void RecorderImpl::rememberDropped(const Record& record) {
  if (!dropped_) dropped_ = Dropped{0, record.time, record.time};
  ++dropped_->records;
  dropped_->from = std::min(dropped_->from, record.time);
  dropped_->to = std::max(dropped_->to, record.time);
}

// After the records kept while the buffer was not writable, before any submitted since: the
// span whose records were refused, so the ledger says what it is missing.
void RecorderImpl::queueGapForDropped() {
  std::lock_guard lock(mu_);
  if (!dropped_) return;
  const std::string refused =
      fmt::format("{} record{}", dropped_->records, dropped_->records == 1 ? "" : "s");
  spdlog::warn(
      "buffer: {} from {} to {} were refused while it was not writable; an agent.gap "
      "record says so",
      refused, formatRfc3339Nanos(dropped_->from), formatRfc3339Nanos(dropped_->to));
  const std::string reason =
      fmt::format("{} refused while the buffer was not writable ({})", refused, failure_);
  const UnixNanos now = clock_.now();
  queue_.push_back(
      gapRecord(GapFacts{dropped_->from, dropped_->to, reason, std::nullopt}, now, now));
  ++submitted_;
  metrics_.countGap();
  dropped_.reset();
}

void RecorderImpl::reportOutcome(const Result<void>& result) {
  if (result) {
    if (!failure_.empty()) {
      spdlog::info("buffer: writable again after: {}", failure_);
      queueGapForDropped();
      failure_.clear();
      {
        std::lock_guard lock(mu_);
        failing_ = false;
      }
    }
    health_.setBufferWritable(true);
    return;
  }
  const Error& error = result.error();
  const std::string reason =
      (error.code == ErrorCode::kDiskFull ? "disk full: " : "write failed: ") + error.message;
  if (failure_.empty()) {
    spdlog::warn("buffer: not writable, retrying with backoff: {}", reason);
    failure_ = reason;
    {
      std::lock_guard lock(mu_);
      failing_ = true;
    }
    progress_.notify_all();
    room_.notify_all();
  }
  health_.setBufferWritable(false, reason);
}

// Creates the data directory (0750 whatever the umask) when it does not exist. Errors: kIo (or
// kDiskFull) naming it, when it cannot be looked at, created or chmod()ed.
Result<void> makeDirectory(const std::filesystem::path& path) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  if (ec) return Error{ErrorCode::kIo, "cannot look at " + path.string() + ": " + ec.message()};
  if (!existed) {
    std::filesystem::create_directories(path, ec);
    if (ec) {
      return Error{ec.value() == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo,
                   "cannot create " + path.string() + ": " + ec.message()};
    }
    if (::chmod(path.c_str(), 0750) != 0) {
      return Error{ErrorCode::kIo, "cannot chmod " + path.string() + ": " + std::strerror(errno)};
    }
  }
  return okResult();
}

}  // namespace

Result<std::unique_ptr<Recorder>> Recorder::open(const RecorderOptions& options, Clock& clock,
                                                 Metrics& metrics, HealthState& health) {
  auto made = makeDirectory(options.dataDirectory);
  if (!made) return made.error();
  auto store = SqliteStore::open(options.dataDirectory / kDatabaseFileName);
  if (!store) return store.error();
  auto segments =
      SegmentWriter::open(options.dataDirectory / kSegmentDirName, options.limits, clock, metrics);
  if (!segments) return segments.error();
  auto resynced = resyncSegments(**store, **segments);
  if (!resynced) return resynced.error();
  auto containers = (*store)->loadContainers();
  if (!containers) return containers.error();
  auto recentEngineEvents = (*store)->lastEngineEventIds(kRecentEngineEvents);
  if (!recentEngineEvents) return recentEngineEvents.error();
  std::unique_ptr<Sealer> sealer;
  std::vector<Record> sealKeyRecords;
  if (options.sealInterval.count() > 0) {
    auto opened = Sealer::open(options.dataDirectory, (*store)->sealState(), clock.now(), metrics,
                               sealKeyRecords);
    if (!opened) return opened.error();
    sealer = std::move(opened).value();
  }
  metrics.setEventsBuffered((*store)->eventCount());
  health.setBufferWritable(true);
  auto recorder = std::make_unique<RecorderImpl>(
      options, clock, metrics, health, std::move(*store), std::move(*segments), std::move(sealer),
      std::move(*containers), std::move(*recentEngineEvents));
  auto committed = recorder->commitFirst(std::move(sealKeyRecords));
  if (!committed) return committed.error();
  auto started = recorder->start();
  if (!started) return started.error();
  return std::unique_ptr<Recorder>(std::move(recorder));
}

}  // namespace zastava
