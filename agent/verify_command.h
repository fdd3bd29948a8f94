// `zastava-agent verify`: checks that a data directory's ledger was not tampered with
// (docs/records.md "Verifying the ledger"): the hash chain, the NDJSON segments against SQLite,
// the seals (their MACs, with the seeds given by --seal-key) and the key file. It never writes
// into the data directory, so it runs on a copy taken from another host.
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <string_view>

#include "agent/config.h"
#include "buffer/ledger_verifier.h"
#include "common/result.h"

namespace zastava {

inline constexpr std::string_view kVerifyCommand = "verify";

inline constexpr int kVerifyValid = 0;
inline constexpr int kVerifyTampered = 1;
inline constexpr int kVerifyUnusable = 2;  // bad arguments, or input that cannot be used

struct VerifyCommandLine {
  LedgerVerifyOptions options;
  std::optional<std::string> help;  // set for --help: print it and exit 0
};

// Parses the arguments after `verify` (argv[0] is "verify"). The data directory defaults to
// the agent's own (DataDirectory from `env`, else /var/lib/zastava-agent). Errors:
// kInvalidArgument naming the flag or variable. Any thread.
Result<VerifyCommandLine> parseVerifyCommandLine(int argc, const char* const* argv,
                                                 const Environment& env);

// Prints `report` for a reader: the summary, the notices, then each problem with its file and
// line (the first one first), and the verdict. Any thread.
void printLedgerReport(const LedgerReport& report, const LedgerVerifyOptions& options,
                       std::FILE* out);

// `zastava-agent verify ...` from main: parse, verify, print. Exit codes: 0 when nothing is
// wrong, 1 when something is (tampering), 2 for bad arguments or input that cannot be used (no
// such directory, nothing to read, an unreadable file or seed file). Main thread.
int runVerifyCommand(int argc, const char* const* argv, const Environment& env);

}  // namespace zastava
