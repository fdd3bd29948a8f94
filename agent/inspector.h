// The Inspector asks the engine what only an inspect knows (image ID and digest, pid, security
// posture, environment, restart count) on its own threads, so that no record waits for an
// answer: the record of an event is written from the event alone, and the answer follows in its
// own container.inspect record. A few workers (zastava-inspect) each send one inspect at a
// time; an answer is handed to `onAnswer` on the worker's thread, in no particular order between
// containers. An inspect that fails is asked again twice (100 and 400 ms later) unless it was
// refused or timed out; a container the engine no longer has is "gone".
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "agent/tracker.h"
#include "collectors/docker_api.h"
#include "common/clock.h"

namespace zastava {

class Metrics;

struct InspectorOptions {
  int workers = 4;
  // Requests waiting for a worker beyond this are answered kFailed at once ("too many").
  std::size_t maxWaiting = 4096;
};

class Inspector {
 public:
  using AnswerHandler = std::function<void(InspectAnswer)>;
  // Retries wait on `clock`, and inspects are timed on it.
  Inspector(DockerApi& api, Metrics& metrics, const Clock& clock, InspectorOptions options,
            AnswerHandler onAnswer);
  ~Inspector();
  Inspector(const Inspector&) = delete;
  Inspector& operator=(const Inspector&) = delete;

  // Starts the workers. Main thread, once.
  void start();
  // Stops and joins the workers; an inspect in flight ends within its request timeout, and
  // requests still waiting are dropped (their records already exist; the next start's
  // reconciliation inspects every container). Idempotent. Main thread.
  void stop();

  // Queues an inspect. Never waits. Any thread (the enricher's).
  void request(InspectRequest request);

 private:
  void runWorker();
  InspectAnswer inspect(const InspectRequest& request);
  // Waits `delay` or until stop(); false when stopping.
  bool sleepFor(std::chrono::milliseconds delay);

  DockerApi& api_;
  Metrics& metrics_;
  const Clock& clock_;
  const InspectorOptions options_;
  const AnswerHandler onAnswer_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<InspectRequest> waiting_;  // guarded by mu_
  bool stopping_ = false;               // guarded by mu_
  std::atomic<bool> stopFlag_{false};
  std::vector<std::thread> workers_;
};

}  // namespace zastava
