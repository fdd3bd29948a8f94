#include "agent/verify_command.h"

#include <CLI/CLI.hpp>
#include <vector>

#include "agent/records_command.h"

namespace zastava {
namespace {

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

// "1 record", "2 records".
std::string counted(std::int64_t count, const std::string& noun) {
  return std::to_string(count) + " " + noun + (count == 1 ? "" : "s");
}

std::string epochRange(const LedgerSealKey& key) {
  if (key.firstEpoch == key.lastEpoch) return "epoch " + std::to_string(key.firstEpoch);
  return "epochs " + std::to_string(key.firstEpoch) + "-" + std::to_string(key.lastEpoch);
}

void printFinding(const LedgerFinding& finding, std::FILE* out) {
  std::string line = "  " + findingPlace(finding);
  if (!finding.eventId.empty()) line += " (eventId " + finding.eventId + ")";
  if (line.size() > 2) line += ": ";
  line += finding.message;
  std::fprintf(out, "%s\n", line.c_str());
}

}  // namespace

Result<VerifyCommandLine> parseVerifyCommandLine(int argc, const char* const* argv,
                                                 const Environment& env) {
  auto agentDirectory = agentDataDirectory(env);
  if (!agentDirectory.ok()) return agentDirectory.error();
  VerifyCommandLine parsed;
  std::string dataDirectory = agentDirectory->string();
  std::vector<std::string> seeds;
  try {
    CLI::App app(
        "Checks that the agent's ledger was not tampered with: the NDJSON segments and their "
        "hash chain, the records against SQLite, the seals and the key file (docs/records.md, "
        "\"Verifying the ledger\"). Never writes into the data directory. Exit status: 0 nothing "
        "is wrong, 1 something is (each problem is printed with its file and line), 2 the input "
        "cannot be used.",
        "zastava-agent verify");
    app.add_option("--data-directory", dataDirectory,
                   "the agent's data directory, or a copy of it [default " + dataDirectory + "]")
        ->type_name("DIR");
    app.add_option("--seal-key", seeds,
                   "a seed file (a line `zastava-seal-seed v1 <keyId> <seed>`, as `zastava-agent "
                   "seal-key export` prints it): the seals of its key are checked (repeatable)")
        ->type_name("FILE");
    std::vector<std::string> args;
    for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);
    try {
      app.parse(args);
    } catch (const CLI::Success&) {
      parsed.help = app.help();
      return parsed;
    } catch (const CLI::ParseError& e) {
      return invalid(std::string("verify: ") + e.what() + " (see zastava-agent verify --help)");
    }
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, std::string("verify: command line setup: ") + e.what()};
  }
  parsed.options.dataDirectory = dataDirectory;
  for (const std::string& seed : seeds) parsed.options.sealKeyFiles.emplace_back(seed);
  return parsed;
}

void printLedgerReport(const LedgerReport& report, const LedgerVerifyOptions& options,
                       std::FILE* out) {
  std::fprintf(out, "Ledger of %s\n", options.dataDirectory.c_str());
  std::fprintf(out, "  ledger: %s in %s; SQLite holds %s\n",
               counted(report.records, "record").c_str(),
               counted(report.segments, "NDJSON segment").c_str(),
               counted(report.sqliteRows, "row").c_str());
  if (!report.firstTime.empty()) {
    std::fprintf(out, "  time: %s .. %s\n", report.firstTime.c_str(), report.lastTime.c_str());
  }
  std::fprintf(out, "  seals: %lld, %lld checked with a seed, %lld not checked\n",
               static_cast<long long>(report.seals), static_cast<long long>(report.sealsChecked),
               static_cast<long long>(report.sealsUnchecked));
  for (const LedgerSealKey& key : report.sealKeys) {
    std::fprintf(out, "    key %s: %s, %s, %s\n", key.keyId.c_str(),
                 counted(key.seals, "seal").c_str(), epochRange(key).c_str(),
                 key.seedGiven ? "checked" : "not checked (no --seal-key for it)");
  }
  if (!report.notices.empty()) {
    std::fprintf(out, "Notices (not failures):\n");
    for (const LedgerFinding& notice : report.notices) printFinding(notice, out);
  }
  if (report.valid()) {
    std::fprintf(out, "Valid: nothing is wrong with the ledger.\n");
  } else {
    const std::string problems =
        counted(static_cast<std::int64_t>(report.problems.size()), "problem");
    std::fprintf(out, "Problems (%zu), the first one first:\n", report.problems.size());
    for (const LedgerFinding& problem : report.problems) printFinding(problem, out);
    std::fprintf(out, "Tampered: %s.\n", problems.c_str());
  }
  std::fflush(out);
}

int runVerifyCommand(int argc, const char* const* argv, const Environment& env) {
  auto parsed = parseVerifyCommandLine(argc, argv, env);
  if (!parsed.ok()) {
    std::fprintf(stderr, "zastava-agent: %s\n", parsed.error().message.c_str());
    return kVerifyUnusable;
  }
  if (parsed->help) {
    std::fputs(parsed->help->c_str(), stdout);
    return kVerifyValid;
  }
  auto report = verifyLedger(parsed->options);
  if (!report.ok()) {
    std::fprintf(stderr, "zastava-agent verify: %s\n", report.error().message.c_str());
    return kVerifyUnusable;
  }
  printLedgerReport(*report, parsed->options, stdout);
  return report->valid() ? kVerifyValid : kVerifyTampered;
}

}  // namespace zastava
