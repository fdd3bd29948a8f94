// parseRetryAfter: the Retry-After header of the backend's answer (delay-seconds or an HTTP
// date, the date read by libcurl's curl_getdate).
#include <ctime>

#include "delivery/backend_client.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  constexpr std::time_t kNow = 1'795'358'000;  // 2026-11-22
  if (const auto delay = parseRetryAfter(fuzz::text(data, size), kNow)) {
    fuzz::check(delay->count() >= 0, "a delay is not negative");
  }
  return 0;
}
