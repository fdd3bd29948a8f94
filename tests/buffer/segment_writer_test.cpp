#include "buffer/segment_writer.h"

#include <doctest/doctest.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <chrono>
#include <csignal>
#include <string>

#include "buffer_test_util.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

using namespace std::chrono_literals;
using testing::allSegmentLines;
using testing::fileMode;
using testing::metricValue;
using testing::segmentFiles;

constexpr std::int64_t kHour = 3600 * testing::kSecond;

// 40 characters, 41 bytes on disk.
std::string line(int n) {
  std::string text = "line-" + std::to_string(n);
  text.resize(40, '.');
  return text;
}

struct Fixture {
  testing::TempDir tmp;
  std::filesystem::path dir = tmp.path() / "runtime-events";
  ManualClock clock{testing::kStart};
  Metrics metrics{testing::testBuild()};

  std::unique_ptr<SegmentWriter> open(const BufferLimits& limits) {
    auto writer = SegmentWriter::open(dir, limits, clock, metrics);
    REQUIRE(writer.ok());
    return std::move(*writer);
  }
};

BufferLimits limits(std::uint64_t fileBytes, std::uint64_t totalBytes, std::int64_t retention) {
  BufferLimits result;
  result.maxFileBytes = fileBytes;
  result.maxTotalBytes = totalBytes;
  result.retentionNanos = retention;
  return result;
}

TEST_CASE("segments rotate before a line would overflow maxFileBytes") {
  Fixture f;
  auto writer = f.open(limits(100, 10000, 24 * kHour));
  for (int i = 0; i < 5; ++i) writer->append(line(i));
  REQUIRE(writer->sync().ok());
  const auto files = segmentFiles(f.dir);
  REQUIRE(files.size() == 3);
  CHECK(testing::readFile(files[0]) == line(0) + "\n" + line(1) + "\n");
  CHECK(testing::readFile(files[2]) == line(4) + "\n");
  CHECK(files[0].filename().string() == segmentFileName(testing::kStart, 1));
  CHECK(files[0].filename().string() == "events-20261122T143447Z-000001.ndjson");
  CHECK(fileMode(files[0]) == 0640);
  CHECK(fileMode(f.dir) == 0750);
  CHECK(writer->totalBytes() == 5 * 41);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_rotations_total") == 2);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_written_bytes_total") == 5 * 41);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_bytes") == 5 * 41);
}

TEST_CASE("a line larger than maxFileBytes gets a segment of its own") {
  Fixture f;
  auto writer = f.open(limits(30, 10000, 24 * kHour));
  writer->append(line(0));
  writer->append(line(1));
  REQUIRE(writer->sync().ok());
  CHECK(segmentFiles(f.dir).size() == 2);
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(0), line(1)});
}

TEST_CASE("the total cap deletes the oldest sealed segments, never the active one") {
  Fixture f;
  auto writer = f.open(limits(100, 200, 24 * kHour));
  for (int i = 0; i < 10; ++i) {
    writer->append(line(i));
    REQUIRE(writer->sync().ok());
  }
  CHECK(writer->totalBytes() <= 200);
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(6), line(7), line(8), line(9)});
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_segments_deleted_total{reason=\"size\"}") ==
        3);

  auto tiny = f.open(limits(100, 10, 24 * kHour));
  tiny->append(line(10));
  REQUIRE(tiny->sync().ok());
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(10)});
}

TEST_CASE("an old active segment is sealed and sealed segments expire after the retention") {
  Fixture f;
  auto writer = f.open(limits(10000, 100000, 2 * kHour));
  writer->append(line(0));
  REQUIRE(writer->sync().ok());
  f.clock.advance(std::chrono::nanoseconds(kHour - 1));
  writer->append(line(1));
  REQUIRE(writer->sync().ok());
  CHECK(segmentFiles(f.dir).size() == 1);

  f.clock.advance(1ns);
  writer->append(line(2));
  REQUIRE(writer->sync().ok());  // seals the first segment at kStart + 1h
  REQUIRE(segmentFiles(f.dir).size() == 2);

  f.clock.advance(std::chrono::nanoseconds(2 * kHour));
  REQUIRE(writer->maintain().ok());  // the second segment is 1h old now: sealed, not deleted
  CHECK(segmentFiles(f.dir).size() == 2);
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_rotations_total") == 2);

  f.clock.advance(1ns);
  REQUIRE(writer->maintain().ok());
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(2)});
  CHECK(metricValue(f.metrics, "zastava_agent_buffer_segments_deleted_total{reason=\"age\"}") == 1);
}

TEST_CASE("after a reopen the seq continues and the old bytes still count") {
  Fixture f;
  {
    auto writer = f.open(limits(10000, 100000, 24 * kHour));
    writer->append(line(0));
    REQUIRE(writer->sync().ok());
  }
  f.clock.advance(5s);
  auto writer = f.open(limits(10000, 100000, 24 * kHour));
  CHECK(writer->totalBytes() == 41);
  writer->append(line(1));
  REQUIRE(writer->sync().ok());
  const auto files = segmentFiles(f.dir);
  REQUIRE(files.size() == 2);
  CHECK(files[1].filename().string() == segmentFileName(testing::kStart + 5 * testing::kSecond, 2));
  CHECK(writer->totalBytes() == 82);
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(0), line(1)});
}

TEST_CASE("a write cut short by the file size limit resumes exactly where it stopped") {
  Fixture f;
  auto writer = f.open(limits(10000, 100000, 24 * kHour));
  writer->append(line(0));
  REQUIRE(writer->sync().ok());

  struct rlimit saved {};
  REQUIRE(::getrlimit(RLIMIT_FSIZE, &saved) == 0);
  auto* previous = std::signal(SIGXFSZ, SIG_IGN);
  struct rlimit small = saved;
  small.rlim_cur = 50;
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
  writer->append(line(1));
  writer->append(line(2));
  const auto failed = writer->sync();
  REQUIRE(::setrlimit(RLIMIT_FSIZE, &saved) == 0);
  std::signal(SIGXFSZ, previous);

  REQUIRE_FALSE(failed.ok());
  CHECK(failed.error().code == ErrorCode::kIo);
  CHECK(failed.error().message.find("events-") != std::string::npos);
  CHECK(writer->hasPending());
  REQUIRE(writer->sync().ok());
  CHECK_FALSE(writer->hasPending());
  CHECK(allSegmentLines(f.dir) == std::vector<std::string>{line(0), line(1), line(2)});
  CHECK(writer->totalBytes() == 3 * 41);
}

TEST_CASE("the segment directory is 0750 whatever the umask") {
  Fixture f;
  const mode_t saved = ::umask(077);
  auto writer = SegmentWriter::open(f.dir, limits(100, 10000, 24 * kHour), f.clock, f.metrics);
  ::umask(saved);
  REQUIRE(writer.ok());
  CHECK(fileMode(f.dir) == 0750);
}

TEST_CASE("a directory that cannot be synced is an error naming it") {
  // procfs cannot sync its directories: fsync says EINVAL, as other such file systems do.
  auto proc = syncDirectory("/proc");
  REQUIRE_FALSE(proc.ok());
  CHECK(proc.error().code == ErrorCode::kIo);
  CHECK(proc.error().message == "cannot fsync directory /proc: Invalid argument");

  testing::TempDir tmp;
  const auto missing = tmp.path() / "gone";
  auto gone = syncDirectory(missing);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().message ==
        "cannot open directory " + missing.string() + " to sync it: No such file or directory");
  CHECK(syncDirectory(tmp.path()).ok());
}

}  // namespace
}  // namespace zastava
