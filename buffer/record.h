// The evidence record: what the agent observed about one container at one moment. Its JSON form
// (one line of NDJSON, also stored in SQLite) is the product's main contract; see
// docs/record-schema.json. Keys are written in a fixed order.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/clock.h"
#include "common/evidence_types.h"
#include "common/posture_findings.h"
#include "common/security_posture.h"

namespace zastava {

inline constexpr std::string_view kSchemaName = "zastava.runtime-event";
// 2: container.evidence, 3: gap.undeliveredRecords, 4: an evidence record's source is what asked
// for the scan (was always snapshot), and the optional engineAction, 5: the optional inspectError,
// 6: event records are written from the event alone; what an inspect says follows in its own
// container.inspect record, which `completes` the event's record, 7: each fact once per record
// (no hash, timeNano or action keys; attributes hold only what the container block does not say),
// 8: container.posture (the posture checks' findings) replaces container.security.risks,
// 9: agent.seal and agent.seal-key records, source "agent"
inline constexpr int kSchemaVersion = 9;
inline constexpr std::string_view kEvidenceKind = "container.evidence";
inline constexpr std::string_view kInspectKind = "container.inspect";
inline constexpr std::string_view kSealKind = "agent.seal";
inline constexpr std::string_view kSealKeyKind = "agent.seal-key";

// kAgent: the agent's own records about its ledger (agent.seal, agent.seal-key).
enum class RecordSource { kStream, kReplay, kReconcile, kSnapshot, kAgent };
std::string_view recordSourceName(RecordSource source);

// What is known about the container. Optional fields are left out of the JSON when unknown.
struct ContainerFacts {
  std::string id;
  std::string name;     // without the leading "/"
  std::string image;    // reference as started (Config.Image, or the event's "image" attribute)
  std::string imageId;  // "sha256:..."; empty when not known
  std::optional<std::string> state;  // created|running|paused|restarting|exited|dead|removed
  std::optional<std::int64_t> exitCode;
  std::optional<std::int64_t> pid;
  std::optional<std::int64_t> restartCount;
  std::optional<bool> oomKilled;
  std::optional<std::string> startedAt;  // RFC 3339 as the engine sent it
  std::optional<std::string> finishedAt;
  // On records made from an inspect, and on create records (from the event's attributes): a
  // container's labels never change, so other event records leave them out.
  std::map<std::string, std::string> labels;
  // From inspect only (snapshot, start and reconcile records):
  std::map<std::string, std::string> env;  // name -> value, values redacted by policy
  // Shared, not copied: a posture read from an inspect never changes, and records copy facts.
  std::shared_ptr<const SecurityPosture> security;
  // The image manifest digest; std::nullopt (JSON null) when the engine does not report one
  // (API < 1.48) — written explicitly whenever `security` is, so its absence is visible.
  std::optional<std::string> imageDigest;
  // What the posture checks found (docs/posture.md): those an inspect decides on the records
  // that carry `security`, those the processes decide on container.evidence records.
  std::shared_ptr<const PostureFindings> posture;
};

// A span of time in which engine events may have been lost (agent.gap records), or, with
// undeliveredRecords, in which records expired before the backend accepted them.
struct GapFacts {
  UnixNanos from = 0;  // the last engine event known to be recorded / the oldest expired record
  UnixNanos to = 0;    // the first engine event seen again, or when the stream reopened / the
                       // newest expired record
  std::string reason;
  std::optional<std::int64_t> undeliveredRecords;  // backend delivery gaps only
};

// What started a container.evidence scan: the container's start event, a reconciliation that
// found it running without evidence of its current process, or the re-scan after start that
// catches libraries loaded later (dlopen).
enum class EvidenceScan { kStart, kReconcile, kRescan };
std::string_view evidenceScanName(EvidenceScan scan);

// complete: everything was read. partial: the tree was read but something in it was not (a
// field, a library, a cap was hit; `reason` says what). exited: the container's init process
// was gone before it could be read. unavailable: /proc could not be read for it at all (another
// PID namespace, no permission; `reason` says why).
enum class EvidenceStatus { kComplete, kPartial, kExited, kUnavailable };
std::string_view evidenceStatusName(EvidenceStatus status);

// container.evidence records: what /proc showed of a running container.
struct EvidenceFacts {
  EvidenceScan scan = EvidenceScan::kStart;
  std::string procRoot;      // the procfs root read
  std::int64_t initPid = 0;  // the engine's State.Pid; 0 when the container was not running
  EvidenceStatus status = EvidenceStatus::kComplete;
  std::string reason;  // empty when complete
  std::optional<ProcessTree> processTree;
  std::optional<LibraryEvidence> loadedLibraries;
};

// agent.seal: the MAC of the chain head under the epoch key (docs/records.md, "Seals").
struct SealFacts {
  std::string keyId;
  std::int64_t epoch = 0;
  std::int64_t records = 0;  // committed since the previous seal (or agent.seal-key) of the key
  std::string lastHash;      // the seal's prevHash
  std::string mac;
};

// agent.seal-key: a sealing key began, or the key file was not what the ledger expects.
enum class SealKeyChange { kNew, kLost, kRewound, kAhead };
std::string_view sealKeyChangeName(SealKeyChange change);

struct SealKeyFacts {
  std::string keyId;
  std::int64_t epoch = 0;  // the epoch of the next seal
  SealKeyChange change = SealKeyChange::kNew;
  std::string reason;
};

struct Record {
  std::string eventId;  // deterministic; see eventIdForEngineEvent / eventIdForSnapshot
  std::string kind;     // "container.<action>", "container.snapshot"
  RecordSource source = RecordSource::kStream;
  UnixNanos time = 0;         // when it happened: the engine's timeNano, or the observation time
  std::int64_t timeNano = 0;  // the engine's timeNano (then equal to `time`, and not in the JSON);
                              // 0 when the record has no engine event
  UnixNanos observedAt = 0;   // when the agent saw it; not in the JSON when equal to `time`
  std::string action;  // the engine's verb ("die", "health_status"), empty for snapshots; not in
                       // the JSON, whose kind is "container." + action
  std::string actionDetail;  // after ": " in the engine's action ("healthy"), may be empty
  // The engine's Action exactly as sent, only when `action`/`actionDetail` do not spell it (the
  // decoder mapped a Podman name to Docker's); empty otherwise, and then not written.
  std::string engineAction;
  // container.inspect only: the eventId of the engine event's record it completes.
  std::string completes;
  // container.inspect only: why it has none of an inspect's facts (the container was gone, or
  // the engine did not answer). Empty otherwise, and then not written.
  std::string inspectError;
  ContainerFacts container;  // left out of the JSON when container.id is empty (agent.* records)
  // The engine's Actor.Attributes that the container block does not say (see Tracker::fromEvent).
  std::map<std::string, std::string> attributes;
  std::optional<GapFacts> gap;            // agent.gap only
  std::optional<EvidenceFacts> evidence;  // container.evidence only
  std::optional<SealFacts> seal;          // agent.seal only
  std::optional<SealKeyFacts> sealKey;    // agent.seal-key only
  // Not part of the JSON. On snapshot and reconcile records: when the event stream they were
  // reconciled against opened. A ledger with no engine event yet resumes from there.
  UnixNanos streamOpenedAt = 0;
};

// Where the engine event stream stands: the newest engine event made durable. A stream resumed
// from a little before it replays that very event when the engine still has it, which proves
// that nothing was lost in between.
struct EventCursor {
  std::int64_t timeNano = 0;  // 0: no engine event recorded yet
  std::string eventId;
};

// A deterministic id for an engine event: the same event (type, action, actor, timeNano) always
// gets the same id, so a replayed event is recognised as a duplicate. 32 lowercase hex chars.
std::string eventIdForEngineEvent(std::string_view type, std::string_view rawAction,
                                  std::string_view actorId, std::int64_t timeNano);
// The id of an inventory observation: one per container per observation time.
std::string eventIdForSnapshot(std::string_view containerId, UnixNanos observedAt);
// The id of a transition found by reconciliation: the same container, action and
// `discriminator` (the transition's engine time, or what makes it unique) give the same id, so
// reconciling twice writes it once.
std::string eventIdForReconcile(std::string_view containerId, std::string_view action,
                                std::string_view discriminator);
// The id of a container.inspect record: one per engine event it completes.
std::string eventIdForInspect(std::string_view containerId, std::string_view completedEventId);
// The id of a gap record: one per span.
std::string eventIdForGap(UnixNanos from, UnixNanos to);
// The id of a container.evidence record: one per container, scan and observation time.
std::string eventIdForEvidence(std::string_view containerId, EvidenceScan scan,
                               UnixNanos observedAt);

// An agent.gap record (source reconcile) for `gap`, with its eventId, at `time`. Any thread.
Record gapRecord(GapFacts gap, UnixNanos time, UnixNanos observedAt);
// An agent.seal record at `time` (source agent) whose facts are `seal`, its mac not yet set:
// sealMessage() needs the record's time as written (sealTimeText). Any thread.
Record sealRecord(SealFacts seal, UnixNanos time);
// An agent.seal-key record at `time` (source agent). Any thread.
Record sealKeyRecord(SealKeyFacts sealKey, UnixNanos time);
// A record's `time` exactly as its line writes it (what a seal's MAC covers).
std::string recordTimeText(UnixNanos time);

// The NDJSON line of `record` chained after `prevHash`, and the record's hash: SHA-256
// (lowercase hex) of the line's bytes, the next record's prevHash. Compact JSON, keys in fixed
// order, ending with "prevHash", no trailing newline; in any string, a byte that does not begin
// a valid UTF-8 sequence becomes U+FFFD. Never empty (running out of memory throws
// std::bad_alloc, as anywhere). Any thread.
struct ChainedLine {
  std::string line;
  std::string hash;
};
ChainedLine chainedLine(const Record& record, std::string_view prevHash);
// The first prevHash of a new chain.
inline constexpr std::string_view kGenesisHash =
    "0000000000000000000000000000000000000000000000000000000000000000";

}  // namespace zastava
