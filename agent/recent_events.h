// The eventIds of the last N engine events the enricher handed to the Recorder, so an event the
// engine replays after a reconnect or restart is recognised before it reaches the Tracker (whose
// state a replayed older event would move backwards). Not thread-safe: the enricher owns it.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>

namespace zastava {

class RecentEvents {
 public:
  explicit RecentEvents(std::size_t capacity) : capacity_(capacity) {}

  bool contains(const std::string& eventId) const { return ids_.contains(eventId); }

  // Remembers `eventId`, forgetting the oldest one beyond capacity.
  void remember(const std::string& eventId) {
    if (!ids_.insert(eventId).second) return;
    order_.push_back(eventId);
    if (order_.size() > capacity_) {
      ids_.erase(order_.front());
      order_.pop_front();
    }
  }

 private:
  const std::size_t capacity_;
  std::unordered_set<std::string> ids_;
  std::deque<std::string> order_;
};

}  // namespace zastava
