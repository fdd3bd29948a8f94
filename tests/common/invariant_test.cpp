#include "common/invariant.h"

#include <doctest/doctest.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

namespace zastava {
namespace {

namespace fs = std::filesystem;

constexpr const char* kThisFile = "tests/common/invariant_test.cpp";

struct Ended {
  InvariantFailure failure;
};

void throwInstead(const InvariantFailure& failure) { throw Ended{failure}; }

// The release path through its seams: the process is not ended (the end throws instead), the
// counter counts, and the log goes to `log`. Restores the defaults after the test.
class Seams {
 public:
  Seams() : previous_(spdlog::default_logger()) {
    auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(log_);
    sink->set_pattern("%l %v");
    spdlog::set_default_logger(std::make_shared<spdlog::logger>("invariant-test", sink));
    setInvariantEnd(throwInstead);
    onInvariantFailure([this] { ++counted_; });
  }
  ~Seams() {
    setInvariantEnd(nullptr);
    onInvariantFailure(nullptr);
    auto stopped = keepInvariantFailuresIn({});
    CHECK(stopped.ok());
    spdlog::set_default_logger(previous_);
  }
  Seams(const Seams&) = delete;
  Seams& operator=(const Seams&) = delete;

  int counted() const { return counted_; }
  std::string log() const { return log_.str(); }

 private:
  std::shared_ptr<spdlog::logger> previous_;
  std::ostringstream log_;
  int counted_ = 0;
};

// Runs ZASTAVA_BUG(what) and returns what reached the end; fails the test if nothing did.
InvariantFailure breakInvariant(const std::string& what, int& line) {
  try {
    line = __LINE__ + 1;
    ZASTAVA_BUG(what);
  } catch (const Ended& ended) {
    return ended.failure;
  }
}

std::vector<std::string> linesOf(const fs::path& file) {
  std::ifstream in(file);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

fs::path freshDirectory() {
  char name[] = "/tmp/zastava-invariant-XXXXXX";
  REQUIRE(::mkdtemp(name) != nullptr);
  return name;
}

TEST_CASE("ZASTAVA_BUG logs where and what broke at critical, counts it, then ends") {
  Seams seams;
  int line = 0;
  const InvariantFailure failure = breakInvariant("RecordSource out of range: 7", line);
  CHECK(failure.file == kThisFile);
  CHECK(failure.line == line);
  CHECK(failure.what == "RecordSource out of range: 7");
  CHECK(seams.counted() == 1);
  CHECK(seams.log() == "critical invariant failed at " + std::string(kThisFile) + ":" +
                           std::to_string(line) + ": RecordSource out of range: 7\n");
}

TEST_CASE("each failure is appended to the kept file, which the next start counts") {
  Seams seams;
  const fs::path dir = freshDirectory();
  const fs::path file = dir / "invariant-failures.log";
  auto first = keepInvariantFailuresIn(file);
  REQUIRE(first.ok());
  CHECK(*first == 0);
  CHECK(fs::exists(file));  // created at start-up: an unwritable directory shows then

  int line = 0;
  breakInvariant("one\nwith a newline", line);
  breakInvariant("two", line);
  const auto lines = linesOf(file);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0].find(" invariant failed at " + std::string(kThisFile) + ":") != std::string::npos);
  CHECK(lines[0].ends_with(": one with a newline"));
  CHECK(lines[1].ends_with(":" + std::to_string(line) + ": two"));
  CHECK(seams.counted() == 2);

  auto again = keepInvariantFailuresIn(file);  // the next start
  REQUIRE(again.ok());
  CHECK(*again == 2);
  fs::remove_all(dir);
}

TEST_CASE("a kept file that cannot be created is an error naming it") {
  auto kept = keepInvariantFailuresIn("/nonexistent-zastava-dir/invariant-failures.log");
  REQUIRE_FALSE(kept.ok());
  CHECK(kept.error().code == ErrorCode::kIo);
  CHECK(kept.error().message ==
        "cannot open /nonexistent-zastava-dir/invariant-failures.log: No such file or directory");
}

TEST_CASE("by default a broken invariant ends the process: exit 70 in release, abort otherwise") {
  const pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    const rlimit noCore{0, 0};
    ::setrlimit(RLIMIT_CORE, &noCore);  // an abort needs no core file here
    spdlog::set_level(spdlog::level::off);
    ZASTAVA_BUG("on purpose, in a child process");
  }
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
#if !defined(NDEBUG) || defined(ZASTAVA_SANITIZED)
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGABRT);
#else
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == kExitInvariantFailure);
#endif
}

}  // namespace
}  // namespace zastava
