// Times as text: the records' RFC 3339 UTC times, and the engines' (which use the same layout
// with 0 to 9 fractional digits).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"

namespace zastava {

// "2026-11-22T14:33:46.456774704Z" (always 9 fractional digits, UTC). Any thread.
std::string formatRfc3339Nanos(UnixNanos t);
// Parses the engine's UTC times ("2026-11-22T14:33:46.4567747Z", 0 to 9 fractional digits).
// std::nullopt for anything else (a sign or blank in place of a digit, a field out of its
// range: month 13, February 30, 24:00), for Docker's "never" (0001-01-01T00:00:00Z), and for
// years after 2261 (beyond 64-bit nanoseconds). Any thread.
std::optional<UnixNanos> parseRfc3339Nanos(std::string_view text);

}  // namespace zastava
