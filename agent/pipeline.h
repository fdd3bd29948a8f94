// The Pipeline moves engine facts into the Recorder on two named threads:
//   zastava-stream: keeps the /events stream open (negotiate, stream, back off, resume with
//                   since=<last event seen>) and only decodes and queues, so the engine never
//                   waits on us (it drops events for a reader slower than 100 ms);
//   zastava-enrich: takes the container inventory after the stream first opens (list, then
//                   inspect with bounded parallelism, one snapshot record each), then turns each
//                   queued event into a record, inspecting on create/start/die.
// The stream is opened before the inventory is listed, so nothing falls between them.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>

#include "agent/tracker.h"
#include "collectors/docker_api.h"
#include "common/clock.h"

namespace zastava {

class HealthState;
class Metrics;
class Recorder;

struct PipelineOptions {
  int inventoryConcurrency = 8;
  std::chrono::milliseconds initialBackoff{500};
  std::chrono::milliseconds maxBackoff{30'000};
  std::size_t eventQueueCapacity = 65536;
};

class Pipeline {
 public:
  Pipeline(DockerApi& api, Recorder& recorder, HealthState& health, Metrics& metrics,
           const Clock& clock, PipelineOptions options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Starts both threads. Main thread, once.
  void start();
  // Stops both threads and joins them: the stream is closed within about a second (libcurl's
  // progress callback period); events already queued are recorded without new inspects.
  // Idempotent. Main thread.
  void stop();

 private:
  struct QueuedEvent {
    EngineEvent event;
    RecordSource source;
  };

  void runStream();
  void runEnricher();
  // One connect attempt: negotiate, then stream until it fails. Returns why it ended.
  Error streamOnce();
  void onStreamOpen(std::int64_t since);
  void onStreamEvent(Result<EngineEvent>& event, std::int64_t since);
  void onStreamFailed(const Error& error);
  Result<void> takeInventory();
  void tryInventory();
  void recordEvent(const QueuedEvent& queued);
  // Waits `duration` or until stop(); returns false when stopping. Any pipeline thread.
  bool sleepUnlessStopped(std::chrono::milliseconds duration);
  std::chrono::milliseconds nextBackoff(int attempt) const;

  DockerApi& api_;
  Recorder& recorder_;
  HealthState& health_;
  Metrics& metrics_;
  const Clock& clock_;
  const PipelineOptions options_;
  Tracker tracker_;  // enricher thread only

  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::condition_variable wake_;
  std::deque<QueuedEvent> queue_;  // guarded by mu_
  bool inventoryWanted_ = false;   // guarded by mu_
  bool queueFullWarned_ = false;   // guarded by mu_

  // Stream thread only.
  std::int64_t lastSeenNano_ = 0;
  UnixNanos streamOpenedAt_ = 0;
  bool everOpened_ = false;
  bool inIncident_ = false;
  bool decodeWarned_ = false;
  int failedAttempts_ = 0;

  // Enricher thread only.
  int inventoryAttempts_ = 0;
  std::chrono::steady_clock::time_point nextInventoryAt_{};

  std::thread streamThread_;
  std::thread enrichThread_;
};

}  // namespace zastava
