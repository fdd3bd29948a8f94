// The Clock seam: everything that asks "what time is it" (record times, rotation, retention,
// backoff) goes through a Clock so tests can move time by hand.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>

namespace zastava {

// Nanoseconds since the Unix epoch, UTC.
using UnixNanos = std::int64_t;

class Clock {
 public:
  virtual ~Clock() = default;
  // Wall-clock time. Any thread.
  virtual UnixNanos now() const = 0;
};

class SystemClock final : public Clock {
 public:
  UnixNanos now() const override {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that only moves when told to. Any thread.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(UnixNanos start) : now_(start) {}
  UnixNanos now() const override {
    std::lock_guard lock(mu_);
    return now_;
  }
  void advance(std::chrono::nanoseconds by) {
    std::lock_guard lock(mu_);
    now_ += by.count();
  }
  void set(UnixNanos to) {
    std::lock_guard lock(mu_);
    now_ = to;
  }

 private:
  mutable std::mutex mu_;
  UnixNanos now_;
};

}  // namespace zastava
