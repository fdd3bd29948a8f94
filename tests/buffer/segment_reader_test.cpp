#include "buffer/segment_reader.h"

#include <doctest/doctest.h>

#include <fstream>
#include <string>

#include "buffer/segment_writer.h"
#include "buffer_test_util.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

struct Fixture {
  testing::TempDir tmp;
  std::filesystem::path dir = tmp.path() / "runtime-events";
  SegmentReader reader{dir};

  Fixture() { std::filesystem::create_directory(dir); }

  std::filesystem::path segment(std::uint64_t seq) const {
    return dir / segmentFileName(testing::kStart, seq);
  }
  void append(std::uint64_t seq, const std::string& bytes) const {
    std::ofstream(segment(seq), std::ios::app | std::ios::binary) << bytes;
  }
  std::vector<std::string> readTexts() {
    auto batch = reader.readNew();
    REQUIRE(batch.ok());
    std::vector<std::string> texts;
    for (const auto& line : batch->lines) texts.push_back(line.text);
    return texts;
  }
};

using Texts = std::vector<std::string>;

TEST_CASE("the reader returns each complete line once, across segments written by the writer") {
  Fixture f;
  ManualClock clock(testing::kStart);
  Metrics metrics(testing::testBuild());
  BufferLimits limits;
  limits.maxFileBytes = 20;  // two 9-byte lines per segment
  limits.maxTotalBytes = 1000;
  limits.retentionNanos = 3600 * testing::kSecond;
  auto writer = SegmentWriter::open(f.dir, limits, clock, metrics);
  REQUIRE(writer.ok());
  for (int i = 1; i <= 3; ++i) (*writer)->append("record-" + std::to_string(i));
  REQUIRE((*writer)->sync().ok());
  CHECK(f.readTexts() == Texts{"record-1", "record-2", "record-3"});
  CHECK(f.readTexts().empty());
  for (int i = 4; i <= 5; ++i) (*writer)->append("record-" + std::to_string(i));
  REQUIRE((*writer)->sync().ok());
  CHECK(testing::segmentFiles(f.dir).size() == 3);
  CHECK(f.readTexts() == Texts{"record-4", "record-5"});
}

TEST_CASE("a line being written is returned once it ends, whole") {
  Fixture f;
  f.append(1, "{\"a\":1}\n{\"b\":");
  CHECK(f.readTexts() == Texts{"{\"a\":1}"});
  CHECK(f.readTexts().empty());
  f.append(1, "2}\n");
  auto batch = f.reader.readNew();
  REQUIRE(batch.ok());
  REQUIRE(batch->lines.size() == 1);
  CHECK(batch->lines[0].text == "{\"b\":2}");
  CHECK(batch->lines[0].number == 2);
  CHECK(batch->lines[0].segment == f.segment(1));
  CHECK_FALSE(batch->lines[0].torn);
}

TEST_CASE("a segment deleted by retention while it is read still yields its last lines") {
  Fixture f;
  f.append(1, "one\n");
  CHECK(f.readTexts() == Texts{"one"});
  f.append(1, "two\n");
  f.append(2, "three\n");
  std::filesystem::remove(f.segment(1));
  CHECK(f.readTexts() == Texts{"two", "three"});
}

TEST_CASE("the rest of a line at the end of a segment the writer left is a torn line") {
  Fixture f;
  f.append(1, "one\n{\"cut");
  f.append(2, "two\n");
  auto batch = f.reader.readNew();
  REQUIRE(batch.ok());
  REQUIRE(batch->lines.size() == 3);
  CHECK(batch->lines[1].text == "{\"cut");
  CHECK(batch->lines[1].torn);
  CHECK(batch->lines[1].number == 2);
  CHECK(batch->lines[2].text == "two");
}

TEST_CASE("a torn tail cut off by the agent's start-up is forgotten, the lines after it read") {
  Fixture f;
  f.append(1, "one\n{\"cut");
  CHECK(f.readTexts() == Texts{"one"});
  std::filesystem::resize_file(f.segment(1), 4);  // as resync does
  f.append(1, "two\n");
  CHECK(f.readTexts() == Texts{"two"});
}

TEST_CASE("a missing directory is kNotFound; an empty one has nothing to read") {
  testing::TempDir tmp;
  SegmentReader missing(tmp.path() / "runtime-events");
  auto batch = missing.readNew();
  REQUIRE_FALSE(batch.ok());
  CHECK(batch.error().code == ErrorCode::kNotFound);
  CHECK(batch.error().message.find("runtime-events") != std::string::npos);
  std::filesystem::create_directory(tmp.path() / "runtime-events");
  batch = missing.readNew();
  REQUIRE(batch.ok());
  CHECK(batch->lines.empty());
}

}  // namespace
}  // namespace zastava
