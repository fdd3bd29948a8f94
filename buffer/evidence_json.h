// The JSON form of a container.evidence record's "evidence" object (docs/records.md). Internal
// to buffer/: record.cpp places it in the record.
#pragma once

#include <nlohmann/json.hpp>

#include "buffer/record.h"

namespace zastava {

// Keys in the fixed order docs/record-schema.json lists. Pure; any thread.
nlohmann::ordered_json evidenceJson(const EvidenceFacts& evidence);

}  // namespace zastava
