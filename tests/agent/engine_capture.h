// The captures of one engine (tests/fixtures/engine and its README.md) as the Pipeline's tests
// use them (scripted_docker_api.h), and the ledger read back from the Recorder's SQLite
// database as any reader would while the agent writes it.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "collectors/decoders.h"
#include "common/clock.h"
#include "common/rfc3339.h"
#include "tests/fixture_files.h"

namespace zastava::testing {

inline constexpr std::int64_t kMicrosecond = 1'000;

// One engine's captures.
struct Capture {
  std::string name;
  std::string directory;           // under tests/fixtures/engine: "", "docker-26.1/", "podman-4.3/"
  std::vector<std::string> lines;  // events-lifecycle.ndjson, as sent
  std::vector<EngineEvent> events;                   // the same, decoded
  std::vector<ContainerSummary> listed;              // containers-list.json
  std::map<std::string, ContainerInspect> inspects;  // the captured inspects, by id
  std::string apiVersion;                            // ping-headers.txt's Api-Version
  // When the capture removed the listed containers (commands.log); 0: it never did.
  UnixNanos listedUntil = 0;
  // What the engine answered to the inspect of a container it no longer had: Docker's 404
  // (inspect-404.json), Podman's 500 "no such container" (podman-4.3/inspect-rm-exited.json).
  int goneStatus = 0;
  std::string goneBody;

  UnixNanos at(std::size_t line) const { return events.at(line).timeNano; }
  std::string idOf(const std::string& containerName) const {
    for (const EngineEvent& event : events) {
      if (event.attributes.count("name") != 0 && event.attributes.at("name") == containerName) {
        return event.actorId;
      }
    }
    return {};
  }
};

inline std::string headerValue(const std::string& headers, const std::string& name) {
  std::istringstream in(headers);
  for (std::string line; std::getline(in, line);) {
    if (line.size() > name.size() + 1 && line.compare(0, name.size() + 1, name + ":") == 0) {
      std::string value = line.substr(name.size() + 1);
      while (!value.empty() && (value.front() == ' ')) value.erase(0, 1);
      while (!value.empty() && (value.back() == '\r' || value.back() == ' ')) value.pop_back();
      return value;
    }
  }
  return {};
}

// The DockerApi contract (docker_api.h): these answers to an inspect mean "gone".
inline bool saysGone(int status, const std::string& body) {
  return status == 404 || (status == 500 && decodeErrorCause(body) == "no such container");
}

// `dir` is "" (Docker 20.10, the top level), "docker-26.1/" or "podman-4.3/".
inline Capture loadCapture(const std::string& name, const std::string& dir, UnixNanos listedUntil,
                           int goneStatus, const std::string& goneFile) {
  Capture capture;
  capture.name = name;
  capture.directory = dir;
  capture.listedUntil = listedUntil;
  capture.lines = fixtureLines(dir + "events-lifecycle.ndjson");
  for (const std::string& line : capture.lines) {
    auto event = decodeEvent(line);
    REQUIRE(event.ok());
    capture.events.push_back(std::move(event).value());
  }
  auto listed = decodeContainerList(readFixture(dir + "containers-list.json"));
  REQUIRE(listed.ok());
  capture.listed = std::move(listed).value();
  for (const char* file : {"inspect-running.json", "inspect-exited.json"}) {
    auto inspect = decodeContainerInspect(readFixture(dir + file));
    REQUIRE(inspect.ok());
    capture.inspects[inspect->id] = std::move(inspect).value();
  }
  capture.apiVersion = headerValue(readFixture(dir + "ping-headers.txt"), "Api-Version");
  REQUIRE(!capture.apiVersion.empty());
  capture.goneStatus = goneStatus;
  capture.goneBody = readFixture(goneFile);
  REQUIRE(saysGone(capture.goneStatus, capture.goneBody));
  return capture;
}

// Docker 20.10 (API 1.41): the lifecycle 14:37:32-14:37:40, then the four listed containers
// created at 14:37:48 and never removed.
inline const Capture& docker20() {
  static const Capture capture = loadCapture("docker 20.10", "", 0, 404, "inspect-404.json");
  return capture;
}

// Docker 26.1: the listed containers were removed at 06:14:45, before the lifecycle's stream.
inline const Capture& docker26() {
  static const Capture capture =
      loadCapture("docker 26.1", "docker-26.1/", *parseRfc3339Nanos("2026-12-06T06:14:46Z"), 404,
                  "inspect-404.json");
  return capture;
}

// Podman 4.3: the listed containers were removed at 06:15:11, before the lifecycle's stream.
inline const Capture& podman43() {
  static const Capture capture =
      loadCapture("podman 4.3", "podman-4.3/", *parseRfc3339Nanos("2026-12-06T06:15:12Z"),
                  std::stoi(readFixture("podman-4.3/inspect-rm-exited.status")),
                  "podman-4.3/inspect-rm-exited.json");
  return capture;
}

// The Recorder's SQLite database, read as any reader would while the agent writes it.
class Ledger {
 public:
  explicit Ledger(std::filesystem::path database) : database_(std::move(database)) {}

  // The value of a one-number query; -1 when the database cannot be read (not yet created).
  std::int64_t number(const std::string& sql) const {
    std::int64_t value = -1;
    withDatabase([&](sqlite3* db) {
      sqlite3_stmt* statement = nullptr;
      if (sqlite3_prepare_v2(db, sql.c_str(), -1, &statement, nullptr) != SQLITE_OK) return;
      if (sqlite3_step(statement) == SQLITE_ROW) value = sqlite3_column_int64(statement, 0);
      sqlite3_finalize(statement);
    });
    return value;
  }

  std::int64_t count(const std::string& where) const {
    return number("SELECT count(*) FROM events WHERE " + where);
  }

  // Container ids are hex: safe to put in a query.
  bool destroyed(const std::string& containerId) const {
    return count("container_id = '" + containerId + "' AND kind = 'container.destroy'") > 0;
  }

  // Every record, in the order it was committed.
  std::vector<nlohmann::json> records() const {
    std::vector<nlohmann::json> out;
    withDatabase([&](sqlite3* db) {
      sqlite3_stmt* statement = nullptr;
      if (sqlite3_prepare_v2(db, "SELECT record FROM events ORDER BY rowid", -1, &statement,
                             nullptr) != SQLITE_OK) {
        return;
      }
      while (sqlite3_step(statement) == SQLITE_ROW) {
        const auto* text = reinterpret_cast<const char*>(sqlite3_column_text(statement, 0));
        out.push_back(nlohmann::json::parse(text));
      }
      sqlite3_finalize(statement);
    });
    return out;
  }

 private:
  template <class F>
  void withDatabase(F&& use) const {
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(database_.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
      sqlite3_busy_timeout(db, 5'000);
      use(db);
    }
    sqlite3_close(db);
  }

  std::filesystem::path database_;
};

}  // namespace zastava::testing
