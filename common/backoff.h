// The back-off of every retry loop: the engine stream's reconnects and the inventory's retries
// (agent/), the buffer writer's retries (buffer/recorder.cpp) and backend delivery's
// (delivery/dispatcher.cpp). The first wait is `initial`, each further one twice as long, up to
// `max`; reset() after a success starts again from `initial`. With Jitter::kHalfToFull each wait
// is drawn between half and all of its step, so agents that failed together do not retry
// together. A value: the loop that owns it waits through its Clock. One thread.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <random>

namespace zastava {

class Backoff {
 public:
  enum class Jitter { kNone, kHalfToFull };

  // `initial` and `max` at least 1 ms; `max` below `initial` is raised to it.
  Backoff(std::chrono::milliseconds initial, std::chrono::milliseconds max, Jitter jitter)
      : initial_(std::max(initial, std::chrono::milliseconds(1))),
        max_(std::max(max, initial_)),
        jitter_(jitter),
        step_(initial_),
        random_(std::random_device{}()) {}

  // The wait before the next retry; the step then doubles, up to max.
  std::chrono::milliseconds next() {
    const std::chrono::milliseconds step = step_;
    step_ = step_ >= max_ / 2 ? max_ : step_ * 2;
    if (jitter_ == Jitter::kNone) return step;
    std::uniform_int_distribution<std::int64_t> pick(step.count() / 2, step.count());
    return std::chrono::milliseconds(pick(random_));
  }

  // After a success: the next wait is `initial` again.
  void reset() { step_ = initial_; }

  // The step the next wait is drawn from (all of it without jitter).
  std::chrono::milliseconds step() const { return step_; }
  std::chrono::milliseconds max() const { return max_; }

 private:
  std::chrono::milliseconds initial_;
  std::chrono::milliseconds max_;
  Jitter jitter_;
  std::chrono::milliseconds step_;
  std::minstd_rand random_;
};

}  // namespace zastava
