#include "buffer/ledger_verifier.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <unordered_map>

#include "buffer/ledger_entry.h"
#include "buffer/ledger_seals.h"
#include "buffer/ledger_sqlite.h"
#include "buffer/record.h"
#include "buffer/segment_writer.h"

namespace zastava {
namespace {

namespace fs = std::filesystem;
using ledger::Entry;
using ledger::Findings;

constexpr std::string_view kSegmentsDirectory = "runtime-events";

Result<std::string> readWhole(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Error{ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(errno)};
  }
  std::ostringstream content;
  content << in.rdbuf();
  if (in.bad()) {
    return Error{ErrorCode::kIo, "cannot read " + path.string() + ": " + std::strerror(errno)};
  }
  return content.str();
}

std::string seqRange(std::uint64_t first, std::uint64_t last) {
  if (first == last) return "segment seq " + std::to_string(first) + " is";
  return "segments seq " + std::to_string(first) + "-" + std::to_string(last) + " are";
}

// Step 1: the segments' lines, in order, as entries; a torn last line and missing segments.
Result<void> readSegments(const std::vector<SegmentWriter::SegmentInfo>& segments,
                          std::vector<Entry>& entries, Findings& findings) {
  std::size_t newestNonEmpty = segments.size();
  for (std::size_t i = 0; i < segments.size(); ++i) {
    if (segments[i].bytes > 0) newestNonEmpty = i;
  }
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& segment = segments[i];
    const std::string file =
        std::string(kSegmentsDirectory) + "/" + segment.path.filename().string();
    if (i > 0 && segment.seq > segments[i - 1].seq + 1) {
      findings.problem(entries.size(),
                       {file, 0, 0, "",
                        seqRange(segments[i - 1].seq + 1, segment.seq - 1) + " missing between " +
                            segments[i - 1].path.filename().string() + " and " +
                            segment.path.filename().string() +
                            " (moved away or deleted by hand; retention only deletes the "
                            "oldest)"});
    }
    auto content = readWhole(segment.path);
    if (!content) return content.error();
    std::string_view rest = *content;
    std::uint64_t number = 0;
    while (!rest.empty()) {
      ++number;
      const std::size_t end = rest.find('\n');
      const std::string_view line = rest.substr(0, end);
      rest = end == std::string_view::npos ? std::string_view() : rest.substr(end + 1);
      Entry entry;
      if (end == std::string_view::npos && i == newestNonEmpty) {
        entry.file = file;
        entry.line = number;
        findings.noticeAt(entries.size(), entry,
                          "the last line has no newline: a write cut short by a crash (the agent "
                          "cuts it off at its next start); not part of the ledger");
        break;
      }
      entry = ledger::parseEntry(line);
      entry.file = file;
      entry.line = number;
      if (end == std::string_view::npos) {
        findings.problemAt(entries.size(), entry,
                           "the last line has no newline in a segment the agent had moved on from "
                           "(it cuts a torn line off before it writes the next segment): "
                           "truncated by hand");
      } else if (!entry.record) {
        findings.problemAt(entries.size(), entry,
                           "not a record (not a JSON object with a prevHash): edited or "
                           "inserted by hand");
      }
      entries.push_back(std::move(entry));
    }
  }
  return okResult();
}

// Where each hash occurs, for explaining a chain break.
struct HashIndex {
  std::unordered_map<std::string, std::size_t> entries;
  std::unordered_map<std::string, std::size_t> rows;
};

std::string chainBreak(std::size_t i, const std::vector<Entry>& entries,
                       const ledger::SqliteRows& sqlite, const HashIndex& index) {
  const Entry& entry = entries[i];
  const std::string head =
      "chain broken: its prevHash is not the hash of the " +
      std::string(entry.rowid != 0 && entries[i - 1].rowid == 0 ? "last NDJSON line"
                                                                : "line before") +
      " (" + ledger::placeOf(entries[i - 1]) + ")";
  if (auto found = index.entries.find(entry.prevHash); found != index.entries.end()) {
    const std::size_t j = found->second;
    if (j > i) {
      return head + ": it is the hash of a later line, " + ledger::placeOf(entries[j]) +
             " (out of order: lines moved or swapped)";
    }
    return head + ": it is the hash of " + ledger::placeOf(entries[j]) +
           " (the lines between were inserted, or this line moved)";
  }
  if (auto found = index.rows.find(entry.prevHash); found != index.rows.end()) {
    const ledger::SqliteRow& row = sqlite.rows[found->second];
    if (row.entry) {
      return head + ": it is the hash of " + ledger::placeOf(entries[*row.entry]) +
             " as SQLite holds it (zastava-agent.db rowid " + std::to_string(row.rowid) +
             "): that line was edited";
    }
    return head + ": it is the hash of the record SQLite holds as rowid " +
           std::to_string(row.rowid) + " (eventId " + row.eventId +
           "), which is not in the ledger here: deleted from NDJSON";
  }
  return head + ": the line before was edited, or lines were removed or inserted between them";
}

// Step 2: the hash chain, through NDJSON and SQLite's tail.
void checkChain(const std::vector<Entry>& entries, const ledger::SqliteRows& sqlite,
                Findings& findings) {
  HashIndex index;
  for (std::size_t i = 0; i < entries.size(); ++i) index.entries.emplace(entries[i].hash, i);
  for (std::size_t r = 0; r < sqlite.rows.size(); ++r) index.rows.emplace(sqlite.rows[r].hash, r);
  for (std::size_t i = 0; i < entries.size(); ++i) {
    const Entry& entry = entries[i];
    if (!entry.record) continue;
    if (!entry.defect.empty()) findings.problemAt(i, entry, entry.defect);
    if (i == 0) {
      if (entry.prevHash != kGenesisHash) {
        findings.noticeAt(i, entry,
                          "the ledger begins here, not at the first record ever written: the "
                          "records before it were deleted by retention");
      }
      continue;
    }
    if (entry.prevHash != entries[i - 1].hash) {
      findings.problemAt(i, entry, chainBreak(i, entries, sqlite, index));
    }
  }
}

// The report's counts and times.
void count(const std::vector<Entry>& entries, LedgerReport& report) {
  for (const Entry& entry : entries) {
    if (!entry.record) continue;
    ++report.records;
    if (report.firstTime.empty()) report.firstTime = entry.time;
    report.lastTime = entry.time;
  }
}

Result<ledger::GivenSeeds> readSeeds(const std::vector<fs::path>& files) {
  ledger::GivenSeeds seeds;
  for (const fs::path& file : files) {
    auto seed = readSeedFile(file);
    if (!seed) {
      Error error = seed.error();
      if (error.code == ErrorCode::kNotFound) {
        error.message = "--seal-key " + file.string() + ": no such file";
      } else {
        error.message = "--seal-key: " + error.message;
      }
      return error;
    }
    seeds[seed->keyId] = ledger::GivenSeed{seed->seed, file};
    eraseSealKey(seed->seed);
  }
  return seeds;
}

}  // namespace

std::string findingPlace(const LedgerFinding& finding) {
  if (finding.rowid != 0) return finding.file + " rowid " + std::to_string(finding.rowid);
  if (finding.line != 0) return finding.file + ":" + std::to_string(finding.line);
  return finding.file;
}

Result<LedgerReport> verifyLedger(const LedgerVerifyOptions& options) {
  const fs::path& directory = options.dataDirectory;
  std::error_code ec;
  if (!fs::is_directory(directory, ec)) {
    return Error{ErrorCode::kNotFound, "no such directory: " + directory.string()};
  }
  auto seeds = readSeeds(options.sealKeyFiles);
  if (!seeds) return seeds.error();
  std::vector<SegmentWriter::SegmentInfo> segments;
  if (auto listed = listSegments(directory / kSegmentsDirectory); listed) {
    segments = std::move(*listed);
  } else if (listed.error().code != ErrorCode::kNotFound) {
    return listed.error();
  }
  const fs::path database = directory / kDatabaseFileName;
  const bool hasDatabase = fs::exists(database, ec);
  if (segments.empty() && !hasDatabase) {
    return Error{ErrorCode::kNotFound, "nothing to read: " + directory.string() +
                                           " has no NDJSON segments (" +
                                           std::string(kSegmentsDirectory) + "/) and no " +
                                           std::string(kDatabaseFileName)};
  }

  LedgerReport report;
  report.segments = static_cast<std::int64_t>(segments.size());
  Findings findings;
  std::vector<Entry> entries;
  // The segments first: SQLite commits before NDJSON, so what is written meanwhile shows as
  // SQLite's tail, never as a line SQLite lacks.
  if (auto read = readSegments(segments, entries, findings); !read) {
    return read.error();
  }
  ledger::SqliteRows sqlite;
  if (hasDatabase) {
    auto copy = ledger::SqliteCopy::open(database);
    if (!copy) return copy.error();
    auto rows = (*copy)->readRows();
    if (!rows) return rows.error();
    sqlite = std::move(*rows);
    report.sqliteRows = static_cast<std::int64_t>(sqlite.rows.size());
    if (auto compared = ledger::compareWithSqlite(entries, sqlite, **copy, findings); !compared) {
      return compared.error();
    }
  } else {
    findings.problem(Findings::kEnd,
                     {std::string(kDatabaseFileName), 0, 0, "",
                      "missing: the directory has NDJSON segments but no database (deleted?); "
                      "the records could not be checked against SQLite"});
  }
  checkChain(entries, sqlite, findings);
  const ledger::SealingHead head = ledger::checkSeals(entries, *seeds, report, findings);
  auto keyFile = ledger::checkKeyFile(directory / kSealKeyFileName, head, *seeds, findings);
  if (!keyFile) return keyFile.error();
  count(entries, report);
  findings.moveInto(report);
  return report;
}

}  // namespace zastava
