// Keeps a warning that may repeat for every container from flooding the log: at most `burst`
// lines per `period`; the ones held back are counted and reported by the next line let through.
#pragma once

#include <chrono>
#include <cstdint>

#include "common/clock.h"

namespace zastava {

class LogLimiter {
 public:
  LogLimiter(int burst, std::chrono::nanoseconds period) : burst_(burst), period_(period) {}

  // True when a line may be written at `now`; then `heldBack` is how many were not since the
  // last one let through. Not thread-safe.
  bool allow(UnixNanos now, std::uint64_t& heldBack) {
    if (now - windowStart_ >= period_.count()) {
      windowStart_ = now;
      lines_ = 0;
    }
    if (lines_ >= burst_) {
      ++held_;
      return false;
    }
    ++lines_;
    heldBack = held_;
    held_ = 0;
    return true;
  }

 private:
  const int burst_;
  const std::chrono::nanoseconds period_;
  UnixNanos windowStart_ = 0;
  int lines_ = 0;
  std::uint64_t held_ = 0;
};

}  // namespace zastava
