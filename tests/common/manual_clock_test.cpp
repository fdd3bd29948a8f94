// The tests' clock: other tests rely on its waits ending exactly when time is advanced past
// their deadline, and on a condition ending them without any advance.
#include "tests/support/manual_clock.h"

#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

namespace zastava {
namespace {

using namespace std::chrono_literals;

TEST_CASE("manual clock: time moves only when advanced; set() moves wall time only") {
  ManualClock clock(1000);
  const MonoTime start = clock.monotonic();
  CHECK(clock.now() == 1000);
  CHECK(clock.monotonic() == start);
  CHECK(start > MonoTime{});  // a default MonoTime is in the past
  clock.advance(5ms);
  CHECK(clock.now() == 1000 + 5'000'000);
  CHECK(clock.monotonic() - start == 5ms);
  clock.set(42);
  CHECK(clock.now() == 42);
  CHECK(clock.monotonic() - start == 5ms);
  CHECK(clock.secondsSince(start) == doctest::Approx(0.005));
}

TEST_CASE("manual clock: a wait ends when the clock passes its deadline, not before") {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool result = true;
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = clock.waitFor(lock, cv, 10s, [&] { return done; });
  });
  REQUIRE(clock.awaitWaits(1));
  CHECK(clock.waitsLeft() == std::vector<std::chrono::nanoseconds>{10s});
  clock.advance(9s);
  CHECK(clock.awaitWaits([](const auto& left) { return left.size() == 1 && left[0] == 1s; }));
  clock.advance(1s);
  waiter.join();
  CHECK_FALSE(result);
  CHECK(clock.waitsLeft().empty());
}

TEST_CASE("manual clock: a wait ends when its condition holds, without any advance") {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  bool result = false;
  std::thread waiter([&] {
    std::unique_lock lock(mu);
    result = clock.waitUntil(lock, cv, MonoTime::max(), [&] { return done; });
  });
  REQUIRE(clock.awaitWaits(1));
  {
    std::lock_guard lock(mu);
    done = true;
  }
  cv.notify_all();
  waiter.join();
  CHECK(result);
}

TEST_CASE("manual clock: advancing wakes every waiter whose deadline passed") {
  ManualClock clock;
  std::mutex mu;
  std::condition_variable cv;
  int ended = 0;
  std::vector<std::thread> waiters;
  for (int i = 1; i <= 3; ++i) {
    waiters.emplace_back([&, i] {
      std::unique_lock lock(mu);
      clock.waitFor(lock, cv, std::chrono::seconds(i), [] { return false; });
      ++ended;
    });
  }
  REQUIRE(clock.awaitWaits(3));
  CHECK(clock.advanceToEarliestDeadline() == 1s);
  CHECK(clock.awaitWaits([](const auto& left) { return left.size() == 2; }));
  clock.advance(2s);
  for (auto& waiter : waiters) waiter.join();
  CHECK(ended == 3);
}

}  // namespace
}  // namespace zastava
