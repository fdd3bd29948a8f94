#include "agent/pipeline.h"

namespace zastava {

Pipeline::Pipeline(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence,
                   PostureCensus& census, HealthState& health, Metrics& metrics, const Clock& clock,
                   const Redactor& redactor, const PipelineOptions& options)
    : options_(options),
      queue_(options_.eventQueue, clock),
      inspector_(api, metrics, clock, options_.inspector,
                 [this](InspectAnswer answer) { queue_.pushAnswer(std::move(answer)); }),
      stream_(api, queue_, health, metrics, clock, options_),
      enricher_(api, recorder, evidence, census, inspector_, queue_, health, metrics, clock,
                redactor, options_) {}

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
