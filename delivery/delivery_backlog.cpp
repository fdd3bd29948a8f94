#include "delivery/delivery_backlog.h"

#include <algorithm>

#include "health/metrics.h"

namespace zastava {

void DeliveryBacklog::recordsCommitted(std::size_t records, std::uint64_t bytes) {
  {
    std::lock_guard lock(mu_);
    counts_.records += static_cast<std::int64_t>(records);
    counts_.bytes += static_cast<std::int64_t>(bytes);
    report();
  }
  wake_.notify_one();
}

void DeliveryBacklog::set(Backlog counted) {
  std::lock_guard lock(mu_);
  counts_ = counted;
  report();
}

void DeliveryBacklog::remove(std::int64_t records, std::int64_t bytes) {
  std::lock_guard lock(mu_);
  counts_.records = std::max<std::int64_t>(counts_.records - records, 0);
  counts_.bytes = std::max<std::int64_t>(counts_.bytes - bytes, 0);
  report();
}

Backlog DeliveryBacklog::current() const {
  std::lock_guard lock(mu_);
  return counts_;
}

void DeliveryBacklog::close() {
  {
    std::lock_guard lock(mu_);
    closed_ = true;
  }
  wake_.notify_all();
}

bool DeliveryBacklog::closed() const {
  std::lock_guard lock(mu_);
  return closed_;
}

void DeliveryBacklog::report() { metrics_.setBackendBacklog(counts_.records, counts_.bytes); }

}  // namespace zastava
