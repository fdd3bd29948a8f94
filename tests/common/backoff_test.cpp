#include "common/backoff.h"

#include <doctest/doctest.h>

#include <chrono>
#include <vector>

namespace zastava {
namespace {

using namespace std::chrono_literals;

TEST_CASE("without jitter the back-off doubles from initial up to max, and reset starts again") {
  Backoff backoff(100ms, 5000ms, Backoff::Jitter::kNone);
  std::vector<std::chrono::milliseconds> waits;
  for (int i = 0; i < 9; ++i) waits.push_back(backoff.next());
  CHECK(waits == std::vector<std::chrono::milliseconds>{100ms, 200ms, 400ms, 800ms, 1600ms, 3200ms,
                                                        5000ms, 5000ms, 5000ms});
  backoff.reset();
  CHECK(backoff.next() == 100ms);
  CHECK(backoff.next() == 200ms);
}

TEST_CASE("with jitter each wait is between half and all of its step") {
  Backoff backoff(1000ms, 60'000ms, Backoff::Jitter::kHalfToFull);
  const std::chrono::milliseconds steps[] = {1s, 2s, 4s, 8s, 16s, 32s, 60s, 60s};
  for (const auto step : steps) {
    CAPTURE(step.count());
    CHECK(backoff.step() == step);
    const auto wait = backoff.next();
    CHECK(wait >= step / 2);
    CHECK(wait <= step);
  }
  backoff.reset();
  CHECK(backoff.step() == 1s);
}

TEST_CASE("a step never overflows, and a max below initial is raised to it") {
  Backoff huge(1ms, std::chrono::milliseconds::max(), Backoff::Jitter::kNone);
  for (int i = 0; i < 200; ++i) CHECK(huge.next() > 0ms);
  CHECK(huge.step() == std::chrono::milliseconds::max());

  Backoff inverted(500ms, 100ms, Backoff::Jitter::kNone);
  CHECK(inverted.max() == 500ms);
  CHECK(inverted.next() == 500ms);
  CHECK(inverted.next() == 500ms);
}

}  // namespace
}  // namespace zastava
