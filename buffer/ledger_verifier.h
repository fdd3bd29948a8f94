// Verifies a data directory's ledger as docs/records.md "Verifying the ledger" says: the NDJSON
// segments, their hash chain, the records against SQLite, the seals (their MACs with the seeds
// given) and the key file. What `zastava-agent verify` runs. It never writes into the data
// directory: SQLite is read from a private copy of the database and its WAL in a temporary
// directory, removed afterwards. Meant for a stopped agent's directory or a copy of one; beside
// a running agent, records written while it reads show as SQLite's not yet appended tail.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "common/result.h"

namespace zastava {

struct LedgerVerifyOptions {
  std::filesystem::path dataDirectory;
  std::vector<std::filesystem::path> sealKeyFiles;  // seed files (`seal-key export` lines)
};

// Where something was found and what it is, in plain words.
struct LedgerFinding {
  // Relative to the data directory: "runtime-events/events-…-000003.ndjson",
  // "zastava-agent.db", "seal-key"; empty for the ledger as a whole.
  std::string file;
  std::uint64_t line = 0;  // 1-based line in `file`; 0 when it is not about one line
  std::int64_t rowid = 0;  // the events rowid of a record only SQLite holds; 0 otherwise
  std::string eventId;     // when known
  std::string message;
};

// The seals of one sealing key seen in the ledger.
struct LedgerSealKey {
  std::string keyId;
  std::int64_t firstEpoch = 0;
  std::int64_t lastEpoch = 0;
  std::int64_t seals = 0;
  bool seedGiven = false;  // --seal-key held its seed: every seal of it was checked
};

struct LedgerReport {
  std::int64_t records = 0;     // in the ledger: NDJSON lines, then SQLite's not appended tail
  std::int64_t segments = 0;    // NDJSON segment files
  std::int64_t sqliteRows = 0;  // rows of `events`
  std::int64_t seals = 0;
  std::int64_t sealsChecked = 0;        // MAC computed with the seed
  std::int64_t sealsUnchecked = 0;      // no seed given for their key
  std::vector<LedgerSealKey> sealKeys;  // in ledger order
  std::string firstTime;                // `time` of the ledger's first and last record
  std::string lastTime;
  // Reported, not failures: what retention deleted, a torn last line, the unsealed tail,
  // records only SQLite holds yet, seals not checked.
  std::vector<LedgerFinding> notices;
  // Tampering, in ledger order (the first one first); key file problems last.
  std::vector<LedgerFinding> problems;

  bool valid() const { return problems.empty(); }
};

// Verifies the ledger in options.dataDirectory. Errors (the input cannot be used): kNotFound
// when the directory does not exist, or holds neither segments nor a database; kIo naming a
// file that cannot be read (a segment, the database, the key file) or the temporary copy that
// cannot be made; kMalformed naming a seed file that is not one. Main thread (any thread that
// may create a temporary directory).
Result<LedgerReport> verifyLedger(const LedgerVerifyOptions& options);

// "runtime-events/x.ndjson:12", "zastava-agent.db rowid 7", "seal-key", or "" for the ledger.
std::string findingPlace(const LedgerFinding& finding);

}  // namespace zastava
