#include "agent/records_command.h"

#include <signal.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <cstring>

#include "buffer/record.h"
#include "buffer/segment_reader.h"
#include "common/rfc3339.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;

constexpr std::int64_t kNanosPerSecond = 1'000'000'000;
constexpr auto kPollInterval = std::chrono::milliseconds(250);
constexpr std::string_view kSinceForms =
    "an RFC 3339 UTC time (2026-12-06T05:00:00Z), a date (2026-12-06) or a duration ago "
    "(90s, 15m, 2h, 7d)";

Error invalid(std::string message) {
  return Error{ErrorCode::kInvalidArgument, std::move(message)};
}

std::optional<std::int64_t> secondsPerUnit(char unit) {
  switch (unit) {
    case 's':
      return 1;
    case 'm':
      return 60;
    case 'h':
      return 3600;
    case 'd':
      return 86400;
    default:
      return std::nullopt;
  }
}

// "2026-12-06T05:21:03.123Z"
std::string displayTime(UnixNanos time) {
  const std::string full = formatRfc3339Nanos(time);  // ...:03.123456789Z
  return full.substr(0, full.size() - 7) + "Z";
}

std::string padded(std::string text, std::size_t width) {
  if (text.size() < width) text.resize(width, ' ');
  return text;
}

std::string containerColumn(const RecordSummary& record) {
  if (!record.containerName.empty()) return record.containerName;
  if (!record.containerId.empty()) return record.containerId.substr(0, 12);
  return "-";
}

std::string joined(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& item : items) out += (out.empty() ? "" : ", ") + item;
  return out;
}

bool kindMatches(const std::string& kind, const std::vector<std::string>& wanted) {
  for (const std::string& w : wanted) {
    if (kind == w || kind == "container." + w) return true;
  }
  return wanted.empty();
}

bool containerMatches(const RecordSummary& record, const std::vector<std::string>& wanted) {
  for (const std::string& w : wanted) {
    if (record.containerName == w ||
        (!record.containerId.empty() && record.containerId.starts_with(w))) {
      return true;
    }
  }
  return wanted.empty();
}

// Where a reader who cannot read the ledger should look.
std::string readHint(const Error& error, const RecordsOptions& options) {
  if (error.code == ErrorCode::kNotFound) {
    return " (no ledger there: set the agent's data directory with --data-directory or "
           "ZASTAVA_AGENT__DataDirectory)";
  }
  if (error.message.find(std::strerror(EACCES)) != std::string::npos) {
    return " (" + options.dataDirectory.string() +
           " is readable by root and the agent's user only)";
  }
  return "";
}

void reportSkipped(const SegmentReader::Batch& batch, std::FILE* err) {
  for (const fs::path& path : batch.vanished) {
    std::fprintf(err, "zastava-agent records: %s was deleted by retention before it was read\n",
                 path.c_str());
  }
}

// Prints what passes the filters; reports lines that are not records on `err`.
void printBatch(const SegmentReader::Batch& batch, const RecordsOptions& options, std::FILE* out,
                std::FILE* err) {
  reportSkipped(batch, err);
  for (const SegmentReader::Line& line : batch.lines) {
    if (line.torn) {
      std::fprintf(err, "zastava-agent records: %s:%llu: skipped a torn line (a write cut short)\n",
                   line.segment.c_str(), static_cast<unsigned long long>(line.number));
      continue;
    }
    auto record = summarizeRecord(line.text);
    if (!record.ok()) {
      std::fprintf(err, "zastava-agent records: %s:%llu: skipped, %s\n", line.segment.c_str(),
                   static_cast<unsigned long long>(line.number), record.error().message.c_str());
      continue;
    }
    if (!recordMatches(*record, options)) continue;
    const std::string text = options.json ? line.text : formatRecordLine(*record);
    std::fprintf(out, "%s\n", text.c_str());
  }
  std::fflush(out);
}

// Waits one poll interval; false when SIGINT or SIGTERM arrived.
bool waitForMore(const sigset_t& signals) {
  const auto seconds = std::chrono::duration_cast<std::chrono::seconds>(kPollInterval);
  const timespec tick{seconds.count(), (kPollInterval - seconds).count() * 1'000'000};
  const int signal = sigtimedwait(&signals, nullptr, &tick);
  return signal != SIGINT && signal != SIGTERM;
}

}  // namespace

Result<UnixNanos> parseSince(std::string_view text, UnixNanos now) {
  if (text.size() >= 2) {
    if (auto unit = secondsPerUnit(text.back())) {
      std::int64_t count = 0;
      const char* end = text.data() + text.size() - 1;
      auto [stop, ec] = std::from_chars(text.data(), end, count);
      std::int64_t ago = 0;
      std::int64_t since = 0;
      if (ec == std::errc() && stop == end && count >= 0 &&
          !__builtin_mul_overflow(count, *unit * kNanosPerSecond, &ago) &&
          !__builtin_sub_overflow(now, ago, &since)) {
        return since;
      }
    }
  }
  std::string timeText(text);
  if (timeText.size() == 10) timeText += "T00:00:00Z";  // a date
  if (auto time = parseRfc3339Nanos(timeText)) return *time;
  return invalid("--since: '" + std::string(text) + "' is not " + std::string(kSinceForms));
}

bool recordMatches(const RecordSummary& record, const RecordsOptions& options) {
  if (options.since && record.time < *options.since) return false;
  return kindMatches(record.kind, options.kinds) && containerMatches(record, options.containers);
}

namespace {

// "key 3f2a9c0d1e4b5a69 epoch 41, 17 records" (agent.seal), "key 3f2a… lost, next epoch 0: why"
// (agent.seal-key).
std::string sealDetail(const RecordSummary& record) {
  const std::string epoch = std::to_string(record.sealEpoch);
  if (record.sealKeyChange.empty()) {
    return "key " + record.sealKeyId + " epoch " + epoch + ", " +
           std::to_string(record.sealRecords) + " records";
  }
  return "key " + record.sealKeyId + " " + record.sealKeyChange + ", next epoch " + epoch + ": " +
         record.sealKeyReason;
}

}  // namespace

std::string formatRecordLine(const RecordSummary& record) {
  std::string line = displayTime(record.time) + "  " + padded(record.source, 9) + "  " +
                     padded(record.kind, 23) + "  " + padded(containerColumn(record), 20);
  std::vector<std::string> details;
  if (!record.state.empty()) details.push_back(record.state);
  if (record.exitCode) details.push_back("exit=" + std::to_string(*record.exitCode));
  if (!record.actionDetail.empty()) details.push_back(record.actionDetail);
  if (!record.evidenceStatus.empty()) {
    details.push_back("evidence " + record.evidenceStatus + " (" + record.evidenceScan + " scan)");
  }
  if (!record.gapReason.empty()) {
    details.push_back("gap " + displayTime(record.gapFrom) + " .. " + displayTime(record.gapTo) +
                      ": " + record.gapReason);
  }
  if (!record.inspectError.empty()) details.push_back("no inspect: " + record.inspectError);
  if (!record.sealKeyId.empty()) details.push_back(sealDetail(record));
  if (!record.failedChecks.empty()) {
    details.push_back("posture failed: " + joined(record.failedChecks));
  }
  for (const std::string& detail : details) line += "  " + detail;
  while (!line.empty() && line.back() == ' ') line.pop_back();
  return line;
}

Result<std::filesystem::path> agentDataDirectory(const Environment& env) {
  const char* agentOnly[] = {"zastava-agent"};
  auto agent = parseCommandLine(1, agentOnly, env);
  if (!agent.ok()) return agent.error();
  return agent->config.dataDirectory;
}

Result<RecordsCommandLine> parseRecordsCommandLine(int argc, const char* const* argv,
                                                   const Environment& env, UnixNanos now) {
  auto agentDirectory = agentDataDirectory(env);
  if (!agentDirectory.ok()) return agentDirectory.error();
  RecordsCommandLine parsed;
  RecordsOptions& options = parsed.options;
  std::string dataDirectory = agentDirectory->string();
  std::string since;
  std::string output = "text";
  try {
    CLI::App app(
        "Prints the records of the agent's ledger (the NDJSON segments of its data directory), "
        "one line each, oldest first.",
        "zastava-agent records");
    app.add_option("--data-directory", dataDirectory,
                   "the agent's data directory [default " + dataDirectory + "]")
        ->type_name("DIR");
    app.add_flag("-f,--follow", options.follow,
                 "go on printing records as the agent writes them, until Ctrl-C");
    app.add_option("--container", options.containers,
                   "only this container: a name or the start of an id (repeatable)")
        ->type_name("NAME|ID");
    app.add_option("--kind", options.kinds,
                   "only this kind: container.start, or start, agent.gap ... (repeatable)")
        ->type_name("KIND");
    app.add_option("--since", since, "only records from then on: " + std::string(kSinceForms))
        ->type_name("TIME");
    app.add_option("--output", output,
                   "text: one readable line per record; json: the record "
                   "lines as stored [default text]")
        ->check(CLI::IsMember({"text", "json"}))
        ->type_name("text|json");
    std::vector<std::string> args;
    for (int i = argc - 1; i >= 1; --i) args.emplace_back(argv[i]);
    try {
      app.parse(args);
    } catch (const CLI::Success&) {
      parsed.help = app.help();
      return parsed;
    } catch (const CLI::ParseError& e) {
      return invalid(std::string("records: ") + e.what() + " (see zastava-agent records --help)");
    }
  } catch (const std::exception& e) {
    return Error{ErrorCode::kInternal, std::string("records: command line setup: ") + e.what()};
  }
  options.dataDirectory = dataDirectory;
  options.json = output == "json";
  if (!since.empty()) {
    auto time = parseSince(since, now);
    if (!time.ok()) return time.error();
    options.since = *time;
  }
  return parsed;
}

int printRecords(const RecordsOptions& options, std::FILE* out, std::FILE* err) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  if (options.follow) pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  SegmentReader reader(options.dataDirectory / "runtime-events");
  bool toldWaiting = false;
  while (true) {
    auto batch = reader.readNew();
    if (batch.ok()) {
      printBatch(*batch, options, out, err);
    } else if (options.follow && batch.error().code == ErrorCode::kNotFound) {
      if (!toldWaiting) {
        std::fprintf(err, "zastava-agent records: waiting for %s to appear\n",
                     (options.dataDirectory / "runtime-events").c_str());
        toldWaiting = true;
      }
    } else {
      std::fprintf(err, "zastava-agent records: %s%s\n", batch.error().message.c_str(),
                   readHint(batch.error(), options).c_str());
      return 1;
    }
    if (!options.follow || !waitForMore(signals)) return 0;
  }
}

int runRecordsCommand(int argc, const char* const* argv, const Environment& env) {
  SystemClock clock;
  auto parsed = parseRecordsCommandLine(argc, argv, env, clock.now());
  if (!parsed.ok()) {
    std::fprintf(stderr, "zastava-agent: %s\n", parsed.error().message.c_str());
    return 2;
  }
  if (parsed->help) {
    std::fputs(parsed->help->c_str(), stdout);
    return 0;
  }
  return printRecords(parsed->options, stdout, stderr);
}

}  // namespace zastava
