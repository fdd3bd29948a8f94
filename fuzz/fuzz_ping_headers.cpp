// What GET /_ping answers with: its header lines (decodeStatusLine, decodeApiVersionHeader, as
// libcurl hands them to the header callback, line ends removed) and the API version in them
// (parseApiVersion, also applied to /version's ApiVersion during negotiation).
#include <string>

#include "collectors/decoders.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

namespace {

bool digitsOnly(std::string_view text) {
  if (text.empty()) return false;
  for (const char c : text) {
    if (c < '0' || c > '9') return false;
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  for (std::string_view line : fuzz::lines(fuzz::text(data, size))) {
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (const auto status = decodeStatusLine(line)) {
      fuzz::check(line.starts_with("HTTP/"), "only a status line has a status");
    }
    std::string version(line);
    if (const auto value = decodeApiVersionHeader(line)) version = *value;
    const auto parsed = parseApiVersion(version);
    if (!parsed) continue;
    // The header's promise: <digits>.<digits>, and nothing else, read back as the same numbers.
    const auto dot = version.find('.');
    fuzz::check(dot != std::string::npos && digitsOnly(version.substr(0, dot)) &&
                    digitsOnly(version.substr(dot + 1)),
                "a parsed API version is <digits>.<digits>");
    fuzz::check(parsed->first >= 0 && parsed->second >= 0, "API version numbers are not negative");
  }
  return 0;
}
