#include "delivery/quarantine.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "buffer/segment_writer.h"

namespace zastava {
namespace {

constexpr const char* kQuarantineDirName = "backend-quarantine";

Result<void> writeFileSynced(const std::filesystem::path& path, std::string_view bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
  if (fd < 0)
    return Error{ErrorCode::kIo, "cannot create " + path.string() + ": " + std::strerror(errno)};
  std::size_t written = 0;
  while (written < bytes.size()) {
    const ssize_t n = ::write(fd, bytes.data() + written, bytes.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int err = errno;
      ::close(fd);
      return Error{err == ENOSPC ? ErrorCode::kDiskFull : ErrorCode::kIo,
                   "cannot write " + path.string() + ": " + std::strerror(err)};
    }
    written += static_cast<std::size_t>(n);
  }
  int synced = ::fsync(fd);
  int err = errno;
  if (::close(fd) != 0 && synced == 0) {
    synced = -1;
    err = errno;
  }
  if (synced != 0) {
    return Error{ErrorCode::kIo, "cannot sync " + path.string() + ": " + std::strerror(err)};
  }
  return okResult();
}

// The quarantined batches, oldest (smallest first rowid) first.
std::vector<std::filesystem::path> quarantinedBatches(const std::filesystem::path& dir) {
  std::vector<std::pair<std::int64_t, std::filesystem::path>> found;
  std::error_code ec;
  std::filesystem::directory_iterator entries(dir, ec);
  if (ec) {
    spdlog::warn("backend: cannot list {} to keep the newest {} batches: {}", dir.string(),
                 kQuarantineKeep, ec.message());
    return {};
  }
  for (const auto& entry : entries) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("batch-") || !name.ends_with(".ndjson")) continue;
    found.emplace_back(std::atoll(name.c_str() + std::strlen("batch-")), entry.path());
  }
  std::sort(found.begin(), found.end());
  std::vector<std::filesystem::path> paths;
  paths.reserve(found.size());
  for (auto& [first, path] : found) paths.push_back(std::move(path));
  return paths;
}

}  // namespace

Result<std::filesystem::path> quarantineBatch(const std::filesystem::path& dataDirectory,
                                              const PendingBatch& batch) {
  const std::filesystem::path dir = dataDirectory / kQuarantineDirName;
  const std::filesystem::path file = dir / ("batch-" + std::to_string(batch.firstRowid) + "-" +
                                            std::to_string(batch.lastRowid) + ".ndjson");
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return Error{ErrorCode::kIo, "cannot create " + dir.string() + ": " + ec.message()};
  if (::chmod(dir.c_str(), 0750) != 0) {
    return Error{ErrorCode::kIo, "cannot chmod " + dir.string() + ": " + std::strerror(errno)};
  }
  auto written = writeFileSynced(file, batch.body);
  if (!written) return written.error();
  // The delivery cursor moves past the batch next: its file's name must survive a crash too.
  if (auto synced = syncDirectory(dir); !synced) return synced.error();
  const auto kept = quarantinedBatches(dir);
  for (std::size_t i = 0; i + kQuarantineKeep < kept.size(); ++i) {
    spdlog::warn("backend: more than {} quarantined batches; deleting the oldest, {}",
                 kQuarantineKeep, kept[i].string());
    if (!std::filesystem::remove(kept[i], ec) && ec) {
      spdlog::warn("backend: cannot delete {}: {}", kept[i].string(), ec.message());
    }
  }
  return file;
}

}  // namespace zastava
