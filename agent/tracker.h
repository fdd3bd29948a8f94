// The Tracker turns what the engine says (events, inspects) into evidence records and remembers
// each container's last known facts, so an event the agent does not inspect (pause, kill,
// destroy, ...) still names the container's image and image ID. Pure logic: no I/O.
// Not thread-safe: the enricher thread owns it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "agent/recent_ids.h"
#include "agent/redaction.h"
#include "buffer/record.h"
#include "collectors/engine_types.h"
#include "common/clock.h"
#include "posture/policy.h"

namespace zastava {

// An engine event as the stream received it.
struct ReceivedEvent {
  EngineEvent event;
  std::string eventId;  // eventIdForEngineEvent: the same for the event replayed again
  RecordSource source = RecordSource::kStream;
  UnixNanos receivedAt = 0;  // when it arrived from the engine: its record's observedAt
};
ReceivedEvent receivedEvent(EngineEvent event, RecordSource source, UnixNanos receivedAt);

// An inspect the enricher wants: of container `containerId`, to complete the record of the
// engine event `eventId` (its create or start).
struct InspectRequest {
  std::string containerId;
  std::string eventId;
  std::string action;  // the event's action ("create", "start")
  RecordSource source = RecordSource::kStream;
};

// complete: the engine answered with the container. gone: it no longer had it (404, or Podman's
// 500 "no such container"). failed: no answer even after retries (`problem` says why).
// kNotAsked: a start followed by another before its inspect could be asked; never sent to the
// engine, so never counted in inspects_total.
enum class InspectResult { kComplete, kGone, kFailed, kNotAsked };
inline constexpr std::string_view kStartedAgainBeforeInspect =
    "not inspected: the container started again before this start could be inspected; the "
    "next start's container.inspect record has its facts";
std::string_view inspectResultName(InspectResult result);

struct InspectAnswer {
  InspectRequest request;
  InspectResult result = InspectResult::kComplete;
  std::optional<ContainerInspect> inspect;  // kComplete only
  std::string problem;  // kGone, kFailed and kNotAsked: the record's inspectError
  std::size_t attempts = 0;
};

class Tracker {
 public:
  Tracker(const Clock& clock, const Redactor& redactor, PosturePolicy posture = {})
      : clock_(clock), redactor_(redactor), posture_(std::move(posture)) {}
  Tracker(const Tracker&) = delete;
  Tracker& operator=(const Tracker&) = delete;

  // Everything an inspect says about a container, as record facts, secrets redacted, with the
  // findings of the posture checks an inspect decides.
  ContainerFacts factsOf(const ContainerInspect& inspect) const;
  // The findings of the posture checks an inspect decides (those in factsOf).
  std::shared_ptr<const PostureFindings> postureOf(const ContainerInspect& inspect) const;

  // The container.snapshot record for one inventory observation, observed now.
  Record snapshot(const ContainerInspect& inspect);

  // The record for one engine event, from the event and what is known of the container (name,
  // image, image ID, labels, state), never waiting for an inspect. Its kind and action are the
  // event's action, already in Docker's vocabulary (decodeEvent: a Podman `remove` is a destroy
  // and forgets the container); when the decoder mapped it, the record's engineAction keeps the
  // Action as the engine sent it.
  Record fromEvent(const ReceivedEvent& received);

  // The container.inspect record of an answer, completing the record of the event it was asked
  // for: the inspect's facts (image ID and digest, pid, posture, environment, restart count),
  // with the state its events gave the container (the answer may be older than its last
  // event); or, when the container was gone or the inspect failed, why not.
  Record inspected(const InspectAnswer& answer);

  // Takes the ledger's last word on each container (the containers table) as the starting
  // state; destroyed ones ("removed") are left out.
  void restore(const std::vector<ContainerFacts>& ledger);

  // What is known of a container not destroyed; nullptr when unknown.
  const ContainerFacts* find(std::string_view id) const;
  // The ids of every container known and not destroyed.
  std::vector<std::string> knownIds() const;

  // True for the engine's destroy of a container whose destroy a reconciliation has written: it
  // found the container gone while the event was on its way, or before the stream carrying it
  // died and the next one replayed it. A container is destroyed once: the event is a duplicate.
  bool destroyAlreadyRecorded(const EngineEvent& event) const;

  // A transition found by reconciliation: `facts` is the container after `action`, which
  // happened at `time` (the engine's time for it, or now when the engine does not say).
  // The tracker remembers `facts` (and forgets the container on "destroy").
  Record reconciled(const ContainerFacts& facts, std::string_view action, UnixNanos time,
                    std::string_view discriminator);

  // An agent.gap record: engine events between `from` and `to` may be missing.
  Record gap(UnixNanos from, UnixNanos to, std::string reason);

  // Containers known and not destroyed.
  std::size_t trackedCount() const { return containers_.size(); }

 private:
  ContainerFacts& remember(const std::string& id);

  const Clock& clock_;
  const Redactor& redactor_;
  const PosturePolicy posture_;
  std::map<std::string, ContainerFacts, std::less<>> containers_;
  // The containers reconciliation destroyed last. A late event of one (it happened before the
  // reconciliation's list) is recorded, but does not bring the container back.
  RecentIds reconciledDestroys_{1024};
};

// True for the states of a container that is up: running, paused, restarting.
bool isUp(const std::optional<std::string>& state);

// The container state an action leaves behind, or std::nullopt when it does not change it
// (kill, exec_*, health_status, Podman's init and cleanup, any action not known, ...).
std::optional<std::string> stateAfter(std::string_view action);

}  // namespace zastava
