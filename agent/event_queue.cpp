#include "agent/event_queue.h"

namespace zastava {

std::size_t EventQueue::sizeOf(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  std::size_t size = sizeof(ReceivedEvent) + received.eventId.size() + event.type.size() +
                     event.action.size() + event.actionDetail.size() + event.rawAction.size() +
                     event.actorId.size() + event.scope.size();
  for (const auto& [key, value] : event.attributes) size += 64 + key.size() + value.size();
  return size;
}

bool EventQueue::pushEvent(ReceivedEvent event) {
  const std::size_t size = sizeOf(event);
  {
    std::lock_guard lock(mu_);
    if (events_ + 1 > limits_.maxEvents || bytes_ + size > limits_.maxBytes) return false;
    items_.emplace_back(std::move(event));
    ++events_;
    bytes_ += size;
  }
  changed_.notify_all();
  return true;
}

void EventQueue::pushStreamOpened(StreamOpened opened) {
  {
    std::lock_guard lock(mu_);
    items_.emplace_back(std::move(opened));
  }
  changed_.notify_all();
}

void EventQueue::pushAnswer(InspectAnswer answer) {
  {
    std::lock_guard lock(mu_);
    answers_.push_back(std::move(answer));
  }
  changed_.notify_all();
}

void EventQueue::pushStreamCut() {
  {
    std::lock_guard lock(mu_);
    items_.emplace_back(StreamCut{});
  }
  changed_.notify_all();
}

bool EventQueue::replayCut(UnixNanos openedAt) const {
  std::lock_guard lock(mu_);
  for (const QueueItem& item : items_) {
    const auto* event = std::get_if<ReceivedEvent>(&item);
    if (event == nullptr) return std::holds_alternative<StreamCut>(item);
    if (event->event.timeNano >= openedAt) return false;
  }
  return false;
}

bool EventQueue::holdsCut() const {
  std::lock_guard lock(mu_);
  for (const QueueItem& item : items_) {
    if (std::holds_alternative<StreamCut>(item)) return true;
  }
  return false;
}

bool EventQueue::waitForRoom() {
  std::unique_lock lock(mu_);
  changed_.wait(lock, [this] {
    return stop_ || (events_ <= limits_.maxEvents / 2 && bytes_ <= limits_.maxBytes / 2);
  });
  return !stop_;
}

void EventQueue::took(const QueueItem& item) {
  if (const auto* event = std::get_if<ReceivedEvent>(&item)) {
    --events_;
    bytes_ -= sizeOf(*event);
  }
}

std::optional<QueueItem> EventQueue::pop(std::optional<MonoTime> deadline) {
  std::optional<QueueItem> item;
  {
    std::unique_lock lock(mu_);
    const auto ready = [this] { return stop_ || !items_.empty() || !answers_.empty(); };
    if (deadline) {
      clock_.waitUntil(lock, changed_, *deadline, ready);
    } else {
      changed_.wait(lock, ready);
    }
    if (!answers_.empty()) {
      item = std::move(answers_.front());
      answers_.pop_front();
      return item;
    }
    if (items_.empty()) return std::nullopt;
    item = std::move(items_.front());
    items_.pop_front();
    took(*item);
  }
  changed_.notify_all();  // the stream may be waiting for room
  return item;
}

std::optional<ReceivedEvent> EventQueue::popReplayedBefore(UnixNanos openedAt) {
  std::optional<ReceivedEvent> event;
  {
    std::lock_guard lock(mu_);
    if (items_.empty()) return std::nullopt;
    auto* front = std::get_if<ReceivedEvent>(&items_.front());
    if (front == nullptr || front->event.timeNano >= openedAt) return std::nullopt;
    event = std::move(*front);
    items_.pop_front();
    --events_;
    bytes_ -= sizeOf(*event);
  }
  changed_.notify_all();
  return event;
}

bool EventQueue::waitForReplayEnd(UnixNanos openedAt, MonoTime deadline) {
  std::unique_lock lock(mu_);
  clock_.waitUntil(lock, changed_, deadline, [&] {
    if (stop_) return true;
    for (const QueueItem& item : items_) {
      const auto* event = std::get_if<ReceivedEvent>(&item);
      if (event == nullptr || event->event.timeNano >= openedAt) return true;
    }
    return false;
  });
  return !stop_;
}

bool EventQueue::waitForEvent(const std::string& eventId, MonoTime deadline) {
  std::unique_lock lock(mu_);
  clock_.waitUntil(lock, changed_, deadline, [&] {
    if (stop_) return true;
    for (const QueueItem& item : items_) {
      const auto* event = std::get_if<ReceivedEvent>(&item);
      if (event == nullptr || event->eventId == eventId) return true;
    }
    return false;
  });
  return !stop_;
}

ReplayCheck EventQueue::checkReplay(const EventCursor& since, UnixNanos openedAt) const {
  ReplayCheck check;
  std::lock_guard lock(mu_);
  for (const QueueItem& item : items_) {
    const auto* event = std::get_if<ReceivedEvent>(&item);
    if (event == nullptr || event->event.timeNano >= openedAt) break;
    if (event->eventId == since.eventId) {
      check.holdsCursor = true;
      return check;
    }
    if (event->event.timeNano > since.timeNano &&
        (check.firstAfter == 0 || event->event.timeNano < check.firstAfter)) {
      check.firstAfter = event->event.timeNano;
    }
  }
  return check;
}

bool EventQueue::frontIsStreamOpened() const {
  std::lock_guard lock(mu_);
  return !items_.empty() && std::holds_alternative<StreamOpened>(items_.front());
}

bool EventQueue::holds(std::string_view id, std::string_view action) const {
  std::lock_guard lock(mu_);
  for (const QueueItem& item : items_) {
    const auto* queued = std::get_if<ReceivedEvent>(&item);
    if (queued != nullptr && queued->event.actorId == id && queued->event.action == action) {
      return true;
    }
  }
  return false;
}

bool EventQueue::sleepFor(std::chrono::milliseconds duration) {
  std::unique_lock lock(mu_);
  return !clock_.waitFor(lock, changed_, duration, [this] { return stop_.load(); });
}

void EventQueue::stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  changed_.notify_all();
}

std::size_t EventQueue::events() const {
  std::lock_guard lock(mu_);
  return events_;
}

std::size_t EventQueue::bytes() const {
  std::lock_guard lock(mu_);
  return bytes_;
}

}  // namespace zastava
