// Internal invariants: what the code relies on that no input, peer, disk or permission can
// break, only a bug in the agent (an enum value outside its cases, a hash OpenSSL could not
// compute, a statement bound at an index it does not have). ZASTAVA_BUG marks the place where
// one broke; it never returns. What the outside world can break (a disk, a permission, an
// engine, a backend) is an Error in a Result<T> instead, with a message naming what failed
// (common/result.h); docs/architecture.md "Habits of the code" says which is which.
//
//   switch (source) {
//     case RecordSource::kStream:
//       return "stream";
//     ...
//   }
//   ZASTAVA_BUG("RecordSource " + std::to_string(static_cast<int>(source)));
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>

#include "common/result.h"

namespace zastava {

// The exit status of a release build after a broken invariant (sysexits.h's EX_SOFTWARE).
// Not 2, which systemd's RestartPreventExitStatus= keeps from restarting.
inline constexpr int kExitInvariantFailure = 70;

struct InvariantFailure {
  std::string file;  // relative to the repository, as __FILE__ is built (-fmacro-prefix-map)
  int line = 0;
  std::string what;
};

// Reports a broken invariant and ends the process. In order: logs at critical
// "invariant failed at FILE:LINE: WHAT", runs the counter set by onInvariantFailure, appends
// that line to the file set by keepInvariantFailuresIn, then ends the process: abort() in
// debug and sanitizer builds (a core dump, the sanitizer's report), _Exit(70) in release
// builds, without running destructors while other threads still run (the ledger is built to
// survive a crash). systemd's Restart=on-failure starts the agent again. Any thread; a failure
// in another thread meanwhile waits for this one to end the process, one inside this report
// aborts at once.
[[noreturn]] void invariantFailed(const char* file, int line, std::string_view what);

#define ZASTAVA_BUG(what) ::zastava::invariantFailed(__FILE__, __LINE__, (what))

// Start-up seams, set by main() before it starts other threads, and by tests.
//
// `count` runs for each failure after it is logged (main: Metrics::countInvariantFailures),
// so the metric moves before the process ends. Nothing (the default) clears it.
void onInvariantFailure(std::function<void()> count);

// A count that survives the exit it causes: from now on each failure's log line is also
// appended to `file` and fsynced. Returns how many lines the file already holds, the failures
// of earlier runs (0 when it does not exist yet); main adds them to the metric. Errors: kIo (or
// kDiskFull) naming the file. An empty path stops appending.
[[nodiscard]] Result<std::uint64_t> keepInvariantFailuresIn(const std::filesystem::path& file);

// Test seam: what ends the process once the failure is reported (nullptr: the default). A
// test installs one that throws, to see the release path run without ending the test binary;
// if it returns, the process aborts.
using InvariantEnd = void (*)(const InvariantFailure&);
void setInvariantEnd(InvariantEnd end);

}  // namespace zastava
