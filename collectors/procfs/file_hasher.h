// SHA-256 of files opened through /proc (an executable via <pid>/exe, a library via
// <pid>/root/<path> or <pid>/map_files/<range>), with a cache so that one file is hashed once
// per host however many processes map it. Why keyed on what fstat says about the opened fd:
// the path a process sees differs per mount namespace, while (st_dev, st_ino, st_size, st_mtime
// and st_ctime in ns) names the bytes, and a rewritten file changes size and times. On overlayfs
// st_dev is left out (each container's mount has its own), so the containers of one image share
// their entries.
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <cstdint>
#include <limits>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

#include "common/clock.h"
#include "common/result.h"

namespace zastava {

struct FileHash {
  std::string sha256;  // lowercase hex; empty when overBudget
  std::uint64_t size = 0;
  std::uint64_t device = 0;  // st_dev of the opened file
  std::uint64_t inode = 0;
  bool cached = false;      // came from the cache; no bytes were read
  bool overBudget = false;  // not cached and larger than the byte budget: not read at all
  std::uint64_t bytesRead = 0;
};

// Counters for metrics; they only grow (entries excepted).
struct FileHashStats {
  std::uint64_t hits = 0;
  std::uint64_t misses = 0;
  std::uint64_t filesHashed = 0;
  std::uint64_t bytesHashed = 0;
  std::uint64_t hashNanos = 0;  // monotonic time spent reading and hashing
  std::uint64_t evictions = 0;
  std::size_t entries = 0;
};

// Thread-safe: any thread may call any member. Hashing runs outside the lock, so two threads
// hashing the same uncached file at once both read it (counted twice); the cache stays right.
class FileHashCache {
 public:
  static constexpr std::size_t kDefaultMaxEntries = 8192;
  static constexpr std::size_t kBufferBytes = std::size_t{64} * 1024;
  static constexpr std::uint64_t kNoBudget = std::numeric_limits<std::uint64_t>::max();

  // maxEntries >= 1; the least recently used entry is evicted beyond it. Hashing is timed on
  // `clock`'s monotonic time (stats().hashNanos); `clock` must outlive the cache.
  explicit FileHashCache(const Clock& clock, std::size_t maxEntries = kDefaultMaxEntries);
  FileHashCache(const FileHashCache&) = delete;
  FileHashCache& operator=(const FileHashCache&) = delete;

  // Hashes the open file `fd` (left open; read from offset 0 with pread). A cache hit reads
  // nothing. Not cached and st_size > byteBudget: overBudget, nothing read. A file whose size
  // changed while it was read is returned but not cached. Errors: kInvalidArgument for a file
  // that is not regular, errnoError of fstat/pread (kForbidden, kNotFound, kIo), kInternal if
  // OpenSSL fails.
  Result<FileHash> hashFd(int fd, std::uint64_t byteBudget = kNoBudget);

  // Opens `path` read-only (following links, as /proc magic links need) and hashes it as
  // hashFd. Errors: those of hashFd, and errnoError of open.
  Result<FileHash> hashPath(const std::string& path, std::uint64_t byteBudget = kNoBudget);

  FileHashStats stats() const;

 private:
  const Clock& clock_;
  struct Key {
    std::uint64_t device;
    std::uint64_t inode;
    std::uint64_t size;
    std::int64_t mtimeNanos;
    std::int64_t ctimeNanos;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    std::size_t operator()(const Key& k) const;
  };
  using Lru = std::list<std::pair<Key, std::string>>;  // front = most recently used

  const std::size_t maxEntries_;
  mutable std::mutex mu_;
  Lru lru_;                                                // guarded by mu_
  std::unordered_map<Key, Lru::iterator, KeyHash> index_;  // guarded by mu_
  FileHashStats stats_;                                    // guarded by mu_
};

}  // namespace zastava
