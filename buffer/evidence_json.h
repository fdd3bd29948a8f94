// The JSON form of a container.evidence record's "evidence" object (docs/records.md). Internal
// to buffer/: record.cpp places it in the record.
#pragma once

#include "buffer/json_writer.h"
#include "buffer/record.h"

namespace zastava {

// Keys in the fixed order docs/record-schema.json lists. Any thread.
void writeEvidence(JsonWriter& out, const EvidenceFacts& evidence);

}  // namespace zastava
