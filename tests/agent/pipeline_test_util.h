// The Pipeline's tests (pipeline_test.cpp): a Pipeline with everything it writes through on a
// scripted engine (scripted_docker_api.h), and reading its records back.
#pragma once

#include <doctest/doctest.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "agent/config.h"
#include "agent/evidence_collector.h"
#include "agent/pipeline.h"
#include "agent/posture_census.h"
#include "buffer/recorder.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/agent/engine_capture.h"
#include "tests/agent/scripted_docker_api.h"
#include "tests/buffer/buffer_test_util.h"
#include "tests/support/manual_clock.h"

namespace zastava::testing {

using json = nlohmann::json;

inline const std::string kGone = "the container was gone before it could be inspected";

// The defaults (pipelineOptions of a default Config), with short backoffs, so a stream the engine
// closes is reopened at once; enough inspect workers for every container of a capture to have its
// inspect held at the same time; no periodic audit (its lists would come on a schedule of their
// own).
inline PipelineOptions testOptions() {
  PipelineOptions options = pipelineOptions(Config{});
  options.initialBackoff = std::chrono::milliseconds(1);
  options.maxBackoff = std::chrono::milliseconds(10);
  options.inspector.workers = 8;
  options.auditInterval = std::chrono::seconds(0);
  return options;
}

inline std::int64_t overlapNanos(const PipelineOptions& options) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(options.resumeOverlap).count();
}

// Waits until `condition` holds; false after a minute (a failure, not a measurement).
template <class Condition>
inline bool eventually(Condition condition) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  while (!condition()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

// Quiet logs for the duration of a test (the pipeline warns about every gap and overflow).
class QuietLogs {
 public:
  QuietLogs() : level_(spdlog::get_level()) { spdlog::set_level(spdlog::level::err); }
  ~QuietLogs() { spdlog::set_level(level_); }
  QuietLogs(const QuietLogs&) = delete;
  QuietLogs& operator=(const QuietLogs&) = delete;

 private:
  spdlog::level::level_enum level_;
};

// A Pipeline and everything it writes through, on the engine of one capture. The clock starts
// a second before the capture's first event.
class Scenario {
 public:
  explicit Scenario(const Capture& capture, PipelineOptions options = testOptions())
      : options_(options),
        clock_(capture.at(0) - kSecond),
        ledger_(tmp_.path() / "data" / kDatabaseFileName),
        api_(capture, clock_, ledger_) {
    RecorderOptions recorderOptions;
    recorderOptions.dataDirectory = tmp_.path() / "data";
    auto recorder = Recorder::open(recorderOptions, clock_, metrics_, health_);
    REQUIRE_MESSAGE(recorder.ok(), (recorder.ok() ? "" : recorder.error().message));
    recorder_ = std::move(recorder).value();
    EvidenceOptions evidenceOptions;
    evidenceOptions.workers = 0;
    evidence_ = std::make_unique<EvidenceCollector>(*recorder_, census_, metrics_, clock_,
                                                    redactor_, evidenceOptions);
    pipeline_ = std::make_unique<Pipeline>(api_, *recorder_, *evidence_, census_, health_, metrics_,
                                           clock_, redactor_, options_);
  }
  ~Scenario() { stop(); }
  Scenario(const Scenario&) = delete;
  Scenario& operator=(const Scenario&) = delete;

  void start() {
    evidence_->start();
    pipeline_->start();
  }
  // Ends every hold first: the Pipeline joins its inspect workers.
  void stop() {
    if (stopped_) return;
    stopped_ = true;
    api_.shutdown();
    pipeline_->stop();
    evidence_->stop();
    recorder_->stop();
  }

  ScriptedDockerApi& api() { return api_; }
  const Ledger& ledger() const { return ledger_; }
  const PipelineOptions& options() const { return options_; }
  double metric(const std::string& series) const { return metricValue(metrics_, series); }

  // A reconciliation is over (it marks the inventory done once its records are submitted) and
  // one listed the engine after it had published every line.
  bool reconciledAtTheEnd() const { return api_.finalListAnswers() >= 1 && health_.readiness().ok; }
  // The first reconciliation is over (the one of a single stream).
  bool reconciledOnce() const { return api_.listAnswers() >= 1 && health_.readiness().ok; }
  std::int64_t engineRecords() const {
    return ledger_.count(
        "source IN ('stream', 'replay') AND kind NOT IN ('container.inspect', "
        "'container.evidence')");
  }
  std::int64_t inspectRecords() const { return ledger_.count("kind = 'container.inspect'"); }

 private:
  QuietLogs quiet_;
  const PipelineOptions options_;
  TempDir tmp_;
  ManualWallClock clock_;
  Metrics metrics_{testBuild()};
  HealthState health_{metrics_, clock_};
  PostureCensus census_{metrics_, options_.posture};
  const Redactor redactor_;
  Ledger ledger_;
  ScriptedDockerApi api_;
  std::unique_ptr<Recorder> recorder_;
  std::unique_ptr<EvidenceCollector> evidence_;
  std::unique_ptr<Pipeline> pipeline_;
  bool stopped_ = false;
};

// ---- reading records ----

inline std::string text(const json& object, const char* key) {
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}
inline std::string containerOf(const json& record) {
  return record.contains("container") ? text(record["container"], "id") : std::string();
}
inline std::string stateOf(const json& record) {
  const std::string state =
      record.contains("container") ? text(record["container"], "state") : std::string();
  return state.empty() ? "-" : state;
}
inline bool isEngineEvent(const json& record) {
  const std::string source = text(record, "source");
  const std::string kind = text(record, "kind");
  return (source == "stream" || source == "replay") && kind != kInspectKind &&
         kind != kEvidenceKind;
}

inline std::vector<std::size_t> lines(std::size_t first, std::size_t last) {
  std::vector<std::size_t> out;
  for (std::size_t line = first; line <= last; ++line) out.push_back(line);
  return out;
}
inline std::vector<std::size_t> operator+(std::vector<std::size_t> a,
                                          const std::vector<std::size_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

inline std::string eventIdOf(const Capture& capture, std::size_t line) {
  return receivedEvent(capture.events[line], RecordSource::kStream, 0).eventId;
}

// "eventId kind state" of each record a Tracker makes of `lines`, seen once each, in order:
// what the ledger must hold for them.
inline std::string expectedEvents(const Capture& capture, const std::vector<std::size_t>& lines) {
  ManualClock clock(0);
  const Redactor redactor;
  Tracker tracker(clock, redactor);
  std::string out;
  for (std::size_t line : lines) {
    const Record record =
        tracker.fromEvent(receivedEvent(capture.events[line], RecordSource::kStream, 0));
    out += record.eventId + " " + record.kind + " " + record.container.state.value_or("-") + "\n";
  }
  return out;
}
inline std::string recordedEvents(const std::vector<json>& records) {
  std::string out;
  for (const json& record : records) {
    if (!isEngineEvent(record)) continue;
    out += text(record, "eventId") + " " + text(record, "kind") + " " + stateOf(record) + "\n";
  }
  return out;
}

// "eventId source" of the engine events' records.
inline std::string recordedSources(const std::vector<json>& records) {
  std::string out;
  for (const json& record : records) {
    if (isEngineEvent(record)) out += text(record, "eventId") + " " + text(record, "source") + "\n";
  }
  return out;
}
inline std::string expectedSources(const Capture& capture, const std::vector<std::size_t>& stream,
                                   const std::vector<std::size_t>& replay) {
  std::string out;
  for (std::size_t line : stream) out += eventIdOf(capture, line) + " stream\n";
  for (std::size_t line : replay) out += eventIdOf(capture, line) + " replay\n";
  return out;
}

inline std::vector<json> withKind(const std::vector<json>& records, const std::string& kind) {
  std::vector<json> out;
  for (const json& record : records) {
    if (text(record, "kind") == kind) out.push_back(record);
  }
  return out;
}
inline std::vector<json> withSource(const std::vector<json>& records, const std::string& source) {
  std::vector<json> out;
  for (const json& record : records) {
    if (text(record, "source") == source) out.push_back(record);
  }
  return out;
}
// Where the record with `eventId` is in the ledger; -1 when absent.
inline long positionOf(const std::vector<json>& records, const std::string& eventId) {
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (text(records[i], "eventId") == eventId) return static_cast<long>(i);
  }
  return -1;
}
inline long positionOfDestroy(const std::vector<json>& records, const std::string& containerId) {
  for (std::size_t i = 0; i < records.size(); ++i) {
    if (containerOf(records[i]) == containerId && text(records[i], "kind") == "container.destroy") {
      return static_cast<long>(i);
    }
  }
  return -1;
}

// The lines of `capture` among `from` with timeNano >= since: what a resumed stream replays.
inline std::vector<std::size_t> fromSince(const Capture& capture,
                                          const std::vector<std::size_t>& from,
                                          std::int64_t since) {
  std::vector<std::size_t> out;
  for (std::size_t line : from) {
    if (capture.at(line) >= since) out.push_back(line);
  }
  return out;
}

// The start lines of a container, in order.
inline std::vector<std::size_t> startsOf(const Capture& capture, const std::string& containerId) {
  std::vector<std::size_t> starts;
  for (std::size_t line = 0; line < capture.events.size(); ++line) {
    const EngineEvent& event = capture.events[line];
    if (event.actorId == containerId && event.action == "start") starts.push_back(line);
  }
  REQUIRE(!starts.empty());
  return starts;
}

// Each start of each container has one container.inspect record, written after the container's
// destroy (the engine answered "gone" once it was; docs/records.md "What an inspect says"): the
// create's answer completes the first start, the last start is asked about on its own, and a
// start between them says it could not be inspected.
inline void checkInspectsAfterDestroy(const Capture& capture, const std::vector<json>& records,
                                      const std::vector<std::string>& containerIds) {
  const std::vector<json> inspects = withKind(records, std::string(kInspectKind));
  std::size_t expected = 0;
  for (const std::string& id : containerIds) {
    CAPTURE(id);
    const std::vector<std::size_t> starts = startsOf(capture, id);
    expected += starts.size();
    std::vector<json> mine;
    for (const json& inspect : inspects) {
      if (containerOf(inspect) == id) mine.push_back(inspect);
    }
    REQUIRE(mine.size() == starts.size());
    const long destroy = positionOfDestroy(records, id);
    CHECK(destroy >= 0);
    for (std::size_t i = 0; i < starts.size(); ++i) {
      const json& inspect = mine[i];
      const std::string start = eventIdOf(capture, starts[i]);
      const bool between = i > 0 && i + 1 < starts.size();
      CHECK(text(inspect, "completes") == start);
      CHECK(text(inspect, "inspectError") ==
            (between ? std::string(kStartedAgainBeforeInspect) : kGone));
      CHECK(stateOf(inspect) == "removed");
      CHECK(positionOf(records, start) >= 0);
      CHECK(positionOf(records, text(inspect, "eventId")) > destroy);
    }
  }
  CHECK(inspects.size() == expected);
}

inline std::vector<std::string> idsOf(const Capture& capture,
                                      const std::vector<std::string>& names) {
  std::vector<std::string> ids;
  for (const std::string& name : names) {
    ids.push_back(capture.idOf(name));
    REQUIRE(!ids.back().empty());
  }
  return ids;
}

}  // namespace zastava::testing
