#include "agent/tracker.h"

#include <charconv>
#include <map>
#include <memory>
#include <string_view>

#include "common/invariant.h"
#include "common/rfc3339.h"
#include "posture/evaluate.h"

namespace zastava {

namespace {

constexpr std::string_view kNeverStarted = "0001-01-01T00:00:00Z";

std::optional<std::string> engineTime(const std::string& rfc3339) {
  if (rfc3339.empty() || rfc3339 == kNeverStarted) return std::nullopt;
  return rfc3339;
}

std::optional<std::int64_t> parseInt(const std::map<std::string, std::string>& attributes,
                                     std::string_view key) {
  auto it = attributes.find(std::string(key));
  if (it == attributes.end()) return std::nullopt;
  std::int64_t value = 0;
  const char* end = it->second.data() + it->second.size();
  auto [ptr, ec] = std::from_chars(it->second.data(), end, value);
  if (ec != std::errc() || ptr != end) return std::nullopt;
  return value;
}

std::shared_ptr<const PostureFindings> findingsOf(const ContainerInspect& inspect,
                                                  const PosturePolicy& posture) {
  return std::make_shared<const PostureFindings>(
      evaluateInspectChecks(inspect.posture, postureWaiverOf(inspect.labels), posture));
}

// Copies what only an inspect knows into `facts`, secrets redacted, and its posture findings.
void applyInspect(const ContainerInspect& inspect, const Redactor& redactor,
                  const PosturePolicy& posture, ContainerFacts& facts) {
  facts.id = inspect.id;
  facts.name = inspect.name;
  facts.image = inspect.image;
  facts.imageId = inspect.imageId;
  facts.labels = redactor.labels(inspect.labels);
  facts.env = redactor.environment(inspect.env);
  facts.security = std::make_shared<const SecurityPosture>(inspect.posture);
  facts.posture = findingsOf(inspect, posture);
  facts.imageDigest =
      inspect.manifestDigest.empty() ? std::nullopt : std::optional(inspect.manifestDigest);
  facts.restartCount = inspect.restartCount;
  facts.oomKilled = inspect.state.oomKilled;
  facts.startedAt = engineTime(inspect.state.startedAt);
  facts.finishedAt = engineTime(inspect.state.finishedAt);
  facts.pid = inspect.state.running ? std::optional(inspect.state.pid) : std::nullopt;
}

// The attributes an engine adds to a container event's Actor.Attributes besides the container's
// labels: Docker's (moby daemon/events.go: image and name on every event, exitCode on die and
// exec_die, signal on kill, execID on exec_*, oldName on rename) and Podman's (libpod events:
// containerExitCode, podId).
bool isEngineAttribute(std::string_view key) {
  for (std::string_view own :
       {"image", "name", "exitCode", "signal", "execID", "oldName", "containerExitCode", "podId"}) {
    if (key == own) return true;
  }
  return false;
}

// A create event carries the container's labels among its attributes: until an inspect says
// them, they are the labels the tracker knows.
std::map<std::string, std::string> labelsOfCreate(const std::map<std::string, std::string>& attrs) {
  std::map<std::string, std::string> labels;
  for (const auto& [key, value] : attrs) {
    if (!isEngineAttribute(key)) labels.emplace(key, value);
  }
  return labels;
}

// The attributes a record keeps: what its container block does not say already. The name and
// image are there; a die's exitCode is the container's; and a label the container is known to
// have, with the same value, is said once per container (docs/records.md), not on every event.
std::map<std::string, std::string> attributesBeyond(std::map<std::string, std::string> attrs,
                                                    const ContainerFacts& facts,
                                                    std::string_view action) {
  attrs.erase("image");
  attrs.erase("name");
  if (action == "die" && facts.exitCode) attrs.erase("exitCode");
  std::erase_if(attrs, [&](const auto& attribute) {
    auto label = facts.labels.find(attribute.first);
    return label != facts.labels.end() && label->second == attribute.second;
  });
  return attrs;
}

// The tracker keeps what later records without an inspect repeat (name, image, labels, state);
// the environment and posture go only into the records made from an inspect.
void dropInspectOnly(ContainerFacts& facts) {
  facts.env.clear();
  facts.security.reset();
  facts.posture.reset();
  facts.imageDigest.reset();
}

}  // namespace

ReceivedEvent receivedEvent(EngineEvent event, RecordSource source, UnixNanos receivedAt) {
  std::string eventId =
      eventIdForEngineEvent(event.type, event.rawAction, event.actorId, event.timeNano);
  return ReceivedEvent{std::move(event), std::move(eventId), source, receivedAt};
}

std::string_view inspectResultName(InspectResult result) {
  switch (result) {
    case InspectResult::kComplete:
      return "complete";
    case InspectResult::kGone:
      return "gone";
    case InspectResult::kFailed:
      return "failed";
    case InspectResult::kNotAsked:
      return "not_asked";
  }
  ZASTAVA_BUG("InspectResult out of range: " + std::to_string(static_cast<int>(result)));
}

bool isUp(const std::optional<std::string>& state) {
  return state == "running" || state == "paused" || state == "restarting";
}

std::optional<std::string> stateAfter(std::string_view action) {
  if (action == "create") return "created";
  if (action == "start" || action == "unpause" || action == "restart") return "running";
  if (action == "pause") return "paused";
  if (action == "die") return "exited";
  if (action == "destroy") return "removed";
  return std::nullopt;
}

ContainerFacts& Tracker::remember(const std::string& id) {
  auto& facts = containers_[id];
  facts.id = id;
  return facts;
}

void Tracker::restore(const std::vector<ContainerFacts>& ledger) {
  for (const ContainerFacts& facts : ledger) {
    if (facts.state != "removed") dropInspectOnly(containers_[facts.id] = facts);
  }
}

const ContainerFacts* Tracker::find(std::string_view id) const {
  auto it = containers_.find(id);
  return it == containers_.end() ? nullptr : &it->second;
}

std::vector<std::string> Tracker::knownIds() const {
  std::vector<std::string> ids;
  ids.reserve(containers_.size());
  for (const auto& [id, facts] : containers_) ids.push_back(id);
  return ids;
}

bool Tracker::destroyAlreadyRecorded(const EngineEvent& event) const {
  return event.action == "destroy" && reconciledDestroys_.contains(event.actorId);
}

Record Tracker::reconciled(const ContainerFacts& facts, std::string_view action, UnixNanos time,
                           std::string_view discriminator) {
  Record record;
  record.eventId = eventIdForReconcile(facts.id, action, discriminator);
  record.kind = "container." + std::string(action);
  record.source = RecordSource::kReconcile;
  record.time = time;
  record.observedAt = clock_.now();
  record.action = action;
  record.container = facts;
  if (action == "destroy") {
    containers_.erase(facts.id);
    reconciledDestroys_.remember(facts.id);
  } else {
    dropInspectOnly(containers_[facts.id] = facts);
  }
  return record;
}

Record Tracker::gap(UnixNanos from, UnixNanos to, std::string reason) {
  return gapRecord(GapFacts{from, to, std::move(reason), std::nullopt}, to, clock_.now());
}

std::shared_ptr<const PostureFindings> Tracker::postureOf(const ContainerInspect& inspect) const {
  return findingsOf(inspect, posture_);
}

ContainerFacts Tracker::factsOf(const ContainerInspect& inspect) const {
  ContainerFacts facts;
  applyInspect(inspect, redactor_, posture_, facts);
  facts.state = inspect.state.status;
  facts.exitCode = inspect.state.running ? std::nullopt : std::optional(inspect.state.exitCode);
  return facts;
}

Record Tracker::snapshot(const ContainerInspect& inspect) {
  Record record;
  record.observedAt = clock_.now();
  record.time = record.observedAt;
  record.eventId = eventIdForSnapshot(inspect.id, record.observedAt);
  record.kind = "container.snapshot";
  record.source = RecordSource::kSnapshot;
  record.container = factsOf(inspect);
  dropInspectOnly(remember(inspect.id) = record.container);
  return record;
}

Record Tracker::fromEvent(const ReceivedEvent& received) {
  const EngineEvent& event = received.event;
  // A late event of a container reconciliation destroyed is recorded, not remembered.
  std::optional<ContainerFacts> late;
  if (reconciledDestroys_.contains(event.actorId)) late.emplace().id = event.actorId;
  ContainerFacts& facts = late ? *late : remember(event.actorId);
  if (auto name = event.attributes.find("name"); name != event.attributes.end()) {
    facts.name = name->second;
  }
  if (auto image = event.attributes.find("image"); image != event.attributes.end()) {
    facts.image = image->second;
  }
  if (auto state = stateAfter(event.action)) facts.state = *state;
  if (event.action == "start") {
    facts.exitCode.reset();
    // Until the inspect says the engine's own StartedAt (a little earlier), the start event's
    // time: a reconciliation before the answer must know this start already happened.
    facts.startedAt = formatRfc3339Nanos(event.timeNano);
    facts.finishedAt.reset();
  }
  if (event.action == "die") {
    facts.exitCode = parseInt(event.attributes, "exitCode");
    facts.pid.reset();
    facts.finishedAt.reset();  // the record's time says when; the engine's own time needs inspect
  }
  if (event.action == "oom") facts.oomKilled = true;
  const auto attributes = redactor_.labels(event.attributes);
  if (event.action == "create" && facts.labels.empty()) facts.labels = labelsOfCreate(attributes);

  Record record;
  record.eventId = received.eventId;
  record.kind = "container." + event.action;
  record.source = received.source;
  record.time = event.timeNano;
  record.timeNano = event.timeNano;
  record.observedAt = received.receivedAt;
  record.action = event.action;
  record.actionDetail = event.actionDetail;
  if (event.mapped) record.engineAction = event.rawAction;
  record.container = facts;
  // The labels are written where they are first known (the create) and with every inspect.
  if (event.action != "create") record.container.labels.clear();
  record.attributes = attributesBeyond(attributes, facts, event.action);
  if (event.action == "destroy") {
    containers_.erase(event.actorId);
  } else {
    dropInspectOnly(facts);
  }
  return record;
}

Record Tracker::inspected(const InspectAnswer& answer) {
  const std::string& id = answer.request.containerId;
  Record record;
  record.kind = kInspectKind;
  record.source = answer.request.source;
  record.observedAt = clock_.now();
  record.time = record.observedAt;
  record.eventId = eventIdForInspect(id, answer.request.eventId);
  record.completes = answer.request.eventId;
  record.inspectError = answer.problem;
  // A container destroyed meanwhile is described, not remembered again.
  auto known = containers_.find(id);
  ContainerFacts facts;
  if (known != containers_.end()) {
    facts = known->second;
  } else {
    facts.id = id;
    facts.state = "removed";
  }
  if (answer.inspect) {
    const std::optional<std::string> state = facts.state;
    const std::optional<std::int64_t> exitCode = facts.exitCode;
    const std::string name = facts.name;  // a rename event is newer than the answer
    applyInspect(*answer.inspect, redactor_, posture_, facts);
    if (!name.empty()) facts.name = name;
    facts.state = state ? state : std::optional(answer.inspect->state.status);
    facts.exitCode = state ? exitCode : factsOf(*answer.inspect).exitCode;
    if (facts.state != "running" && facts.state != "paused") facts.pid.reset();
  }
  record.container = facts;
  // Without an answer it says nothing new of the container: its labels were said already.
  if (!answer.inspect) record.container.labels.clear();
  if (known != containers_.end()) dropInspectOnly(known->second = std::move(facts));
  return record;
}

}  // namespace zastava
