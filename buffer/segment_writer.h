// NDJSON segments under <dataDir>/runtime-events/: append-only files named
// events-<UTC yyyyMMddTHHmmss>Z-<seq>.ndjson, rotated by size and age, deleted by age and total
// size. Lines are buffered in memory by append() and reach the disk in sync(), so a failed
// write loses nothing: the unwritten tail stays queued and the next sync() continues exactly
// where the last one stopped. Not thread-safe: the Recorder's writer thread owns it.
#pragma once

#include <cstdint>
#include <deque>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "buffer/recorder.h"
#include "common/clock.h"
#include "common/result.h"

namespace zastava {

class Metrics;

class SegmentWriter {
 public:
  struct SegmentInfo {
    std::filesystem::path path;
    std::uint64_t seq = 0;
    UnixNanos createdAt = 0;  // from the file name (second resolution) or the Clock
    UnixNanos sealedAt = 0;   // 0 while active; mtime for segments found at open
    std::uint64_t bytes = 0;  // bytes on disk
  };

  // Creates `directory` (0750, its parent synced) if needed and takes stock of the segments
  // already there; their bytes count toward maxTotalBytes. The next segment gets the highest
  // existing seq + 1 and is created at the first write (its directory synced: a failure there
  // is an error of sync()). Errors: kIo/kDiskFull naming the directory, for a failed mkdir,
  // chmod or directory fsync too.
  static Result<std::unique_ptr<SegmentWriter>> open(const std::filesystem::path& directory,
                                                     const BufferLimits& limits, Clock& clock,
                                                     Metrics& metrics);
  ~SegmentWriter();
  SegmentWriter(const SegmentWriter&) = delete;
  SegmentWriter& operator=(const SegmentWriter&) = delete;

  // Queues `line` plus "\n" for the next sync(). Never fails.
  void append(std::string line);

  // Writes everything queued (rotating by size and age before each line), fdatasync()s, then
  // applies retention. Errors: kDiskFull (ENOSPC/EDQUOT) or kIo, naming the file and strerror;
  // what was not written stays queued for the next call.
  Result<void> sync();

  // Seals an old active segment and applies retention by age and total size; for an idle
  // writer. Errors: as sync() (sealing fdatasyncs the active segment).
  Result<void> maintain();

  // True while append()ed bytes wait for a successful sync().
  bool hasPending() const { return !pending_.empty(); }
  // Bytes of all segments on disk.
  std::uint64_t totalBytes() const;
  // All segments on disk, oldest (lowest seq) first; the active one, if any, last.
  std::vector<SegmentInfo> segments() const;

 private:
  SegmentWriter(std::filesystem::path directory, const BufferLimits& limits, Clock& clock,
                Metrics& metrics);
  Result<void> scanExisting();
  Result<void> openNewSegment();
  Result<void> sealActive();
  // Writes the queued lines that fit in the active segment, with one writev.
  Result<void> writePending();
  Result<void> syncActive();
  // Closes the active segment's file (synced before); a failure is logged.
  void closeActive();
  bool activeTooOld(UnixNanos now) const;
  void applyRetention(UnixNanos now);
  bool deleteSegment(const SegmentInfo& segment, std::string_view reason);
  void consumeWritten(std::size_t bytes);
  void publishTotal();
  Error fileError(const std::filesystem::path& path, std::string_view what, int err) const;

  std::filesystem::path directory_;
  BufferLimits limits_;
  Clock& clock_;
  Metrics& metrics_;
  std::vector<SegmentInfo> sealed_;  // oldest first
  std::optional<SegmentInfo> active_;
  int activeFd_ = -1;
  bool activeDirty_ = false;         // written since the last fdatasync
  std::deque<std::string> pending_;  // lines with their "\n"
  std::size_t headWritten_ = 0;      // bytes of pending_.front() already in the active file
  std::uint64_t nextSeq_ = 1;
};

// fsync()s `directory`, so the names created in or deleted from it are durable. Errors:
// kIo (or kDiskFull) naming the directory and strerror, when it cannot be opened or synced (a
// file system that cannot sync directories says "Invalid argument"). Any thread.
Result<void> syncDirectory(const std::filesystem::path& directory);

// "events-20261122T143346Z-000007.ndjson" for a segment created at `createdAt`.
std::string segmentFileName(UnixNanos createdAt, std::uint64_t seq);

// The segments in `directory`, oldest (lowest seq) first, each with its size and its mtime as
// sealedAt; other files are ignored. Errors: kNotFound when the directory does not exist, kIo
// (or kDiskFull) naming it otherwise. Any thread.
Result<std::vector<SegmentWriter::SegmentInfo>> listSegments(
    const std::filesystem::path& directory);

}  // namespace zastava
