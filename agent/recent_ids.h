// The last N ids remembered, oldest forgotten first: the eventIds of the engine events last
// handed to the Recorder (Pipeline), the containers a reconciliation found destroyed (Tracker).
// Not thread-safe: the enricher owns both.
#pragma once

#include <cstddef>
#include <deque>
#include <string>
#include <unordered_set>

namespace zastava {

class RecentIds {
 public:
  explicit RecentIds(std::size_t capacity) : capacity_(capacity) {}

  bool contains(const std::string& id) const { return ids_.contains(id); }

  // Remembers `id`, forgetting the oldest one beyond capacity.
  void remember(const std::string& id) {
    if (!ids_.insert(id).second) return;
    order_.push_back(id);
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
