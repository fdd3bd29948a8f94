#include "agent/pipeline.h"

#include <algorithm>
#include <random>

namespace zastava {

std::chrono::milliseconds backoffDelay(int attempt, std::chrono::milliseconds initial,
                                       std::chrono::milliseconds max) {
  thread_local std::mt19937 random{std::random_device{}()};
  auto base = initial * (1LL << std::min(attempt, 16));
  base = std::min<std::chrono::milliseconds>(base, max);
  std::uniform_int_distribution<std::int64_t> jitter(base.count() / 2, base.count());
  return std::chrono::milliseconds(jitter(random));
}

Pipeline::Pipeline(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence,
                   HealthState& health, Metrics& metrics, const Clock& clock,
                   const Redactor& redactor, PipelineOptions options)
    : options_(std::move(options)),
      queue_(options_.eventQueue),
      inspector_(api, metrics, options_.inspector,
                 [this](InspectAnswer answer) { queue_.pushAnswer(std::move(answer)); }),
      stream_(api, queue_, health, metrics, clock, options_),
      enricher_(api, recorder, evidence, inspector_, queue_, health, metrics, clock, redactor,
                options_) {}

Pipeline::~Pipeline() { stop(); }

void Pipeline::start() {
  const EventCursor cursor = enricher_.start();
  inspector_.start();
  stream_.start(cursor);
}

void Pipeline::stop() {
  queue_.stop();
  stream_.stop();
  inspector_.stop();
  enricher_.stop();
}

}  // namespace zastava
