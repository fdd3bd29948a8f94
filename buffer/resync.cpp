#include "buffer/resync.h"

#include <fcntl.h>
#include <simdjson.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "buffer/segment_writer.h"
#include "buffer/sqlite_store.h"
#include "common/rfc3339.h"

namespace zastava {
namespace {

Error ioError(const std::filesystem::path& path, std::string_view what, int err) {
  return Error{(err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo,
               std::string(what) + " " + path.string() + ": " + std::strerror(err)};
}

Result<std::string> readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return ioError(path, "cannot read", errno);
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) return ioError(path, "cannot read", errno);
  return content.str();
}

Result<void> truncateTo(const std::filesystem::path& path, std::size_t size) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ioError(path, "cannot open", errno);
  int rc = ::ftruncate(fd, static_cast<off_t>(size));
  if (rc == 0) rc = ::fdatasync(fd);
  int err = errno;
  if (::close(fd) != 0 && rc == 0) {
    rc = -1;
    err = errno;
  }
  if (rc != 0) return ioError(path, "cannot truncate", err);
  return okResult();
}

// What identifies a stored record, read from its NDJSON line.
struct LineIdentity {
  std::string eventId;
  UnixNanos time = 0;
};

// nullopt when the line is not a record.
std::optional<LineIdentity> identityOf(const std::string& line) {
  simdjson::dom::parser parser;
  simdjson::dom::object record;
  std::string_view id;
  std::string_view time;
  if (parser.parse(line).get(record) != simdjson::SUCCESS ||
      record["eventId"].get(id) != simdjson::SUCCESS ||
      record["time"].get(time) != simdjson::SUCCESS) {
    return std::nullopt;
  }
  const auto nanos = parseRfc3339Nanos(time);
  if (!nanos) return std::nullopt;
  return LineIdentity{std::string(id), *nanos};
}

}  // namespace

Result<void> resyncSegments(SqliteStore& store, SegmentWriter& segments) {
  std::optional<SegmentWriter::SegmentInfo> newest;
  for (const auto& segment : segments.segments()) {
    if (segment.bytes > 0) newest = segment;
  }
  if (!newest) return okResult();
  auto content = readFile(newest->path);
  if (!content) return content.error();
  std::string& text = *content;
  if (!text.empty() && text.back() != '\n') {
    const std::size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
    spdlog::warn("buffer: cutting a torn line of {} bytes off {}", text.size() - keep,
                 newest->path.string());
    auto cut = truncateTo(newest->path, keep);
    if (!cut) return cut;
    text.resize(keep);
  }
  if (text.empty()) return okResult();
  text.pop_back();
  const std::string lastLine =
      text.substr(text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1);
  const auto identity = identityOf(lastLine);
  if (!identity) {
    spdlog::warn("buffer: the last line of {} is not a record; not resyncing",
                 newest->path.string());
    return okResult();
  }
  // The line is compared whole with the stored one: how it holds its hash is chainedLine's
  // business.
  auto found = store.findEvent(identity->time, identity->eventId);
  if (!found) return found.error();
  if (!*found || (*found)->line != lastLine) {
    spdlog::warn("buffer: the last line of {} is not in the database; not resyncing",
                 newest->path.string());
    return okResult();
  }
  auto missing = store.recordLines((*found)->rowid);
  if (!missing) return missing.error();
  if (missing->empty()) return okResult();  // the segments end where SQLite does
  for (std::string& line : *missing) segments.append(std::move(line));
  spdlog::warn("buffer: appended {} committed records missing from the NDJSON segments",
               missing->size());
  return segments.sync();
}

}  // namespace zastava
