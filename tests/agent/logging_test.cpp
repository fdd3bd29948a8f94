#include "agent/logging.h"

#include <doctest/doctest.h>
#include <spdlog/logger.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <regex>
#include <sstream>

namespace zastava {
namespace {

std::string logOnce(bool underSystemd, spdlog::level::level_enum level, const char* text) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_st>(out);
  sink->set_formatter(makeLogFormatter(underSystemd));
  spdlog::logger logger("test", sink);
  logger.set_level(spdlog::level::trace);
  logger.log(level, text);
  return out.str();
}

TEST_CASE("under systemd each line starts with its syslog priority and has no timestamp") {
  CHECK(logOnce(true, spdlog::level::trace, "t") == "<7>trace t\n");
  CHECK(logOnce(true, spdlog::level::debug, "d") == "<7>debug d\n");
  CHECK(logOnce(true, spdlog::level::info, "i") == "<6>info i\n");
  CHECK(logOnce(true, spdlog::level::warn, "w") == "<4>warning w\n");
  CHECK(logOnce(true, spdlog::level::err, "e") == "<3>error e\n");
  CHECK(logOnce(true, spdlog::level::critical, "c") == "<2>critical c\n");
}

TEST_CASE("outside systemd each line starts with a UTC timestamp") {
  std::string line = logOnce(false, spdlog::level::warn, "engine unreachable");
  CHECK(std::regex_match(line, std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z warning )"
                                          R"(engine unreachable\n)")));
}

TEST_CASE("toSpdlogLevel maps every level") {
  CHECK(toSpdlogLevel(LogLevel::kTrace) == spdlog::level::trace);
  CHECK(toSpdlogLevel(LogLevel::kDebug) == spdlog::level::debug);
  CHECK(toSpdlogLevel(LogLevel::kInfo) == spdlog::level::info);
  CHECK(toSpdlogLevel(LogLevel::kWarning) == spdlog::level::warn);
  CHECK(toSpdlogLevel(LogLevel::kError) == spdlog::level::err);
  CHECK(toSpdlogLevel(LogLevel::kCritical) == spdlog::level::critical);
}

TEST_CASE("setupLogging installs the default logger \"zastava\" at the level") {
  setupLogging(LogLevel::kWarning, true);
  auto logger = spdlog::default_logger();
  REQUIRE(logger != nullptr);
  CHECK(logger->name() == "zastava");
  CHECK(logger->level() == spdlog::level::warn);
  setupLogging(LogLevel::kDebug, false);
  CHECK(spdlog::default_logger()->level() == spdlog::level::debug);
}

TEST_CASE("runningUnderSystemd compares JOURNAL_STREAM with stderr") {
  const char* saved = std::getenv("JOURNAL_STREAM");
  std::string restore = saved ? saved : "";
  unsetenv("JOURNAL_STREAM");
  CHECK_FALSE(runningUnderSystemd());
  setenv("JOURNAL_STREAM", "garbage", 1);
  CHECK_FALSE(runningUnderSystemd());
  struct stat info {};
  REQUIRE(fstat(STDERR_FILENO, &info) == 0);
  std::string match = std::to_string(info.st_dev) + ":" + std::to_string(info.st_ino);
  setenv("JOURNAL_STREAM", match.c_str(), 1);
  CHECK(runningUnderSystemd());
  setenv("JOURNAL_STREAM", (match + "1").c_str(), 1);
  CHECK_FALSE(runningUnderSystemd());
  if (saved) {
    setenv("JOURNAL_STREAM", restore.c_str(), 1);
  } else {
    unsetenv("JOURNAL_STREAM");
  }
}

}  // namespace
}  // namespace zastava
