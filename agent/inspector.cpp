#include "agent/inspector.h"

#include <spdlog/spdlog.h>

#include <array>

#include "common/thread_name.h"
#include "health/metrics.h"

namespace zastava {

namespace {

// A failed inspect is asked again after each of these (the engine may answer an error while it
// is busy with the container).
constexpr std::array<std::chrono::milliseconds, 2> kRetryDelays{std::chrono::milliseconds(100),
                                                                std::chrono::milliseconds(400)};

// The engine or a proxy answered an error, or the connection broke (a TLS one too: the
// handshake worked for the stream): worth asking again. Not a refusal (asking again is refused
// again), a timeout (the engine already had 30 s), a stop.
bool worthRetrying(ErrorCode code) {
  return code == ErrorCode::kProtocol || code == ErrorCode::kMalformed ||
         code == ErrorCode::kUnavailable || code == ErrorCode::kTls;
}

// "failed", "failed 3 times".
std::string failedTimes(std::size_t attempts) {
  return attempts == 1 ? "failed" : "failed " + std::to_string(attempts) + " times";
}

}  // namespace

Inspector::Inspector(DockerApi& api, Metrics& metrics, const Clock& clock, InspectorOptions options,
                     AnswerHandler onAnswer)
    : api_(api),
      metrics_(metrics),
      clock_(clock),
      options_(options),
      onAnswer_(std::move(onAnswer)) {}

Inspector::~Inspector() { stop(); }

void Inspector::start() {
  for (int i = 0; i < options_.workers; ++i) {
    workers_.emplace_back([this] {
      nameThisThread("zastava-inspect");
      runWorker();
    });
  }
}

void Inspector::stop() {
  {
    std::lock_guard lock(mu_);
    stopping_ = true;
    stopFlag_ = true;
  }
  wake_.notify_all();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
  workers_.clear();
}

void Inspector::request(InspectRequest request) {
  {
    std::lock_guard lock(mu_);
    if (stopping_) return;
    if (waiting_.size() < options_.maxWaiting) {
      waiting_.push_back(std::move(request));
      wake_.notify_one();
      return;
    }
  }
  InspectAnswer answer;
  answer.request = std::move(request);
  answer.result = InspectResult::kFailed;
  answer.problem = "the inspect was not sent: " + std::to_string(options_.maxWaiting) +
                   " inspects were already waiting for the engine";
  metrics_.countInspect(inspectResultName(answer.result), 0.0);
  onAnswer_(std::move(answer));
}

void Inspector::runWorker() {
  while (true) {
    InspectRequest request;
    {
      std::unique_lock lock(mu_);
      wake_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      request = std::move(waiting_.front());
      waiting_.pop_front();
    }
    InspectAnswer answer = inspect(request);
    if (!stopFlag_) onAnswer_(std::move(answer));
  }
}

InspectAnswer Inspector::inspect(const InspectRequest& request) {
  InspectAnswer answer;
  answer.request = request;
  const MonoTime started = clock_.monotonic();
  for (std::size_t attempt = 0;; ++attempt) {
    answer.attempts = attempt + 1;
    auto result = api_.inspectContainer(request.containerId);
    if (result.ok() && result->has_value()) {
      answer.result = InspectResult::kComplete;
      answer.inspect = std::move(result).value();
      break;
    }
    if (result.ok()) {
      answer.result = InspectResult::kGone;
      answer.problem = "the container was gone before it could be inspected";
      break;
    }
    const Error& error = result.error();
    metrics_.countEngineError(errorCodeName(error.code));
    const bool last = attempt == kRetryDelays.size() || !worthRetrying(error.code);
    if (last || !sleepFor(kRetryDelays[attempt])) {
      answer.result = InspectResult::kFailed;
      answer.problem = "the inspect " + failedTimes(answer.attempts) + ": " + error.message;
      break;
    }
  }
  metrics_.countInspect(inspectResultName(answer.result), clock_.secondsSince(started));
  return answer;
}

bool Inspector::sleepFor(std::chrono::milliseconds delay) {
  std::unique_lock lock(mu_);
  return !clock_.waitFor(lock, wake_, delay, [this] { return stopping_; });
}

}  // namespace zastava
