// The Clock seam: everything that asks "what time is it" or waits for a time goes through a
// Clock, so tests can move time by hand. It has three parts: wall time (record times, rotation,
// retention), monotonic time (deadlines, back-off, stall detection, durations) and waiting on a
// condition variable until a monotonic deadline or until a condition holds (every loop that
// waits for work, a retry or stop). SystemClock is the one production implementation; the
// tests' ManualClock (tests/support/manual_clock.h) moves only when a test advances it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>

namespace zastava {

// Nanoseconds since the Unix epoch, UTC.
using UnixNanos = std::int64_t;

// A point on the monotonic clock. Only differences and comparisons mean anything.
using MonoTime = std::chrono::steady_clock::time_point;

class Clock {
 public:
  virtual ~Clock() = default;

  // Wall-clock time. Any thread.
  virtual UnixNanos now() const = 0;

  // Monotonic time: never goes back, does not follow changes to the wall clock. Any thread.
  virtual MonoTime monotonic() const = 0;

  // With `lock` held on the mutex `cv` is used with, waits until `done()` is true (checked
  // with the lock held, after each wake-up of `cv`) or monotonic() reaches `deadline`. Returns
  // done() as last checked, like std::condition_variable::wait_until with a predicate. Whoever
  // makes done() true must notify `cv`. Any thread.
  virtual bool waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                         MonoTime deadline, const std::function<bool()>& done) const = 0;

  // waitUntil(monotonic() + duration).
  bool waitFor(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
               std::chrono::nanoseconds duration, const std::function<bool()>& done) const {
    return waitUntil(lock, cv, monotonic() + duration, done);
  }

  // Seconds on the monotonic clock since `start`, for duration metrics. Any thread.
  double secondsSince(MonoTime start) const {
    return std::chrono::duration<double>(monotonic() - start).count();
  }
};

// The operating system's clocks: system_clock, steady_clock and std::condition_variable's own
// timed wait.
class SystemClock final : public Clock {
 public:
  UnixNanos now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

  MonoTime monotonic() const override { return std::chrono::steady_clock::now(); }

  bool waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, MonoTime deadline,
                 const std::function<bool()>& done) const override {
    return cv.wait_until(lock, deadline, done);
  }
};

}  // namespace zastava
