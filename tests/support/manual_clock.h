// The tests' Clocks. ManualClock: time moves only when the test advances it. A wait through it
// (Clock::waitUntil) returns when its condition holds or when advance() takes the clock past its
// deadline, never because real time passed, so back-off, stall detection, batch waits and audits
// are tested without sleeping. The test sees the waits in progress (waitsLeft, awaitWaits) to
// advance exactly when a thread waits and to check how long it asked to wait. ManualWallClock:
// wall time set by hand, monotonic time and waits real, for the scenarios whose threads really
// run together (the Pipeline's) and whose records' times follow a capture.
#pragma once

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>
#include <vector>

#include "common/clock.h"

namespace zastava {

class ManualClock final : public Clock {
 public:
  // 2026-01-01T00:00:00Z.
  static constexpr UnixNanos kDefaultStart = 1'767'225'600'000'000'000;

  // Wall time starts at `start`; monotonic time at an arbitrary point well after steady_clock's
  // epoch, so that a default-constructed MonoTime is in the past.
  explicit ManualClock(UnixNanos start = kDefaultStart) : wall_(start) {}
  ManualClock(const ManualClock&) = delete;
  ManualClock& operator=(const ManualClock&) = delete;

  UnixNanos now() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }

  MonoTime monotonic() const override {
    std::lock_guard lock(mu_);
    return mono_;
  }

  bool waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, MonoTime deadline,
                 const std::function<bool()>& done) const override {
    if (done()) return true;  // not a wait: not listed
    std::list<Waiter>::iterator self;
    {
      std::lock_guard guard(mu_);
      self = waiters_.insert(waiters_.end(), Waiter{lock.mutex(), &cv, deadline, generation_});
    }
    waitersChanged_.notify_all();
    bool result = false;
    while (true) {
      if (done()) {
        result = true;
        break;
      }
      if (monotonic() >= deadline) break;
      // advance() takes `lock`'s mutex before it notifies: no wake-up falls between the check
      // above and this wait.
      cv.wait(lock);
    }
    {
      std::lock_guard guard(mu_);
      waiters_.erase(self);
    }
    waitersChanged_.notify_all();
    return result;
  }

  // Moves wall and monotonic time forward by `by` and wakes every wait in progress (each checks
  // its deadline and its condition again). Never call it with a lock held that a waiting thread
  // waits with. Any thread.
  void advance(std::chrono::nanoseconds by) {
    std::unique_lock lock(mu_);
    wall_ += by.count();
    mono_ += by;
    const std::uint64_t generation = ++generation_;
    // A waiter holds its mutex from its deadline check until its cv.wait releases it: taking
    // that mutex before notifying means the waiter is inside cv.wait, or has not checked yet.
    while (true) {
      bool all = true;
      for (Waiter& waiter : waiters_) {
        if (waiter.notified >= generation) continue;
        if (!waiter.mutex->try_lock()) {
          all = false;
          continue;
        }
        waiter.cv->notify_all();
        waiter.mutex->unlock();
        waiter.notified = generation;
      }
      if (all) return;
      lock.unlock();
      std::this_thread::yield();
      lock.lock();
    }
  }

  // Moves monotonic time to the earliest deadline of the waits in progress (when it is ahead),
  // and returns how far it moved. Any thread.
  std::chrono::nanoseconds advanceToEarliestDeadline() {
    const std::vector<std::chrono::nanoseconds> left = waitsLeft();
    if (left.empty() || left.front() <= std::chrono::nanoseconds::zero()) return {};
    advance(left.front());
    return left.front();
  }

  // Sets the wall time only (a clock step); monotonic time does not move. Any thread.
  void set(UnixNanos to) {
    std::lock_guard lock(mu_);
    wall_ = to;
  }

  // How long each wait in progress has left until its deadline, shortest first. Any thread.
  std::vector<std::chrono::nanoseconds> waitsLeft() const {
    std::lock_guard lock(mu_);
    return leftLocked();
  }

  // Blocks until `ready(waitsLeft())` is true, or 10 s of real time (a test that hangs fails
  // instead). Returns whether it became true. Any thread but a waiting one.
  bool awaitWaits(const std::function<bool(const std::vector<std::chrono::nanoseconds>&)>& ready,
                  std::chrono::milliseconds realLimit = std::chrono::seconds(10)) const {
    std::unique_lock lock(mu_);
    return waitersChanged_.wait_for(lock, realLimit, [&] { return ready(leftLocked()); });
  }

  // Blocks until at least `count` waits are in progress (or 10 s of real time); returns whether
  // they are. Any thread but a waiting one.
  bool awaitWaits(std::size_t count) const {
    return awaitWaits([count](const auto& left) { return left.size() >= count; });
  }

 private:
  struct Waiter {
    std::mutex* mutex;
    std::condition_variable* cv;
    MonoTime deadline;
    std::uint64_t notified;  // the last advance() that woke it, or that it saw the time of
  };

  std::vector<std::chrono::nanoseconds> leftLocked() const {
    std::vector<std::chrono::nanoseconds> left;
    for (const Waiter& waiter : waiters_) {
      left.push_back(waiter.deadline == MonoTime::max() ? std::chrono::nanoseconds::max()
                                                        : waiter.deadline - mono_);
    }
    std::sort(left.begin(), left.end());
    return left;
  }

  mutable std::mutex mu_;
  mutable std::condition_variable waitersChanged_;  // a wait began or ended
  UnixNanos wall_;                                  // guarded by mu_
  MonoTime mono_{std::chrono::hours(24)};           // guarded by mu_
  std::uint64_t generation_ = 0;                    // guarded by mu_: advance() calls
  mutable std::list<Waiter> waiters_;               // guarded by mu_
};

// Wall time moves only when set; monotonic time and waits are the system's (steady_clock). Any
// thread.
class ManualWallClock final : public Clock {
 public:
  explicit ManualWallClock(UnixNanos start) : wall_(start) {}
  ManualWallClock(const ManualWallClock&) = delete;
  ManualWallClock& operator=(const ManualWallClock&) = delete;

  UnixNanos now() const override {
    std::lock_guard lock(mu_);
    return wall_;
  }
  MonoTime monotonic() const override { return system_.monotonic(); }
  bool waitUntil(std::unique_lock<std::mutex>& lock, std::condition_variable& cv, MonoTime deadline,
                 const std::function<bool()>& done) const override {
    return system_.waitUntil(lock, cv, deadline, done);
  }

  void set(UnixNanos to) {
    std::lock_guard lock(mu_);
    wall_ = to;
  }

 private:
  SystemClock system_;
  mutable std::mutex mu_;
  UnixNanos wall_;  // guarded by mu_
};

}  // namespace zastava
