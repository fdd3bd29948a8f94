// Brings the NDJSON segments level with SQLite after a crash. SQLite commits before the NDJSON
// sync, so a kill between the two (or a stop while the disk was full) leaves records that only
// SQLite holds; they are appended again here, in commit order, so the chain in the files stays
// unbroken. A torn last line (a write cut short by a crash) is cut off first.
#pragma once

#include "common/result.h"

namespace zastava {

class SqliteStore;
class SegmentWriter;

// Finds the last complete line of the newest non-empty segment in `store`, appends every record
// committed after it and syncs. Does nothing when there is no segment yet, when the last line
// is the store's last record, or when the line is unknown to the store (pruned, or another
// database): those cases are logged. Errors: kIo/kDiskFull from reading, truncating, writing.
// Call before the writer thread starts.
Result<void> resyncSegments(SqliteStore& store, SegmentWriter& segments);

}  // namespace zastava
