#include "agent/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include "common/invariant.h"

namespace zastava {
namespace {

constexpr char kPriorityFlag = '*';

int syslogPriority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::info:
      return 6;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    case spdlog::level::critical:
      return 2;
    default:
      return 6;
  }
}

class PriorityPrefix : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    char prefix[] = {'<', static_cast<char>('0' + syslogPriority(msg.level)), '>'};
    dest.append(prefix, prefix + sizeof(prefix));
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<PriorityPrefix>();
  }
};

bool parseUnsigned(std::string_view text, unsigned long long& out) {
  auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return !text.empty() && ec == std::errc() && ptr == text.data() + text.size();
}

}  // namespace

spdlog::level::level_enum toSpdlogLevel(LogLevel level) {
  switch (level) {
    case LogLevel::kTrace:
      return spdlog::level::trace;
    case LogLevel::kDebug:
      return spdlog::level::debug;
    case LogLevel::kInfo:
      return spdlog::level::info;
    case LogLevel::kWarning:
      return spdlog::level::warn;
    case LogLevel::kError:
      return spdlog::level::err;
    case LogLevel::kCritical:
      return spdlog::level::critical;
  }
  ZASTAVA_BUG("LogLevel out of range: " + std::to_string(static_cast<int>(level)));
}

std::unique_ptr<spdlog::pattern_formatter> makeLogFormatter(bool underSystemd) {
  if (!underSystemd) {
    return std::make_unique<spdlog::pattern_formatter>(std::string(kTerminalPattern),
                                                       spdlog::pattern_time_type::utc);
  }
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  formatter->add_flag<PriorityPrefix>(kPriorityFlag).set_pattern(std::string(kSystemdPattern));
  return formatter;
}

bool runningUnderSystemd() {
  const char* journal = std::getenv("JOURNAL_STREAM");
  if (journal == nullptr) return false;
  std::string_view text(journal);
  std::size_t colon = text.find(':');
  unsigned long long device = 0;
  unsigned long long inode = 0;
  struct stat info {};
  if (colon == std::string_view::npos || !parseUnsigned(text.substr(0, colon), device) ||
      !parseUnsigned(text.substr(colon + 1), inode) || fstat(STDERR_FILENO, &info) != 0) {
    return false;
  }
  return static_cast<unsigned long long>(info.st_dev) == device &&
         static_cast<unsigned long long>(info.st_ino) == inode;
}

void setupLogging(LogLevel level, bool underSystemd) {
  try {
    spdlog::sink_ptr sink;
    if (underSystemd) {
      sink = std::make_shared<spdlog::sinks::stderr_sink_mt>();
    } else {
      sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
    }
    sink->set_formatter(makeLogFormatter(underSystemd));
    auto logger = std::make_shared<spdlog::logger>("zastava", std::move(sink));
    logger->set_level(toSpdlogLevel(level));
    spdlog::set_default_logger(std::move(logger));
  } catch (const std::exception& e) {
    // spdlog keeps its previous default logger (stdout, no journal priority): said on stderr.
    std::fprintf(stderr, "zastava-agent: cannot set up logging (%s); logging to stdout instead\n",
                 e.what());
  }
}

}  // namespace zastava
