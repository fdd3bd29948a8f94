#include "agent/reconciler.h"

#include <algorithm>
#include <optional>
#include <set>
#include <string>

#include "common/rfc3339.h"

namespace zastava {

namespace {

// Reconciles one container against its inspect; `ledger` is nullptr when the ledger never saw
// it.
class ContainerReconciler {
 public:
  ContainerReconciler(Tracker& tracker, const ContainerInspect& engine,
                      const ReconcileContext& context, std::vector<Record>& out)
      : tracker_(tracker), engine_(engine), context_(context), out_(out) {}

  void unknownContainer() {
    // Its create event is waiting in the queue: the stream tells its whole life. (The engine
    // stamps the event after the container's Created time, so Created alone may fall before the
    // stream opened although the event comes after.)
    if (context_.queued(engine_.id, "create")) return;
    ContainerFacts facts = tracker_.factsOf(engine_);
    facts.state = "created";
    facts.pid.reset();
    facts.exitCode.reset();
    facts.finishedAt.reset();
    if (auto created = parseRfc3339Nanos(engine_.created); beforeStream(created)) {
      emit(facts, "create", *created, engine_.created);
    }
    current_ = facts;
    reconcileRun(/*knownStart=*/std::nullopt, /*up=*/false);
  }

  void knownContainer(const ContainerFacts& ledger) {
    current_ = ledger;
    ContainerFacts fresh = tracker_.factsOf(engine_);  // identity and posture, secrets redacted
    current_->image = std::move(fresh.image);
    current_->imageId = std::move(fresh.imageId);
    current_->labels = std::move(fresh.labels);
    current_->env = std::move(fresh.env);
    current_->security = std::move(fresh.security);
    current_->posture = std::move(fresh.posture);
    current_->imageDigest = std::move(fresh.imageDigest);
    if (engine_.name != ledger.name && !context_.queued(engine_.id, "rename")) {
      current_->name = engine_.name;
      emitObservedNow(*current_, "rename");
    }
    std::optional<UnixNanos> knownStart;
    if (ledger.startedAt) knownStart = parseRfc3339Nanos(*ledger.startedAt);
    reconcileRun(knownStart, isUp(ledger.state));
  }

 private:
  bool beforeStream(std::optional<UnixNanos> t) const {
    return t.has_value() && *t < context_.leftToStreamFrom();
  }

  void emit(const ContainerFacts& facts, std::string_view action, UnixNanos time,
            std::string_view discriminator) {
    out_.push_back(tracker_.reconciled(facts, action, time, discriminator));
  }

  // A transition the engine keeps no time for: dated and told apart by when it was observed.
  void emitObservedNow(const ContainerFacts& facts, std::string_view action) {
    emit(facts, action, context_.now, std::to_string(context_.now));
  }

  // Starts, deaths and pauses between the ledger's last start (`knownStart`) and now.
  void reconcileRun(std::optional<UnixNanos> knownStart, bool up) {
    const ContainerState& state = engine_.state;
    const auto started = parseRfc3339Nanos(state.startedAt);
    const auto finished = parseRfc3339Nanos(state.finishedAt);
    ContainerFacts& facts = *current_;

    if (beforeStream(started) && (!knownStart || *started > *knownStart)) {
      if (up) {  // it stopped in between; the engine no longer says with which exit code
        facts.state = "exited";
        facts.exitCode.reset();
        facts.pid.reset();
        emit(facts, "die", *started, "before " + state.startedAt);
      }
      const bool restarted = engine_.restartCount > facts.restartCount.value_or(0);
      facts.state = "running";
      facts.startedAt = state.startedAt;
      facts.finishedAt.reset();
      facts.exitCode.reset();
      facts.restartCount = engine_.restartCount;
      facts.pid = state.running ? std::optional(state.pid) : std::nullopt;
      emit(facts, restarted ? "restart" : "start", *started, state.startedAt);
      up = true;
    }
    // No check that it finished after it started: for a container that exits at once the
    // engine reports a FinishedAt a little before its StartedAt (see the captured fixtures).
    if (!state.running && up && beforeStream(finished) && !context_.queued(engine_.id, "die")) {
      facts.state = "exited";
      facts.exitCode = state.exitCode;
      facts.oomKilled = state.oomKilled;
      facts.finishedAt = state.finishedAt;
      facts.pid.reset();
      emit(facts, "die", *finished, state.finishedAt);
    }
    if (state.paused && facts.state == "running" && !context_.queued(engine_.id, "pause")) {
      facts.state = "paused";
      emitObservedNow(facts, "pause");
    } else if (state.running && !state.paused && facts.state == "paused" &&
               !context_.queued(engine_.id, "unpause")) {
      facts.state = "running";
      emitObservedNow(facts, "unpause");
    }
  }

  Tracker& tracker_;
  const ContainerInspect& engine_;
  const ReconcileContext& context_;
  std::vector<Record>& out_;
  std::optional<ContainerFacts> current_;
};

}  // namespace

std::vector<Record> reconcile(Tracker& tracker, const std::vector<ContainerInspect>& engine,
                              const ReconcileContext& context) {
  std::vector<Record> out;
  std::set<std::string, std::less<>> listed;
  for (const ContainerInspect& inspect : engine) {
    listed.insert(inspect.id);
    if (context.firstObservation) {
      out.push_back(tracker.snapshot(inspect));
      continue;
    }
    ContainerReconciler reconciler(tracker, inspect, context, out);
    if (const ContainerFacts* known = tracker.find(inspect.id)) {
      reconciler.knownContainer(ContainerFacts(*known));
    } else {
      reconciler.unknownContainer();
    }
  }
  // A new ledger knows only what this stream delivered: its destroys come through it too (or,
  // if it dies first, the next reconciliation finds them).
  if (context.firstObservation) return out;
  for (const std::string& id : tracker.knownIds()) {
    if (listed.contains(id) || context.queued(id, "destroy")) continue;
    ContainerFacts facts = *tracker.find(id);
    facts.state = "removed";
    facts.pid.reset();
    out.push_back(tracker.reconciled(facts, "destroy", context.now, ""));
  }
  return out;
}

bool anyTransitionInFlight(const std::vector<ContainerInspect>& engine,
                           const ReconcileContext& context) {
  if (context.firstObservation) return false;
  const auto inMargin = [&](const std::string& rfc3339) {
    const auto t = parseRfc3339Nanos(rfc3339);
    return t && *t >= context.leftToStreamFrom() && *t < context.streamOpenedAt;
  };
  return std::ranges::any_of(engine, [&](const ContainerInspect& container) {
    return inMargin(container.created) || inMargin(container.state.startedAt) ||
           inMargin(container.state.finishedAt);
  });
}

std::vector<std::string> auditDisagreements(const Tracker& tracker,
                                            const std::vector<ContainerSummary>& engine) {
  std::set<std::string> disagree;
  std::set<std::string, std::less<>> listed;
  for (const ContainerSummary& container : engine) {
    listed.insert(container.id);
    if (container.state == "restarting" || container.state == "removing") continue;
    const std::string state = container.state == "dead" ? "exited" : container.state;
    const ContainerFacts* known = tracker.find(container.id);
    if (known == nullptr || known->state != state) disagree.insert(container.id);
  }
  for (const std::string& id : tracker.knownIds()) {
    if (!listed.contains(id)) disagree.insert(id);
  }
  return {disagree.begin(), disagree.end()};
}

}  // namespace zastava
