// The census behind zastava_agent_posture_failing_containers and _critical_starts_total, fed the
// records the Tracker makes from inspects captured from a real engine.
#include "agent/posture_census.h"

#include <doctest/doctest.h>

#include "agent/tracker.h"
#include "collectors/decoders.h"
#include "health/metrics.h"
#include "posture/evaluate.h"
#include "tests/buffer/buffer_test_util.h"
#include "tests/fixture_files.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

constexpr UnixNanos kNow = 1'795'358'100'000'000'000;

ContainerInspect inspectOf(const std::string& fixture) {
  auto inspect = decodeContainerInspect(testing::readFixture("posture/" + fixture));
  REQUIRE_MESSAGE(inspect.ok(), fixture);
  return *inspect;
}

struct CensusFixture {
  ManualClock clock{kNow};
  const Redactor redactor;
  Metrics metrics{testing::testBuild()};
  PostureCensus census{metrics, PosturePolicy{}};
  Tracker tracker{clock, redactor};

  double failingMetric(const std::string& check, const std::string& severity) const {
    return testing::metricValue(metrics, "zastava_agent_posture_failing_containers{check=\"" +
                                             check + "\",severity=\"" + severity + "\"}");
  }
  double criticalStarts(const std::string& check) const {
    return testing::metricValue(
        metrics, "zastava_agent_posture_critical_starts_total{check=\"" + check + "\"}");
  }
  Record event(const ContainerInspect& inspect, const std::string& action) {
    EngineEvent event;
    event.type = "container";
    event.action = event.rawAction = action;
    event.actorId = inspect.id;
    event.timeNano = clock.now();
    clock.advance(std::chrono::milliseconds(1));
    return tracker.fromEvent(receivedEvent(event, RecordSource::kStream, clock.now()));
  }
  Record inspected(const ContainerInspect& inspect, const Record& started) {
    InspectAnswer answer;
    answer.request = InspectRequest{inspect.id, started.eventId, "start", RecordSource::kStream};
    answer.inspect = inspect;
    return tracker.inspected(answer);
  }
};

TEST_CASE_FIXTURE(CensusFixture, "every series is exported at 0 from the start") {
  CHECK(failingMetric("5.5", "critical") == 0);
  CHECK(failingMetric("5.7", "medium") == 0);
  CHECK(failingMetric("5.19", "info") == 0);
  CHECK(criticalStarts("5.5") == 0);
  CHECK(criticalStarts("5.32") == 0);
  CHECK(testing::metricValue(metrics,
                             "zastava_agent_posture_critical_starts_total{check=\"5.11\"}") < 0);
}

TEST_CASE_FIXTURE(CensusFixture,
                  "a container counts while it runs, from its inspect, until it dies") {
  const ContainerInspect hostNet = inspectOf("inspect-host-network.json");
  const ContainerInspect plain = inspectOf("inspect-default.json");
  for (const ContainerInspect* inspect : {&hostNet, &plain}) {
    const Record started = event(*inspect, "start");
    census.observe(started);  // a start alone says nothing of its posture yet
    CHECK(census.failing("5.11") == (inspect == &hostNet ? 0 : 1));
    const Record record = inspected(*inspect, started);
    census.countStart(*record.container.posture);
    census.observe(record);
  }
  CHECK(census.failing("5.10") == 1);
  CHECK(census.failing("5.11") == 2);
  CHECK(failingMetric("5.10", "critical") == 1);
  CHECK(failingMetric("5.11", "low") == 2);
  CHECK(criticalStarts("5.10") == 1);
  CHECK(criticalStarts("5.5") == 0);

  census.observe(event(hostNet, "pause"));  // paused is still up
  CHECK(census.failing("5.10") == 1);
  census.observe(event(hostNet, "die"));
  CHECK(census.failing("5.10") == 0);
  CHECK(census.failing("5.11") == 1);
  census.observe(event(plain, "destroy"));
  CHECK(census.failing("5.11") == 0);
  CHECK(failingMetric("5.11", "low") == 0);
}

TEST_CASE_FIXTURE(CensusFixture,
                  "a waived check is not counted; evidence adds 5.7 to a container up") {
  ContainerInspect inspect = inspectOf("inspect-host-network.json");
  inspect.labels[std::string(kPostureWaiverLabel)] = "5.10";
  census.observe(inspected(inspect, event(inspect, "start")));
  CHECK(census.failing("5.10") == 0);
  CHECK(census.failing("5.13") == 1);

  ProcessTree tree;
  tree.processes.emplace_back().comm = "sshd";
  Record evidence;
  evidence.kind = std::string(kEvidenceKind);
  evidence.container.id = inspect.id;
  evidence.evidence.emplace();
  evidence.container.posture =
      std::make_shared<const PostureFindings>(evaluateProcessChecks(&tree, {}, {}));
  census.observe(evidence);
  CHECK(census.failing("5.7") == 1);
  CHECK(census.failing("5.13") == 1);  // the inspect's findings stay
  // Evidence of a container not up (it died before its scan was recorded) is not counted.
  census.observe(event(inspect, "die"));
  census.observe(evidence);
  CHECK(census.failing("5.7") == 0);
}

TEST_CASE_FIXTURE(CensusFixture, "an inventory replaces what is up: the stopped unseen go") {
  const ContainerInspect pid = inspectOf("inspect-host-pid.json");
  const ContainerInspect socket = inspectOf("inspect-docker-socket.json");
  census.observe(inspected(pid, event(pid, "start")));
  CHECK(census.failing("5.16") == 1);
  census.inventory({{socket.id, tracker.postureOf(socket)}});
  CHECK(census.failing("5.16") == 0);
  CHECK(census.failing("5.32") == 1);
  CHECK(census.failing("5.11") == 1);
  census.inventory({{socket.id, tracker.postureOf(socket)}});  // again: counted once
  CHECK(census.failing("5.32") == 1);
}

TEST_CASE("skipped checks have no series; an override makes a check critical") {
  Metrics metrics{testing::testBuild()};
  PosturePolicy policy;
  policy.skip = {"5.19"};
  policy.severities = {{"5.13", Severity::kCritical}};
  PostureCensus census(metrics, policy);
  CHECK(testing::metricValue(
            metrics, "zastava_agent_posture_failing_containers{check=\"5.19\",severity=\"info\"}") <
        0);
  CHECK(testing::metricValue(
            metrics,
            "zastava_agent_posture_failing_containers{check=\"5.13\",severity=\"critical\"}") == 0);
  CHECK(testing::metricValue(metrics,
                             "zastava_agent_posture_critical_starts_total{check=\"5.13\"}") == 0);
}

}  // namespace
}  // namespace zastava
