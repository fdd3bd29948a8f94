#include "buffer/ledger_sqlite.h"

#include <stdlib.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "buffer/recorder.h"
#include "buffer/sqlite_connection.h"
#include "common/sha256.h"

namespace zastava::ledger {
namespace {

namespace fs = std::filesystem;

std::string rowids(std::int64_t first, std::int64_t last) {
  if (first == last) return "rowid " + std::to_string(first);
  return "rowids " + std::to_string(first) + "-" + std::to_string(last);
}

// The positions (in `sequence`) of a longest strictly increasing subsequence: the records in
// SQLite's order; the others are the ones moved.
std::vector<bool> inLongestIncreasing(const std::vector<std::size_t>& sequence) {
  std::vector<std::size_t> tails;  // positions: the smallest tail of each length
  std::vector<std::size_t> parent(sequence.size(), static_cast<std::size_t>(-1));
  for (std::size_t i = 0; i < sequence.size(); ++i) {
    auto at =
        std::lower_bound(tails.begin(), tails.end(), sequence[i],
                         [&](std::size_t pos, std::size_t value) { return sequence[pos] < value; });
    if (at != tails.begin()) parent[i] = *(at - 1);
    if (at == tails.end()) {
      tails.push_back(i);
    } else {
      *at = i;
    }
  }
  std::vector<bool> kept(sequence.size(), false);
  for (std::size_t i = tails.empty() ? parent.size() : tails.back(); i < parent.size();
       i = parent[i]) {
    kept[i] = true;
  }
  return kept;
}

std::string editedSide(const std::vector<Entry>& entries, std::size_t i, const SqliteRow& row) {
  if (i + 1 >= entries.size() || !entries[i + 1].record) return "";
  const std::string& next = entries[i + 1].prevHash;
  if (next == row.hash)
    return " (the next line's prevHash is the hash of SQLite's copy: the line "
           "in NDJSON was edited)";
  if (next == entries[i].hash)
    return " (the next line's prevHash is the hash of this line: SQLite's "
           "copy was edited)";
  return "";
}

// Each NDJSON record with the SQLite row of its eventId; the records in one only.
void match(std::vector<Entry>& entries, SqliteRows& sqlite, Findings& findings) {
  std::unordered_map<std::string, std::vector<std::size_t>> rowsById;
  for (std::size_t r = 0; r < sqlite.rows.size(); ++r) {
    rowsById[sqlite.rows[r].eventId].push_back(r);
  }
  std::unordered_map<std::string, std::size_t> seen;
  std::int64_t pruned = 0;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    Entry& entry = entries[i];
    if (!entry.record) continue;
    if (entry.eventId.empty()) {
      findings.problemAt(i, entry, "a record without an eventId: not one the agent wrote");
      continue;
    }
    if (auto rows = rowsById.find(entry.eventId); rows != rowsById.end()) {
      for (std::size_t r : rows->second) {
        if (sqlite.rows[r].entry) continue;
        entry.sqliteRow = r;
        sqlite.rows[r].entry = i;
        break;
      }
    }
    const auto [first, isFirst] = seen.emplace(entry.eventId, i);
    if (entry.sqliteRow) {
      const SqliteRow& row = sqlite.rows[*entry.sqliteRow];
      if (row.bytesHash != entry.bytesHash) {
        findings.problemAt(i, entry,
                           "line edited: its bytes differ from the same record in SQLite "
                           "(zastava-agent.db rowid " +
                               std::to_string(row.rowid) + ")" + editedSide(entries, i, row));
      }
    } else if (!isFirst) {
      findings.problemAt(i, entry,
                         "a second copy of eventId " + entry.eventId + " (the first is " +
                             placeOf(entries[first->second]) + "): a line added by hand");
    } else if (entry.timeNanos && sqlite.prunedBeforeNano &&
               *entry.timeNanos < *sqlite.prunedBeforeNano) {
      ++pruned;
    } else {
      findings.problemAt(i, entry,
                         "a record is missing from SQLite: no row holds eventId " + entry.eventId +
                             ", and its time is not before the last retention cutoff "
                             "(deleted from SQLite)");
    }
  }
  if (pruned > 0) {
    findings.notice(0,
                    {"", 0, 0, "",
                     counted(pruned, "record") + " only in NDJSON " + (pruned == 1 ? "is" : "are") +
                         " older than SQLite's last retention "
                         "cutoff (meta pruned_before_nano): pruned from SQLite"});
  }
}

// The NDJSON records in SQLite must be in its order.
void checkOrder(const std::vector<Entry>& entries, const SqliteRows& sqlite, Findings& findings) {
  std::vector<std::size_t> matched;  // entries
  std::vector<std::size_t> order;    // their rows
  for (std::size_t i = 0; i < entries.size(); ++i) {
    if (!entries[i].sqliteRow) continue;
    matched.push_back(i);
    order.push_back(*entries[i].sqliteRow);
  }
  const std::vector<bool> kept = inLongestIncreasing(order);
  for (std::size_t k = 0; k < matched.size(); ++k) {
    if (kept[k]) continue;
    const Entry& entry = entries[matched[k]];
    std::string message = "out of order: SQLite committed this record as rowid " +
                          std::to_string(sqlite.rows[order[k]].rowid);
    if (k > 0) {
      message += ", " + std::string(order[k] < order[k - 1] ? "before" : "after") +
                 " the record of the line above it (rowid " +
                 std::to_string(sqlite.rows[order[k - 1]].rowid) + ")";
    }
    findings.problemAt(matched[k], entry, message + ": lines moved or swapped");
  }
}

}  // namespace

Result<void> compareWithSqlite(std::vector<Entry>& entries, SqliteRows& sqlite, SqliteCopy& copy,
                               Findings& findings) {
  match(entries, sqlite, findings);
  checkOrder(entries, sqlite, findings);
  std::optional<std::size_t> firstMatched;
  std::optional<std::size_t> lastMatched;
  for (std::size_t r = 0; r < sqlite.rows.size(); ++r) {
    if (!sqlite.rows[r].entry) continue;
    if (!firstMatched) firstMatched = r;
    lastMatched = r;
  }
  // Before the first NDJSON record: its segment was deleted by retention.
  if (firstMatched && *firstMatched > 0) {
    findings.notice(
        0, {kDatabaseFileName, 0, 0, "",
            counted(static_cast<std::int64_t>(*firstMatched), "record") + " only in SQLite (" +
                rowids(sqlite.rows.front().rowid, sqlite.rows[*firstMatched - 1].rowid) + ")" +
                (*firstMatched == 1 ? " comes" : " come") +
                " before the first NDJSON record: their segments were deleted "
                "by retention"});
  }
  // Between NDJSON records: deleted from NDJSON. Reported at the line they belong before, one
  // problem per run of them.
  for (std::size_t r = firstMatched.value_or(0); lastMatched && r < *lastMatched; ++r) {
    if (sqlite.rows[r].entry) continue;
    std::size_t end = r;
    while (!sqlite.rows[end].entry) ++end;  // ends at lastMatched at the latest
    const SqliteRow& first = sqlite.rows[r];
    const SqliteRow& last = sqlite.rows[end - 1];
    const std::size_t at = *sqlite.rows[end].entry;
    findings.problemAt(
        at, entries[at],
        end - r == 1
            ? "a record is missing before this line: SQLite holds eventId " + first.eventId +
                  " (zastava-agent.db rowid " + std::to_string(first.rowid) +
                  ") between it and the line before (deleted from NDJSON)"
            : std::to_string(end - r) +
                  " records are missing before this line: SQLite holds them between it and the "
                  "line before, eventIds " +
                  first.eventId + " .. " + last.eventId + " (zastava-agent.db " +
                  rowids(first.rowid, last.rowid) + ") (deleted from NDJSON)");
    r = end;
  }
  // After the last one: committed, not yet appended; part of the ledger.
  const std::size_t tailFrom = lastMatched ? *lastMatched + 1 : 0;
  if (tailFrom < sqlite.rows.size()) {
    auto lines = copy.linesFrom(sqlite.rows[tailFrom].rowid);
    if (!lines) return lines.error();
    const std::size_t firstTail = entries.size();
    std::size_t r = tailFrom;
    for (auto& [rowid, line] : *lines) {
      Entry entry = parseEntry(line);
      entry.file = kDatabaseFileName;
      entry.rowid = rowid;
      while (r < sqlite.rows.size() && sqlite.rows[r].rowid < rowid) ++r;
      if (r < sqlite.rows.size() && sqlite.rows[r].rowid == rowid) {
        entry.sqliteRow = r;
        sqlite.rows[r].entry = entries.size();
      }
      if (!entry.record) {
        findings.problemAt(entries.size(), entry,
                           "not a record (not a JSON object with a prevHash): edited by hand");
      }
      entries.push_back(std::move(entry));
    }
    if (entries.size() > firstTail) {
      findings.noticeAt(firstTail, entries[firstTail],
                        counted(static_cast<std::int64_t>(entries.size() - firstTail), "record") +
                            " from here on " + (entries.size() - firstTail == 1 ? "is" : "are") +
                            " only in SQLite, after the last NDJSON "
                            "line: committed, not yet appended to NDJSON (the agent appends them "
                            "at its next start); part of the ledger");
    }
  }
  if (!sqlite.lastHash) {
    if (!sqlite.rows.empty()) {
      findings.problem(Findings::kEnd, {std::string(kDatabaseFileName), 0, 0, "",
                                        "meta has no last_hash though events has rows: edited"});
    }
  } else if (entries.empty() || *sqlite.lastHash != entries.back().hash) {
    findings.problem(Findings::kEnd,
                     {std::string(kDatabaseFileName), 0, 0, "",
                      "meta last_hash is not the hash of the ledger's last record" +
                          (entries.empty() ? std::string() : " (" + placeOf(entries.back()) + ")") +
                          ": the newest records were removed, or last_hash was edited"});
  }
  return okResult();
}

SqliteCopy::SqliteCopy(fs::path original, fs::path directory)
    : original_(std::move(original)), directory_(std::move(directory)) {}

SqliteCopy::~SqliteCopy() {
  db_.reset();
  std::error_code ec;
  fs::remove_all(directory_, ec);
}

Error SqliteCopy::named(Error error) const {
  const std::string copy = (directory_ / original_.filename()).string();
  for (auto at = error.message.find(copy); at != std::string::npos;
       at = error.message.find(copy, at)) {
    error.message.replace(at, copy.size(), original_.string());
    at += original_.string().size();
  }
  if (error.code == ErrorCode::kDiskFull) error.code = ErrorCode::kIo;
  return error;
}

Result<std::unique_ptr<SqliteCopy>> SqliteCopy::open(const fs::path& database) {
  std::string pattern = (fs::temp_directory_path() / "zastava-verify-XXXXXX").string();
  if (::mkdtemp(pattern.data()) == nullptr) {
    return Error{ErrorCode::kIo, "cannot create a temporary directory for a copy of " +
                                     database.string() + ": " + std::strerror(errno)};
  }
  std::unique_ptr<SqliteCopy> copy(new SqliteCopy(database, pattern));
  const fs::path target = copy->directory_ / database.filename();
  for (const std::string suffix : {"", "-wal"}) {
    const fs::path from = database.string() + suffix;
    std::error_code ec;
    if (!suffix.empty() && !fs::exists(from, ec)) continue;
    fs::copy_file(from, target.string() + suffix, ec);
    if (ec) {
      return Error{ErrorCode::kIo, "cannot copy " + from.string() + " to " +
                                       copy->directory_.string() + ": " + ec.message()};
    }
  }
  copy->db_ = std::make_unique<SqliteConnection>(target);
  // Read-write: SQLite replays the WAL copy into its own index, next to the copy.
  if (auto opened = copy->db_->open(SQLITE_OPEN_READWRITE); !opened) {
    return copy->named(opened.error());
  }
  return copy;
}

Result<SqliteRows> SqliteCopy::readRows() {
  SqliteRows sqlite;
  constexpr std::string_view kFailure = "cannot read the events of";
  auto rows = db_->prepare("SELECT rowid, event_id, time_nano, record FROM events ORDER BY rowid",
                           kFailure);
  if (!rows) return named(rows.error());
  int rc = SQLITE_ROW;
  while ((rc = rows->step()) == SQLITE_ROW) {
    SqliteRow row;
    row.rowid = rows->integer(0);
    row.eventId = rows->text(1);
    row.timeNano = rows->integer(2);
    const std::string line = rows->text(3);
    row.bytesHash = sha256Hex(line);
    const auto own = ownHashOf(line);
    row.hash = own ? std::string(*own) : row.bytesHash;
    sqlite.rows.push_back(std::move(row));
  }
  if (rc != SQLITE_DONE) return named(db_->error(rc, kFailure));
  auto meta =
      db_->prepare("SELECT key, value FROM meta WHERE key IN ('last_hash', 'pruned_before_nano')",
                   "cannot read meta of");
  if (!meta) return named(meta.error());
  while ((rc = meta->step()) == SQLITE_ROW) {
    if (meta->text(0) == "last_hash") {
      sqlite.lastHash = meta->text(1);
    } else {
      sqlite.prunedBeforeNano = meta->integer(1);
    }
  }
  if (rc != SQLITE_DONE) return named(db_->error(rc, "cannot read meta of"));
  return sqlite;
}

Result<std::vector<std::pair<std::int64_t, std::string>>> SqliteCopy::linesFrom(
    std::int64_t rowid) {
  constexpr std::string_view kFailure = "cannot read the events of";
  auto rows =
      db_->prepare("SELECT rowid, record FROM events WHERE rowid >= ?1 ORDER BY rowid", kFailure);
  if (!rows) return named(rows.error());
  rows->bindInt(1, rowid);
  std::vector<std::pair<std::int64_t, std::string>> lines;
  int rc = SQLITE_ROW;
  while ((rc = rows->step()) == SQLITE_ROW) lines.emplace_back(rows->integer(0), rows->text(1));
  if (rc != SQLITE_DONE) return named(db_->error(rc, kFailure));
  return lines;
}

}  // namespace zastava::ledger
