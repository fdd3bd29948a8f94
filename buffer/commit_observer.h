// Told by the Recorder after each group commit, once its records are durable (in SQLite and in
// the synced NDJSON segment): how backend delivery learns that records wait to be sent without
// the buffer knowing about delivery. Given to Recorder::open (RecorderOptions::commitObserver).
#pragma once

#include <cstddef>
#include <cstdint>

namespace zastava {

class CommitObserver {
 public:
  virtual ~CommitObserver() = default;

  // `records` new records, `bytes` bytes of NDJSON lines (newlines included), are durable.
  // Never called with 0 records. Called on the Recorder's writer thread: it must not block.
  virtual void recordsCommitted(std::size_t records, std::uint64_t bytes) = 0;
};

}  // namespace zastava
