// The Pipeline moves engine facts into the Recorder. It owns and wires four parts, each with its
// own thread(s) and header:
//   EventStream (event_stream.h, zastava-stream): reads /events, decodes, queues; reconnects.
//   EventQueue  (event_queue.h): between them, bounded, never making the stream wait.
//   Enricher    (enricher.h, zastava-enrich): makes records from the queue in order; checks
//               replays, reconciles, audits; asks the Inspector and the EvidenceCollector.
//   Inspector   (inspector.h, zastava-inspect): inspects on its own threads; its answers come
//               back through the queue as container.inspect records.
// The stream is opened before the containers are listed, so nothing falls between them.
#pragma once

#include "agent/enricher.h"
#include "agent/event_queue.h"
#include "agent/event_stream.h"
#include "agent/inspector.h"
#include "agent/pipeline_options.h"

namespace zastava {

class Pipeline {
 public:
  Pipeline(DockerApi& api, Recorder& recorder, EvidenceCollector& evidence, PostureCensus& census,
           HealthState& health, Metrics& metrics, const Clock& clock, const Redactor& redactor,
           const PipelineOptions& options);
  ~Pipeline();
  Pipeline(const Pipeline&) = delete;
  Pipeline& operator=(const Pipeline&) = delete;

  // Restores the ledger and starts every thread. Main thread, once.
  void start();
  // Stops every thread and joins them: the stream is closed within about a second (libcurl's
  // progress callback period); events already queued are recorded without new inspects.
  // Idempotent. Main thread.
  void stop();

 private:
  const PipelineOptions options_;
  EventQueue queue_;
  Inspector inspector_;  // answers go into queue_
  EventStream stream_;
  Enricher enricher_;
};

}  // namespace zastava
