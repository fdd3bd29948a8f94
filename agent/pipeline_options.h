// What the Pipeline's parts (EventStream, Enricher, EventQueue, Inspector) are tuned with; main
// fills it from the configuration.
#pragma once

#include <chrono>

#include "agent/event_queue.h"
#include "agent/inspector.h"
#include "common/backoff.h"
#include "posture/policy.h"

namespace zastava {

// The defaults of Inventory:Concurrency, Reconnect:MaxBackoffSeconds,
// EventStream:SilenceCheckSeconds and Reconcile:AuditIntervalSeconds (Config starts from these).
inline constexpr int kDefaultInventoryConcurrency = 8;
inline constexpr std::chrono::seconds kDefaultReconnectMaxBackoff{30};
inline constexpr std::chrono::seconds kDefaultSilenceCheck{60};
inline constexpr std::chrono::seconds kDefaultAuditInterval{300};

struct PipelineOptions {
  int inventoryConcurrency = kDefaultInventoryConcurrency;
  std::chrono::milliseconds initialBackoff{500};
  std::chrono::milliseconds maxBackoff = kDefaultReconnectMaxBackoff;
  std::chrono::seconds silenceCheck = kDefaultSilenceCheck;
  // How long the engine's replay of buffered events may take to arrive after the stream opens
  // (it writes them right after the headers). The wait ends sooner when a live event arrives
  // behind the replay (EventQueue::waitForReplayEnd).
  std::chrono::milliseconds replayWindow{1'000};
  // How far before the last event seen the stream resumes. The engine stamps an event before it
  // publishes it, so it can deliver one a little after a later-stamped one; and its replay stops
  // at the first event older than `since`. Events replayed again are recognised and skipped.
  std::chrono::milliseconds resumeOverlap{1'000};
  EventQueue::Limits eventQueue;
  InspectorOptions inspector;
  // How often the ledger is checked against the engine's container list (one GET
  // /containers/json); 0 turns the audit off.
  std::chrono::seconds auditInterval = kDefaultAuditInterval;
  // What events on their way may still explain is looked at again this much later: an audit's
  // disagreement (only what disagrees both times is reconciled), and transitions a
  // reconciliation left to the stream because they were dated just before it opened.
  std::chrono::milliseconds lookAgainDelay{2'000};
  // Posture:SkipChecks and Posture:SeverityOverrides (docs/posture.md).
  PosturePolicy posture;
};

// The back-off of the stream's reconnects and of the inventory's retries: from initialBackoff,
// doubling up to maxBackoff, each wait drawn between half and all of its step so that many
// agents restarted together spread out.
inline Backoff engineBackoff(const PipelineOptions& options) {
  return Backoff(options.initialBackoff, options.maxBackoff, Backoff::Jitter::kHalfToFull);
}

}  // namespace zastava
