// LogLimiter: a burst per period, the lines held back reported by the next one let through.

#include "common/log_limiter.h"

#include <doctest/doctest.h>

#include <chrono>

namespace zastava {
namespace {

constexpr UnixNanos kSecond = 1'000'000'000;

TEST_CASE("log limiter: a burst per period, then the held-back count") {
  LogLimiter limiter(2, std::chrono::seconds(60));
  const UnixNanos start = 1'800'000'000 * kSecond;
  std::uint64_t heldBack = 99;
  CHECK(limiter.allow(start, heldBack));
  CHECK(heldBack == 0);
  CHECK(limiter.allow(start + kSecond, heldBack));
  CHECK_FALSE(limiter.allow(start + 2 * kSecond, heldBack));
  CHECK_FALSE(limiter.allow(start + 59 * kSecond, heldBack));
  CHECK(limiter.allow(start + 60 * kSecond, heldBack));  // a new period
  CHECK(heldBack == 2);
  CHECK(limiter.allow(start + 61 * kSecond, heldBack));
  CHECK(heldBack == 0);
}

}  // namespace
}  // namespace zastava
