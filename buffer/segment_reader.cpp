#include "buffer/segment_reader.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>

#include "buffer/segment_writer.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;

Error readError(const fs::path& path, std::string_view what, int err) {
  return Error{err == ENOENT ? ErrorCode::kNotFound : ErrorCode::kIo,
               std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

}  // namespace

SegmentReader::SegmentReader(fs::path directory) : directory_(std::move(directory)) {}

SegmentReader::~SegmentReader() { closeSegment(); }

void SegmentReader::closeSegment() {
  if (fd_ >= 0) ::close(fd_);  // opened read-only: a failed close loses nothing
  fd_ = -1;
  offset_ = 0;
  lineNumber_ = 0;
  partial_.clear();
}

Result<SegmentReader::Batch> SegmentReader::readNew() {
  // Listed before the current segment is read: a segment newer than it that is already there
  // proves the writer has finished the current one, so reading it to its end misses nothing.
  auto segments = listSegments(directory_);
  if (!segments.ok()) return segments.error();
  std::vector<std::pair<std::uint64_t, fs::path>> listed;
  for (const auto& segment : *segments) listed.emplace_back(segment.seq, segment.path);

  Batch batch;
  if (fd_ < 0) {
    auto opened = openNext(listed, batch);
    if (!opened.ok()) return opened.error();
    if (!*opened) return batch;
  }
  while (true) {
    const bool finished = !listed.empty() && listed.back().first > seq_;
    if (auto drained = drainCurrent(finished, batch.lines); !drained.ok()) return drained.error();
    if (!finished) return batch;
    auto opened = openNext(listed, batch);
    if (!opened.ok()) return opened.error();
    if (!*opened) return batch;
  }
}

Result<bool> SegmentReader::openNext(const std::vector<std::pair<std::uint64_t, fs::path>>& listed,
                                     Batch& batch) {
  const std::uint64_t after = seq_;  // 0 before the first segment: segments count from 1
  closeSegment();
  for (const auto& [seq, path] : listed) {
    if (seq <= after) continue;
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) {
      batch.vanished.push_back(path);
      continue;
    }
    if (fd < 0) return readError(path, "cannot open", errno);
    fd_ = fd;
    path_ = path;
    seq_ = seq;
    return true;
  }
  return false;
}

Result<void> SegmentReader::drainCurrent(bool final, std::vector<Line>& out) {
  struct stat st {};
  if (::fstat(fd_, &st) != 0) return readError(path_, "cannot read", errno);
  // The agent cuts a torn last line off at start-up: bytes kept in partial_ may be gone.
  if (static_cast<std::uint64_t>(st.st_size) < offset_ + partial_.size()) partial_.clear();
  std::array<char, std::size_t{64} * 1024> buffer{};
  while (true) {
    const auto position = static_cast<off_t>(offset_ + partial_.size());
    const ssize_t n = ::pread(fd_, buffer.data(), buffer.size(), position);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return readError(path_, "cannot read", errno);
    if (n == 0) break;
    partial_.append(buffer.data(), static_cast<std::size_t>(n));
    std::size_t start = 0;
    for (std::size_t end = partial_.find('\n'); end != std::string::npos;
         end = partial_.find('\n', start)) {
      out.push_back(Line{partial_.substr(start, end - start), path_, ++lineNumber_, false});
      start = end + 1;
    }
    offset_ += start;
    partial_.erase(0, start);
  }
  if (final && !partial_.empty()) {
    out.push_back(Line{std::move(partial_), path_, ++lineNumber_, true});
    partial_.clear();
  }
  return okResult();
}

}  // namespace zastava
