// Reads the NDJSON segments of a data directory in order, line by line, and follows them while
// the agent writes, across rotation (like `tail -F`): what `zastava-agent records` prints.
// Only complete lines (ending in "\n") are returned, so a line being written is returned once,
// whole. The current segment stays open, so retention deleting it loses none of its lines.
// It never writes. Not thread-safe: one thread owns a reader.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "common/result.h"

namespace zastava {

class SegmentReader {
 public:
  struct Line {
    std::string text;  // without the "\n"
    std::filesystem::path segment;
    std::uint64_t number = 0;  // 1-based line number in the segment
    // A piece of a line at the end of a segment the agent has moved on from: a write cut short
    // by a crash, never a record.
    bool torn = false;
  };

  // `directory` is <data dir>/runtime-events. Nothing is read before readNew().
  explicit SegmentReader(std::filesystem::path directory);
  ~SegmentReader();
  SegmentReader(const SegmentReader&) = delete;
  SegmentReader& operator=(const SegmentReader&) = delete;

  struct Batch {
    std::vector<Line> lines;
    // Segments retention deleted before they could be opened: their lines are gone.
    std::vector<std::filesystem::path> vanished;
  };

  // Every complete line written since the last call, oldest segment first; empty when nothing
  // is new. Errors: kNotFound when the directory does not exist (yet), kIo naming the directory
  // or segment that cannot be read (permissions); a later call may succeed.
  Result<Batch> readNew();

 private:
  // Appends the complete lines after offset_ in the open segment; with `final`, also what
  // follows the last "\n", as a torn line.
  Result<void> drainCurrent(bool final, std::vector<Line>& out);
  // Opens the oldest segment of `listed` (oldest first) after the current (or last) one; a
  // segment deleted meanwhile is added to batch.vanished and the
  // next one tried. False when there is none.
  Result<bool> openNext(const std::vector<std::pair<std::uint64_t, std::filesystem::path>>& listed,
                        Batch& batch);
  void closeSegment();

  std::filesystem::path directory_;
  int fd_ = -1;  // the current segment, open until a newer one exists and this one is read
  std::filesystem::path path_;
  std::uint64_t seq_ = 0;     // of the current (or last) segment; 0 before the first
  std::uint64_t offset_ = 0;  // bytes of the current segment consumed (complete lines)
  std::uint64_t lineNumber_ = 0;
  std::string partial_;  // bytes after offset_ read but not yet ended by "\n"
};

}  // namespace zastava
