// Helpers shared by the buffer tests: a private temporary directory, sample records, reading
// NDJSON files back, and reading one sample out of the Prometheus exposition.
#pragma once

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "buffer/record.h"
#include "health/metrics.h"

namespace zastava::testing {

inline constexpr UnixNanos kStart = 1795358087782735455;  // 2026-11-22T..Z
inline constexpr std::int64_t kSecond = 1'000'000'000;

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "zastava-buffer-XXXXXX");
    path_ = ::mkdtemp(pattern.data());
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

inline Record engineRecord(const std::string& containerId, const std::string& action,
                           std::int64_t timeNano) {
  Record record;
  record.eventId = eventIdForEngineEvent("container", action, containerId, timeNano);
  record.kind = "container." + action;
  record.source = RecordSource::kStream;
  record.time = timeNano;
  record.timeNano = timeNano;
  record.observedAt = timeNano + 1000;
  record.action = action;
  record.container.id = containerId;
  record.container.name = "web";
  record.container.image = "zastava-test/busybox:1";
  record.attributes = {{"image", "zastava-test/busybox:1"}, {"name", "web"}};
  return record;
}

inline std::string readFile(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

// How many of this process's threads have `name` (as /proc/self/task/TID/comm says).
inline int threadsNamed(const std::string& name) {
  int count = 0;
  for (const auto& task : std::filesystem::directory_iterator("/proc/self/task")) {
    if (readFile(task.path() / "comm") == name + "\n") ++count;
  }
  return count;
}

inline std::vector<std::string> splitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

// Every NDJSON file in `dir`, sorted by name (the seq is the tiebreak within one second).
inline std::vector<std::filesystem::path> segmentFiles(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() == ".ndjson") files.push_back(entry.path());
  }
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    auto seq = [](const std::filesystem::path& p) {
      const std::string stem = p.stem().string();
      return std::stoull(stem.substr(stem.rfind('-') + 1));
    };
    return seq(a) < seq(b);
  });
  return files;
}

inline std::vector<std::string> allSegmentLines(const std::filesystem::path& dir) {
  std::vector<std::string> lines;
  for (const auto& file : segmentFiles(dir)) {
    for (auto& line : splitLines(readFile(file))) lines.push_back(std::move(line));
  }
  return lines;
}

inline mode_t fileMode(const std::filesystem::path& path) {
  struct stat st {};
  ::stat(path.c_str(), &st);
  return st.st_mode & 07777;
}

// The value of the sample `series` ("name" or "name{labels}") in the exposition, -1 if absent.
inline double metricValue(const Metrics& metrics, const std::string& series) {
  std::istringstream in(metrics.exposition());
  for (std::string line; std::getline(in, line);) {
    if (line.starts_with(series + " ")) return std::stod(line.substr(series.size() + 1));
  }
  return -1;
}

inline BuildInfo testBuild() { return BuildInfo{"test", "0000000"}; }

}  // namespace zastava::testing
