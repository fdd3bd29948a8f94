// Reconciliation: after every (re)connect, compare what the engine says now (list + inspect)
// with the ledger (the Tracker, restored from the containers table) and write, as
// source "reconcile" records, the transitions that must have happened while the agent could not
// see them. A transition the open stream will deliver itself (it happened after the stream
// opened, or its event is already queued) is left to the stream, so nothing is written twice.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/tracker.h"
#include "buffer/record.h"
#include "collectors/engine_types.h"

namespace zastava {

struct ReconcileContext {
  UnixNanos streamOpenedAt = 0;  // transitions from then on come through the stream
  // And so may those a little before: the engine dates a container's Created, StartedAt and
  // FinishedAt before it stamps and sends the event (and a proxy may hold the event a while),
  // so the event of a transition dated just before the stream opened can arrive after the
  // reconciliation looked: it is left to the stream (or its replay).
  std::chrono::nanoseconds inFlight{std::chrono::seconds(1)};
  // Transitions dated from here on are left to the stream.
  UnixNanos leftToStreamFrom() const { return streamOpenedAt - inFlight.count(); }
  UnixNanos now = 0;              // the time given to transitions the engine does not date
  bool firstObservation = false;  // a new ledger: write snapshots only, no transitions
  // True when the stream has already queued `action` for container `id`.
  std::function<bool(std::string_view id, std::string_view action)> queued;
};

// The records to write, in the order the transitions happened per container; `tracker` is
// updated to the engine's view. `engine` is every container the engine listed, inspected.
// Enricher thread (it owns the tracker).
std::vector<Record> reconcile(Tracker& tracker, const std::vector<ContainerInspect>& engine,
                              const ReconcileContext& context);

// True when a container's Created, StartedAt or FinishedAt falls in the `inFlight` margin
// before the stream opened: reconcile() left that transition to the stream, and if its event
// never comes (an engine that restarted has lost it) only a second look, with no margin, writes
// it. False for a first observation. Enricher thread.
bool anyTransitionInFlight(const std::vector<ContainerInspect>& engine,
                           const ReconcileContext& context);

// The periodic audit's cheap check: the ids of the containers whose state in the engine's list
// differs from the ledger's (listed but unknown, known but not listed, or in another state).
// A container between two states (restarting, removing) is not compared; dead counts as
// exited. Sorted. Enricher thread.
std::vector<std::string> auditDisagreements(const Tracker& tracker,
                                            const std::vector<ContainerSummary>& engine);

}  // namespace zastava
