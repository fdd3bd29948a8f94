// decodeEvent puts every engine's actions in Docker's vocabulary, on the event streams captured
// from Docker 20.10, Docker 26.1 and Podman 4.3 (tests/fixtures/engine and its subdirectories).
#include <doctest/doctest.h>

#include <map>
#include <string>
#include <vector>

#include "collectors/decoders.h"
#include "tests/fixture_files.h"

namespace zastava {
namespace {

using testing::fixtureLines;

std::vector<EngineEvent> decodeAll(const std::string& name) {
  std::vector<EngineEvent> events;
  for (const auto& line : fixtureLines(name)) {
    CAPTURE(line);
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    events.push_back(std::move(*event));
  }
  return events;
}

// What one of Podman's actions decodes to.
struct Expected {
  std::string action;
  bool mapped = false;
};

// Every action in the Podman capture, and what it means in Docker's words.
const std::map<std::string, Expected> kPodman{
    {"create", {"create"}},
    {"init", {"init"}},
    {"start", {"start"}},
    {"attach", {"attach"}},
    {"pause", {"pause"}},
    {"unpause", {"unpause"}},
    {"rename", {"rename"}},
    {"kill", {"kill"}},
    {"die", {"die"}},
    {"cleanup", {"cleanup"}},
    {"restart", {"restart"}},
    {"exec", {"exec_start", true}},
    {"exec_died", {"exec_die", true}},
    {"remove", {"destroy", true}},
    {"health_status", {"health_status", true}},
};

TEST_CASE("every Podman 4.3 action decodes to Docker's name, the engine's kept as rawAction") {
  const auto events = decodeAll("podman-4.3/events-lifecycle.ndjson");
  REQUIRE(events.size() == 53);
  std::map<std::string, int> seen;
  for (const EngineEvent& event : events) {
    CAPTURE(event.rawAction);
    REQUIRE(kPodman.contains(event.rawAction));
    const Expected& expected = kPodman.at(event.rawAction);
    CHECK(event.action == expected.action);
    CHECK(event.mapped == expected.mapped);
    if (event.action != "health_status") CHECK(event.actionDetail.empty());
    ++seen[event.rawAction];
  }
  CHECK(seen.size() == kPodman.size());  // the table has no action the capture lacks
  CHECK(seen["remove"] == 6);            // one per container, never a destroy
  CHECK(seen["exec"] == 1);
  CHECK(seen["exec_died"] == 3);  // the exec, and each health check
  CHECK(seen["init"] == 8);
  CHECK(seen["cleanup"] == 5);
}

TEST_CASE("Podman's health status comes from its top-level HealthStatus") {
  std::vector<std::string> details;
  for (const EngineEvent& event : decodeAll("podman-4.3/events-lifecycle.ndjson")) {
    if (event.rawAction != "health_status") continue;
    CHECK(event.action == "health_status");
    CHECK(event.mapped);
    CHECK(event.attributes.at("name") == "col-health");
    details.push_back(event.actionDetail);
  }
  CHECK(details == std::vector<std::string>{"starting", "healthy"});
}

TEST_CASE("a Podman remove decodes exactly as a destroy of the same container") {
  const auto events = decodeAll("podman-4.3/events-lifecycle.ndjson");
  const EngineEvent& remove = events.back();
  CHECK(remove.rawAction == "remove");
  CHECK(remove.action == "destroy");
  CHECK(remove.actionDetail.empty());
  CHECK(remove.mapped);
  CHECK(remove.type == "container");
  CHECK(remove.actorId == "bc55cbf33636e8bcee7907a27869edc95246a2f149cbcffdd2fb8817fae8bdd7");
  CHECK(remove.attributes.at("name") == "col-life2");
}

// Docker's events are left as sent: action and detail spell the Action exactly.
void checkUnmapped(const std::vector<EngineEvent>& events) {
  for (const EngineEvent& event : events) {
    CAPTURE(event.rawAction);
    CHECK_FALSE(event.mapped);
    const std::string spelled =
        event.actionDetail.empty() ? event.action : event.action + ": " + event.actionDetail;
    CHECK(spelled == event.rawAction);
    CHECK(event.action != "remove");
    CHECK(event.action != "exec");
    CHECK(event.action != "exec_died");
  }
}

TEST_CASE("Docker 26.1 and 20.10 events decode unmapped, in both event shapes") {
  const auto docker26 = decodeAll("docker-26.1/events-lifecycle.ndjson");
  REQUIRE(docker26.size() == 62);
  checkUnmapped(docker26);
  checkUnmapped(decodeAll("events-lifecycle.ndjson"));
  checkUnmapped(decodeAll("events-v152.ndjson"));
}

}  // namespace
}  // namespace zastava
