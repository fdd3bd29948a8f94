#include "buffer/segment_writer.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "health/metrics.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr std::int64_t kMaxActiveAgeNanos = 3600 * kNanosPerSecond;
constexpr std::size_t kMaxLinesPerWrite = 1024;  // IOV_MAX on Linux
constexpr std::string_view kPrefix = "events-";
constexpr std::string_view kSuffix = ".ndjson";
constexpr std::size_t kStampChars = 15;  // yyyyMMddTHHmmss
constexpr mode_t kFileMode = 0640;
constexpr mode_t kDirMode = 0750;

std::optional<SegmentWriter::SegmentInfo> parseSegmentName(const fs::path& path) {
  const std::string name = path.filename().string();
  if (name.size() < kPrefix.size() + kStampChars + 3 + kSuffix.size()) return std::nullopt;
  if (!name.starts_with(kPrefix) || !name.ends_with(kSuffix)) return std::nullopt;
  const std::string stamp = name.substr(kPrefix.size(), kStampChars);
  std::string_view rest(name);
  rest = rest.substr(kPrefix.size() + kStampChars);
  if (!rest.starts_with("Z-")) return std::nullopt;
  rest = rest.substr(2, rest.size() - 2 - kSuffix.size());
  std::uint64_t seq = 0;
  auto [end, ec] = std::from_chars(rest.data(), rest.data() + rest.size(), seq);
  if (ec != std::errc() || end != rest.data() + rest.size() || rest.empty()) return std::nullopt;
  struct tm utc {};
  if (std::sscanf(stamp.c_str(), "%4d%2d%2dT%2d%2d%2d", &utc.tm_year, &utc.tm_mon, &utc.tm_mday,
                  &utc.tm_hour, &utc.tm_min, &utc.tm_sec) != 6) {
    return std::nullopt;
  }
  utc.tm_year -= 1900;
  utc.tm_mon -= 1;
  SegmentWriter::SegmentInfo info;
  info.path = path;
  info.seq = seq;
  info.createdAt = static_cast<UnixNanos>(timegm(&utc)) * kNanosPerSecond;
  return info;
}

ErrorCode codeForErrno(int err) {
  return (err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo;
}

}  // namespace

std::string segmentFileName(UnixNanos createdAt, std::uint64_t seq) {
  std::int64_t seconds = createdAt / kNanosPerSecond;
  if (createdAt % kNanosPerSecond < 0) seconds -= 1;
  const auto asTimeT = static_cast<time_t>(seconds);
  struct tm utc {};
  gmtime_r(&asTimeT, &utc);
  std::array<char, 96> buf{};
  std::snprintf(buf.data(), buf.size(), "events-%04d%02d%02dT%02d%02d%02dZ-%06llu.ndjson",
                utc.tm_year + 1900, utc.tm_mon + 1, utc.tm_mday, utc.tm_hour, utc.tm_min,
                utc.tm_sec, static_cast<unsigned long long>(seq));
  return buf.data();
}

SegmentWriter::SegmentWriter(fs::path directory, const BufferLimits& limits, Clock& clock,
                             Metrics& metrics)
    : directory_(std::move(directory)), limits_(limits), clock_(clock), metrics_(metrics) {
  metrics_.setBufferMaxBytes(limits_.maxTotalBytes);
}

SegmentWriter::~SegmentWriter() {
  if (activeFd_ < 0) return;
  if (auto synced = syncActive(); !synced) {
    spdlog::error(
        "buffer: {} at shutdown; SQLite holds those records, and the next start "
        "writes them to the segments again",
        synced.error().message);
  }
  closeActive();
}

Result<std::unique_ptr<SegmentWriter>> SegmentWriter::open(const fs::path& directory,
                                                           const BufferLimits& limits, Clock& clock,
                                                           Metrics& metrics) {
  std::unique_ptr<SegmentWriter> writer(new SegmentWriter(directory, limits, clock, metrics));
  auto scanned = writer->scanExisting();
  if (!scanned) return scanned.error();
  writer->publishTotal();
  return writer;
}

Error SegmentWriter::fileError(const fs::path& path, std::string_view what, int err) const {
  return Error{codeForErrno(err),
               std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

Result<void> syncDirectory(const fs::path& directory) {
  const int fd = ::open(directory.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    return Error{codeForErrno(err), "cannot open directory " + directory.string() +
                                        " to sync it: " + std::strerror(err)};
  }
  const int rc = ::fsync(fd);
  const int err = errno;
  ::close(fd);  // opened read-only: a failed close loses nothing
  if (rc != 0) {
    return Error{codeForErrno(err),
                 "cannot fsync directory " + directory.string() + ": " + std::strerror(err)};
  }
  return okResult();
}

Result<std::vector<SegmentWriter::SegmentInfo>> listSegments(const fs::path& directory) {
  std::error_code ec;
  fs::directory_iterator it(directory, ec);
  if (ec) {
    return Error{ec.value() == ENOENT ? ErrorCode::kNotFound : codeForErrno(ec.value()),
                 "cannot list " + directory.string() + ": " + std::strerror(ec.value())};
  }
  std::vector<SegmentWriter::SegmentInfo> segments;
  for (const auto& entry : it) {
    auto info = parseSegmentName(entry.path());
    if (!info) continue;
    struct stat st {};
    if (::lstat(entry.path().c_str(), &st) != 0 || !S_ISREG(st.st_mode)) continue;
    info->bytes = static_cast<std::uint64_t>(st.st_size);
    info->sealedAt =
        static_cast<UnixNanos>(st.st_mtim.tv_sec) * kNanosPerSecond + st.st_mtim.tv_nsec;
    segments.push_back(*info);
  }
  std::sort(segments.begin(), segments.end(),
            [](const auto& a, const auto& b) { return a.seq < b.seq; });
  return segments;
}

Result<void> SegmentWriter::scanExisting() {
  if (::mkdir(directory_.c_str(), kDirMode) == 0) {
    // mkdir's mode went through the umask; and the new entry is durable once its parent is
    // synced.
    if (::chmod(directory_.c_str(), kDirMode) != 0) {
      return fileError(directory_, "cannot chmod", errno);
    }
    auto synced = syncDirectory(directory_.parent_path());
    if (!synced) return synced;
  } else if (errno != EEXIST) {
    return fileError(directory_, "cannot create", errno);
  }
  auto existing = listSegments(directory_);
  if (!existing.ok()) return existing.error();
  sealed_ = std::move(*existing);
  if (!sealed_.empty()) nextSeq_ = sealed_.back().seq + 1;
  return okResult();
}

void SegmentWriter::append(std::string line) {
  line.push_back('\n');
  pending_.push_back(std::move(line));
}

bool SegmentWriter::activeTooOld(UnixNanos now) const {
  const std::int64_t maxAge = std::min(kMaxActiveAgeNanos, limits_.retentionNanos);
  return active_ && active_->bytes > 0 && now - active_->createdAt >= maxAge;
}

Result<void> SegmentWriter::sync() {
  const UnixNanos now = clock_.now();
  while (!pending_.empty()) {
    if (active_ && headWritten_ == 0 && active_->bytes > 0 &&
        (active_->bytes + pending_.front().size() > limits_.maxFileBytes || activeTooOld(now))) {
      auto sealed = sealActive();
      if (!sealed) return sealed;
    }
    if (!active_) {
      auto opened = openNewSegment();
      if (!opened) return opened;
    }
    auto written = writePending();
    if (!written) return written;
  }
  auto synced = syncActive();
  if (!synced) return synced;
  applyRetention(now);
  publishTotal();
  return okResult();
}

Result<void> SegmentWriter::maintain() {
  const UnixNanos now = clock_.now();
  Result<void> result;
  if (pending_.empty() && activeTooOld(now)) result = sealActive();
  applyRetention(now);
  publishTotal();
  return result;
}

Result<void> SegmentWriter::writePending() {
  std::array<iovec, kMaxLinesPerWrite> lines{};
  std::size_t count = 0;
  std::uint64_t size = active_->bytes;
  for (std::size_t i = 0; i < pending_.size() && count < lines.size(); ++i) {
    std::string& line = pending_[i];
    const std::size_t skip = i == 0 ? headWritten_ : 0;
    // The first line always goes: sync() has sealed a segment it would not fit in.
    if (i > 0 && size + line.size() > limits_.maxFileBytes) break;
    lines[count++] = iovec{line.data() + skip, line.size() - skip};
    size += line.size() - skip;
  }
  ssize_t n = -1;
  do {
    n = ::writev(activeFd_, lines.data(), static_cast<int>(count));
  } while (n < 0 && errno == EINTR);
  if (n < 0) return fileError(active_->path, "cannot write", errno);
  const auto written = static_cast<std::size_t>(n);
  active_->bytes += written;
  activeDirty_ = true;
  consumeWritten(written);
  metrics_.addBytesWritten(written);
  return okResult();
}

void SegmentWriter::consumeWritten(std::size_t bytes) {
  while (bytes > 0 && !pending_.empty()) {
    const std::size_t left = pending_.front().size() - headWritten_;
    if (bytes < left) {
      headWritten_ += bytes;
      return;
    }
    bytes -= left;
    pending_.pop_front();
    headWritten_ = 0;
  }
}

Result<void> SegmentWriter::syncActive() {
  if (activeFd_ < 0 || !activeDirty_) return okResult();
  if (::fdatasync(activeFd_) != 0) return fileError(active_->path, "cannot fdatasync", errno);
  activeDirty_ = false;
  return okResult();
}

Result<void> SegmentWriter::sealActive() {
  auto synced = syncActive();
  if (!synced) return synced;
  closeActive();
  active_->sealedAt = clock_.now();
  sealed_.push_back(*active_);
  active_.reset();
  metrics_.countRotation();
  return okResult();
}

Result<void> SegmentWriter::openNewSegment() {
  const UnixNanos now = clock_.now();
  fs::path path = directory_ / segmentFileName(now, nextSeq_);
  const int fd =
      ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, kFileMode);
  if (fd < 0) return fileError(path, "cannot create", errno);
  // The new name is durable once the directory is synced. Until then a failure takes the empty
  // file back, so that the next attempt can create it again.
  Result<void> ready = okResult();
  if (::fchmod(fd, kFileMode) != 0) ready = fileError(path, "cannot chmod", errno);
  if (ready) ready = syncDirectory(directory_);
  if (!ready) {
    ::close(fd);  // nothing written to it: a failed close loses nothing
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      spdlog::warn("buffer: cannot delete the empty segment {}: {}", path.string(),
                   std::strerror(errno));
    }
    return ready;
  }
  activeFd_ = fd;
  activeDirty_ = false;
  active_ = SegmentInfo{std::move(path), nextSeq_, now, 0, 0};
  ++nextSeq_;
  return okResult();
}

void SegmentWriter::closeActive() {
  if (::close(activeFd_) != 0) {
    spdlog::warn("buffer: closing segment {} failed: {}; its lines were synced before",
                 active_ ? active_->path.string() : directory_.string(), std::strerror(errno));
  }
  activeFd_ = -1;
}

bool SegmentWriter::deleteSegment(const SegmentInfo& segment, std::string_view reason) {
  if (::unlink(segment.path.c_str()) != 0 && errno != ENOENT) {
    spdlog::warn("buffer: cannot delete segment {}: {}", segment.path.string(),
                 std::strerror(errno));
    return false;
  }
  metrics_.countSegmentDeleted(reason);
  return true;
}

void SegmentWriter::applyRetention(UnixNanos now) {
  const UnixNanos cutoff = now - limits_.retentionNanos;
  std::erase_if(sealed_, [&](const SegmentInfo& segment) {
    return segment.sealedAt < cutoff && deleteSegment(segment, "age");
  });
  while (!sealed_.empty() && totalBytes() > limits_.maxTotalBytes) {
    if (!deleteSegment(sealed_.front(), "size")) break;
    sealed_.erase(sealed_.begin());
  }
}

std::uint64_t SegmentWriter::totalBytes() const {
  std::uint64_t total = active_ ? active_->bytes : 0;
  for (const auto& segment : sealed_) total += segment.bytes;
  return total;
}

std::vector<SegmentWriter::SegmentInfo> SegmentWriter::segments() const {
  std::vector<SegmentInfo> all = sealed_;
  if (active_) all.push_back(*active_);
  return all;
}

void SegmentWriter::publishTotal() { metrics_.setBufferBytes(totalBytes()); }

}  // namespace zastava
