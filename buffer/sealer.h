// The writer's side of sealing (docs/records.md, "Seals"): holds the current epoch key only,
// makes each agent.seal record, and after the seal is durable replaces the key with the next
// epoch's, in memory and in the key file. At open it compares the key file with what the ledger
// says and says what it found in an agent.seal-key record. Not thread-safe: the Recorder's
// writer thread owns it (open() runs on the main thread before the writer starts).
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string_view>
#include <vector>

#include "buffer/record.h"
#include "buffer/seal.h"
#include "buffer/sqlite_store.h"
#include "common/result.h"

namespace zastava {

class Metrics;

class Sealer {
 public:
  // Reads <dataDirectory>/seal-key and compares it with `ledger`: a ledger without a key, a key
  // file that is missing, unreadable or holds another key get a new seed (its seed file written
  // for the operator to take away); a key file behind the ledger is evolved forward to it; one
  // ahead of it is kept. Each of those appends its agent.seal-key record (time `now`) to
  // `records`, for the Recorder to commit first. Logs a warning for each seed file still in the
  // directory. Errors: kIo/kDiskFull naming the file that cannot be read or written; kInternal
  // when OpenSSL has no randomness.
  static Result<std::unique_ptr<Sealer>> open(const std::filesystem::path& dataDirectory,
                                              const LedgerSealState& ledger, UnixNanos now,
                                              Metrics& metrics, std::vector<Record>& records);
  ~Sealer();
  Sealer(const Sealer&) = delete;
  Sealer& operator=(const Sealer&) = delete;

  // The agent.seal of the current epoch at `now`, for a chain whose head is `lastHash` with
  // `records` committed since the last seal or agent.seal-key record.
  Record seal(UnixNanos now, std::string_view lastHash, std::int64_t records) const;

  // Once the seal is durable: the next epoch's key replaces the current one, which is erased,
  // and overwrites the key file. A failed write is logged and counted; the key in memory moves
  // on all the same (the next seal writes the file again).
  void advance();

  // zastava_agent_seal_seeds_on_host: the seed files in the data directory; with `warn`, a
  // warning for each.
  void countSeedsOnHost(bool warn);

  std::int64_t epoch() const { return state_.epoch; }

 private:
  Sealer(std::filesystem::path dataDirectory, Metrics& metrics);
  // A new seed and its epoch 0 key, in files; the agent.seal-key record saying `change`.
  Result<Record> beginNewKey(SealKeyChange change, std::string reason, UnixNanos now);
  Result<void> writeKeyFile();

  std::filesystem::path dataDirectory_;
  std::filesystem::path keyFile_;
  Metrics& metrics_;
  SealKeyState state_;  // the current epoch's key
};

}  // namespace zastava
