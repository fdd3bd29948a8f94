#include "common/invariant.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <mutex>

namespace zastava {
namespace {

// The one piece of process-wide state outside main(): a broken invariant can be found on any
// thread, deep in code that holds no reference to the metrics. Set before threads start.
struct Reporting {
  std::function<void()> count;
  std::filesystem::path file;
  InvariantEnd end = nullptr;
};

Reporting& reporting() {
  static Reporting state;
  return state;
}

std::mutex& reportMutex() {
  static std::mutex mu;
  return mu;
}

thread_local bool reportingHere = false;

[[noreturn]] void endProcess(const InvariantFailure&) {
  spdlog::default_logger_raw()->flush();
#if !defined(NDEBUG) || defined(ZASTAVA_SANITIZED)
  std::abort();
#else
  std::_Exit(kExitInvariantFailure);
#endif
}

ErrorCode codeForErrno(int err) {
  return (err == ENOSPC || err == EDQUOT) ? ErrorCode::kDiskFull : ErrorCode::kIo;
}

std::string utcNow() {
  const std::time_t now = std::time(nullptr);
  std::tm utc{};
  gmtime_r(&now, &utc);
  char text[32] = {};
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return text;
}

// Appends `line` to `file` and fsyncs it; says so at critical when it cannot (the failure
// itself is already in the log).
void appendLine(const std::filesystem::path& file, std::string line) {
  std::replace(line.begin(), line.end(), '\n', ' ');
  line.push_back('\n');
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    spdlog::critical("cannot record the invariant failure in {}: {}", file.string(),
                     std::strerror(errno));
    return;
  }
  std::size_t written = 0;
  int err = 0;
  while (written < line.size()) {
    const ssize_t n = ::write(fd, line.data() + written, line.size() - written);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      err = errno;
      break;
    }
    written += static_cast<std::size_t>(n);
  }
  if (err == 0 && ::fsync(fd) != 0) err = errno;
  if (::close(fd) != 0 && err == 0) err = errno;
  if (err != 0) {
    spdlog::critical("cannot record the invariant failure in {}: {}", file.string(),
                     std::strerror(err));
  }
}

}  // namespace

void invariantFailed(const char* file, int line, std::string_view what) {
  if (reportingHere) std::abort();  // broke again while reporting: nothing left to trust
  std::lock_guard lock(reportMutex());
  reportingHere = true;
  struct Reported {
    ~Reported() { reportingHere = false; }  // only a test's throwing end gets here
  } reported;
  const InvariantFailure failure{file, line, std::string(what)};
  const std::string message =
      "invariant failed at " + failure.file + ":" + std::to_string(line) + ": " + failure.what;
  spdlog::critical("{}", message);
  const Reporting& state = reporting();
  if (state.count) state.count();
  if (!state.file.empty()) appendLine(state.file, utcNow() + " " + message);
  (state.end != nullptr ? state.end : endProcess)(failure);
  std::abort();
}

void onInvariantFailure(std::function<void()> count) { reporting().count = std::move(count); }

Result<std::uint64_t> keepInvariantFailuresIn(const std::filesystem::path& file) {
  if (file.empty()) {
    reporting().file.clear();
    return std::uint64_t{0};
  }
  // Created now, so a data directory the agent cannot write to shows at start-up, not when an
  // invariant breaks.
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) {
    const int err = errno;
    return Error{codeForErrno(err), "cannot open " + file.string() + ": " + std::strerror(err)};
  }
  if (::close(fd) != 0) {
    const int err = errno;
    return Error{codeForErrno(err), "cannot close " + file.string() + ": " + std::strerror(err)};
  }
  std::ifstream in(file, std::ios::binary);
  std::uint64_t lines = 0;
  char chunk[4096];
  while (in.read(chunk, sizeof chunk) || in.gcount() > 0) {
    lines += static_cast<std::uint64_t>(std::count(chunk, chunk + in.gcount(), '\n'));
  }
  if (in.bad() || !in.eof()) {
    return Error{ErrorCode::kIo, "cannot read " + file.string() + ": " + std::strerror(errno)};
  }
  reporting().file = file;
  return lines;
}

void setInvariantEnd(InvariantEnd end) { reporting().end = end; }

}  // namespace zastava
