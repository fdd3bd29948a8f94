#include "collectors/procfs/file_hasher.h"

#include <linux/magic.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <vector>

#include "collectors/procfs/proc_io.h"
#include "common/sha256.h"

namespace zastava {
namespace {

// Streams the file through SHA-256 with a fixed buffer. Sets bytesRead.
Result<std::string> sha256OfFd(int fd, std::uint64_t& bytesRead) {
  std::vector<char> buffer(FileHashCache::kBufferBytes);
  Sha256 sha256;
  bytesRead = 0;
  while (true) {
    const ssize_t n = ::pread(fd, buffer.data(), buffer.size(), static_cast<off_t>(bytesRead));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errnoError(errno);
    }
    if (n == 0) break;
    sha256.update(std::string_view(buffer.data(), static_cast<std::size_t>(n)));
    bytesRead += static_cast<std::uint64_t>(n);
  }
  return sha256.hexDigest();
}

std::int64_t nanosOf(const struct timespec& t) {
  return static_cast<std::int64_t>(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
}

// The device part of the key. Docker's overlay2 gives each container's mount its own st_dev,
// while st_ino, size and times are those of the file in its image layer, the same in every
// container of the image: files on overlayfs share one device number in the key, so the
// containers of an image share their entries. (ctime, also in the key, tells apart files of
// overlays on different filesystems that happen to share an inode number, size and mtime.)
std::uint64_t keyDevice(int fd, const struct stat& st) {
  constexpr std::uint64_t kOverlayfs = OVERLAYFS_SUPER_MAGIC;
  struct statfs fs {};
  if (::fstatfs(fd, &fs) == 0 && static_cast<std::uint64_t>(fs.f_type) == kOverlayfs) {
    return ~std::uint64_t{0};
  }
  return static_cast<std::uint64_t>(st.st_dev);
}

}  // namespace

std::size_t FileHashCache::KeyHash::operator()(const Key& k) const {
  std::size_t h = std::hash<std::uint64_t>{}(k.device);
  for (const std::uint64_t v : {k.inode, k.size, static_cast<std::uint64_t>(k.mtimeNanos),
                                static_cast<std::uint64_t>(k.ctimeNanos)}) {
    h ^= std::hash<std::uint64_t>{}(v) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
  }
  return h;
}

FileHashCache::FileHashCache(const Clock& clock, std::size_t maxEntries)
    : clock_(clock), maxEntries_(maxEntries == 0 ? 1 : maxEntries) {}

Result<FileHash> FileHashCache::hashFd(int fd, std::uint64_t byteBudget) {
  struct stat st {};
  if (::fstat(fd, &st) != 0) return errnoError(errno);
  if (!S_ISREG(st.st_mode)) return Error{ErrorCode::kInvalidArgument, "not a regular file"};
  const Key key{keyDevice(fd, st), static_cast<std::uint64_t>(st.st_ino),
                static_cast<std::uint64_t>(st.st_size), nanosOf(st.st_mtim), nanosOf(st.st_ctim)};
  FileHash out;
  out.size = key.size;
  out.device = static_cast<std::uint64_t>(st.st_dev);
  out.inode = key.inode;
  {
    std::lock_guard lock(mu_);
    const auto it = index_.find(key);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      ++stats_.hits;
      out.sha256 = it->second->second;
      out.cached = true;
      return out;
    }
    ++stats_.misses;
  }
  if (key.size > byteBudget) {
    out.overBudget = true;
    return out;
  }
  const MonoTime started = clock_.monotonic();
  auto digest = sha256OfFd(fd, out.bytesRead);
  const auto nanos =
      std::chrono::duration_cast<std::chrono::nanoseconds>(clock_.monotonic() - started).count();
  std::lock_guard lock(mu_);
  stats_.bytesHashed += out.bytesRead;
  stats_.hashNanos += static_cast<std::uint64_t>(nanos);
  if (!digest.ok()) return digest.error();
  ++stats_.filesHashed;
  out.sha256 = std::move(digest.value());
  if (out.bytesRead != key.size || index_.count(key) != 0) return out;
  lru_.emplace_front(key, out.sha256);
  index_.emplace(key, lru_.begin());
  while (lru_.size() > maxEntries_) {
    index_.erase(lru_.back().first);
    lru_.pop_back();
    ++stats_.evictions;
  }
  return out;
}

Result<FileHash> FileHashCache::hashPath(const std::string& path, std::uint64_t byteBudget) {
  auto fd = openReadOnly(path);
  if (!fd.ok()) return fd.error();
  return hashFd(fd->get(), byteBudget);
}

FileHashStats FileHashCache::stats() const {
  std::lock_guard lock(mu_);
  FileHashStats copy = stats_;
  copy.entries = lru_.size();
  return copy;
}

}  // namespace zastava
