// Batches the backend rejected (a 4xx that blames the records), kept as NDJSON files in
// <data dir>/backend-quarantine/ for an operator to look at and send again by hand
// (docs/backend.md "Quarantine"). Dispatcher thread.
#pragma once

#include <cstddef>
#include <filesystem>

#include "buffer/delivery_ledger.h"
#include "common/result.h"

namespace zastava {

// The newest batches kept; older ones are deleted with a warning.
inline constexpr std::size_t kQuarantineKeep = 100;

// Writes the batch's body, exactly as sent uncompressed, to
// backend-quarantine/batch-<first rowid>-<last rowid>.ndjson (directory 0750, file 0640, file and
// directory synced) and deletes the oldest files beyond kQuarantineKeep (one it cannot delete or
// list is logged as a warning). Returns the file's path. Errors: kIo/kDiskFull naming the path,
// for a failed chmod or sync too.
Result<std::filesystem::path> quarantineBatch(const std::filesystem::path& dataDirectory,
                                              const PendingBatch& batch);

}  // namespace zastava
