// Times read from outside: parseRfc3339Nanos (the engine's Created, StartedAt and FinishedAt,
// a record's time when a ledger is read back) and parseSince (`records --since`). A time that
// parses formats back (formatRfc3339Nanos) to a text that parses to the same instant.
#include <string>

#include "agent/records_command.h"
#include "buffer/record.h"
#include "common/rfc3339.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto text = fuzz::text(data, size);
  if (const auto time = parseRfc3339Nanos(text)) {
    const std::string formatted = formatRfc3339Nanos(*time);
    const auto again = parseRfc3339Nanos(formatted);
    fuzz::check(again && *again == *time, "a parsed time formats back to the same instant");
  }
  constexpr UnixNanos kNow = 1'795'358'000'000'000'000;  // 2026-11-22
  const auto since = parseSince(text, kNow);
  if (!since.ok()) {
    fuzz::check(since.error().code == ErrorCode::kInvalidArgument,
                "a --since error is "
                "kInvalidArgument");
  }
  return 0;
}
