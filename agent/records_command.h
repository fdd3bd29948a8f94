// `zastava-agent records`: prints the records of a data directory, one readable line each or the
// JSON lines as stored, filtered by container, kind and time; with --follow it goes on printing
// records as the agent writes them (like `journalctl -f`) until interrupted. It reads the NDJSON
// segments only and never writes, so it works beside a running agent and on a copied directory.
#pragma once

#include <cstdio>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/config.h"
#include "buffer/record_summary.h"
#include "common/result.h"

namespace zastava {

inline constexpr std::string_view kRecordsCommand = "records";

struct RecordsOptions {
  std::filesystem::path dataDirectory;
  bool follow = false;
  bool json = false;                    // print the stored lines, not the readable ones
  std::vector<std::string> containers;  // a name, or the start of an id; any of them matches
  std::vector<std::string> kinds;       // "container.start", or "start"; any of them matches
  std::optional<UnixNanos> since;       // records whose time is at or after it
};

struct RecordsCommandLine {
  RecordsOptions options;
  std::optional<std::string> help;  // set for --help: print it and exit 0
};

// The agent's own data directory, the default of the commands that read it: DataDirectory from
// `env`, else /var/lib/zastava-agent. Errors: kInvalidArgument naming the variable. Any thread.
Result<std::filesystem::path> agentDataDirectory(const Environment& env);

// Parses the arguments after `records` (argv[0] is "records"). The data directory defaults to
// the agent's own (DataDirectory from `env`, else /var/lib/zastava-agent); `now` anchors
// relative --since values. Errors: kInvalidArgument naming the flag or variable. Any thread.
Result<RecordsCommandLine> parseRecordsCommandLine(int argc, const char* const* argv,
                                                   const Environment& env, UnixNanos now);

// An RFC 3339 UTC time ("2026-12-06T05:00:00Z", with up to 9 fractional digits), a date
// ("2026-12-06", midnight UTC), or a duration before `now` ("90s", "15m", "2h", "7d") that 64-bit
// nanoseconds can hold. Error: kInvalidArgument saying what is accepted. Any thread.
Result<UnixNanos> parseSince(std::string_view text, UnixNanos now);

// True when `record` passes every filter of `options`. Any thread.
bool recordMatches(const RecordSummary& record, const RecordsOptions& options);

// One readable line, without "\n": time (UTC, milliseconds), source, kind, container, then what
// applies: state, exit code, the engine's detail (health status, exec command), evidence
// status, gap span and reason, the posture checks it failed. Any thread.
std::string formatRecordLine(const RecordSummary& record);

// Prints the records to `out` (problems with the ledger to `err`) and, with options.follow,
// keeps printing new ones until SIGINT or SIGTERM. Returns the exit code: 0 when done or
// interrupted, 1 when the ledger cannot be read. Main thread (it blocks those two signals).
int printRecords(const RecordsOptions& options, std::FILE* out, std::FILE* err);

// `zastava-agent records ...` from main: parse, then print. Exit codes: 0, 1 as printRecords,
// 2 for bad arguments. Main thread.
int runRecordsCommand(int argc, const char* const* argv, const Environment& env);

}  // namespace zastava
