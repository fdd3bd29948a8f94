#include <doctest/doctest.h>
#include <httplib.h>

#include <cstdio>
#include <string>
#include <thread>

#include "health/health_state.h"
#include "health/http_server.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Runs promtool check metrics on the text; returns its exit status and output.
std::pair<int, std::string> promtoolCheck(const std::string& exposition) {
  char path[] = "/tmp/zastava-metrics-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, exposition.data(), exposition.size()) ==
          static_cast<ssize_t>(exposition.size()));
  close(fd);
  std::string command = "promtool check metrics < " + std::string(path) + " 2>&1";
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buffer[512];
  while (fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  int status = pclose(pipe);
  unlink(path);
  return {status, output};
}

TEST_CASE("readiness names what is wrong, most fundamental first") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock);
  CHECK_FALSE(health.readiness().ok);
  CHECK(contains(health.readiness().reason, "docker engine"));

  health.setEngineReachable(true);
  CHECK(contains(health.readiness().reason, "inventory"));
  health.setInventoryDone();
  CHECK(health.readiness().ok);

  health.setBackendFailing(true, "connect: Couldn't connect to server");
  CHECK(health.readiness().reason ==
        "backend connection failed: connect: Couldn't connect to server");
  CHECK(health.liveness().ok);
  health.setBackendFailing(false);
  CHECK(health.readiness().ok);
  health.setBackendFailing(true, "timeout: 30 s");

  health.setEngineReachable(false, "cannot connect to unix:///x.sock");
  CHECK(health.readiness().reason == "docker engine unreachable: cannot connect to unix:///x.sock");
  health.setBufferWritable(false, "disk full: /data");
  CHECK(health.readiness().reason == "event buffer not writable: disk full: /data");
  CHECK(health.liveness().ok);
}

TEST_CASE("a worker on one piece of work past the stall limit fails liveness, then readiness") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock, std::chrono::seconds(90));
  health.setEngineReachable(true);
  health.setInventoryDone();
  health.working(Worker::kWriter);
  health.working(Worker::kEnricher);
  health.waiting(Worker::kEnricher);  // waiting for work is never a stall
  clock.advance(std::chrono::seconds(90));
  CHECK(health.liveness().ok);  // at the limit: not past it
  clock.advance(std::chrono::seconds(1));
  CHECK_FALSE(health.liveness().ok);
  CHECK(health.liveness().reason == "buffer writer stalled: on one piece of work for 91 s");
  CHECK(health.readiness().reason == health.liveness().reason);

  health.waiting(Worker::kWriter);  // it finished after all
  CHECK(health.liveness().ok);
  CHECK(health.readiness().ok);
  health.working(Worker::kStream);  // a fresh piece of work is not a stall
  CHECK(health.liveness().ok);
}

TEST_CASE("health facts drive the matching gauges") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock);
  CHECK(contains(metrics.exposition(), "zastava_agent_docker_connected 0"));
  health.setEngineReachable(true);
  CHECK(contains(metrics.exposition(), "zastava_agent_docker_connected 1"));
  health.setBufferWritable(false, "disk full");
  CHECK(contains(metrics.exposition(), "zastava_agent_buffer_writable 0"));
}

TEST_CASE("the exposition has every documented metric and passes promtool") {
  Metrics metrics({"1.2.3", "abc"});
  metrics.countEvent("container.start", "stream", 1);
  metrics.countEngineError("unavailable");
  metrics.countDropped("queue_full");
  metrics.countSegmentDeleted("age");
  metrics.observeCommitDuration(0.002);
  std::string text = metrics.exposition();
  for (const char* name :
       {"zastava_agent_docker_connected", "zastava_agent_buffer_writable",
        "zastava_agent_events_buffered", "zastava_agent_events_total",
        "zastava_agent_stream_reconnects_total", "zastava_agent_engine_errors_total",
        "zastava_agent_events_dropped_total", "zastava_agent_duplicates_suppressed_total",
        "zastava_agent_buffer_written_bytes_total", "zastava_agent_buffer_rotations_total",
        "zastava_agent_buffer_segments_deleted_total", "zastava_agent_buffer_bytes",
        "zastava_agent_buffer_commit_duration_seconds_bucket",
        "zastava_agent_last_event_timestamp_seconds", "zastava_agent_build_info",
        "zastava_agent_inspects_total", "zastava_agent_invariant_failures_total"}) {
    CAPTURE(name);
    CHECK(contains(text, std::string("\n") + name));
  }
  CHECK(contains(text, R"(zastava_agent_events_total{kind="container.start",source="stream"} 1)"));
  CHECK(contains(text, R"(zastava_agent_build_info{git_commit="abc",version="1.2.3"} 1)"));
  CHECK(contains(text, "\nzastava_agent_invariant_failures_total 0\n"));
  auto [status, output] = promtoolCheck(text);
  CAPTURE(output);
  CHECK(status == 0);
  CHECK(output.empty());
}

TEST_CASE("the server answers probes with status and reason") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock);
  HealthServer server(health, metrics);
  REQUIRE(server.start("127.0.0.1", 0).ok());
  httplib::Client client("127.0.0.1", server.port());

  auto ready = client.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(contains(ready->body, "docker engine"));
  health.setEngineReachable(true);
  health.setInventoryDone();
  CHECK(client.Get("/readyz")->status == 200);
  CHECK(client.Get("/healthz")->status == 200);
  CHECK(client.Get("/livez")->status == 200);
  auto scrape = client.Get("/metrics");
  REQUIRE(scrape);
  CHECK(scrape->get_header_value("Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  CHECK(contains(scrape->body, "zastava_agent_docker_connected 1"));
  CHECK(client.Get("/nope")->status == 404);
  server.stop();
}

TEST_CASE("a port already in use is a clear start-up error") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock);
  HealthServer first(health, metrics);
  REQUIRE(first.start("127.0.0.1", 0).ok());
  HealthServer second(health, metrics);
  auto result = second.start("127.0.0.1", first.port());
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kUnavailable);
  CHECK(result.error().message == "cannot listen for health checks on 127.0.0.1:" +
                                      std::to_string(first.port()) + ": Address already in use");
  CHECK(second.port() == 0);
  httplib::Client client("127.0.0.1", first.port());
  auto alive = client.Get("/livez");
  REQUIRE(alive);  // the first one still serves
  CHECK(alive->status == 200);
}

TEST_CASE("an address not on this host is a clear start-up error") {
  Metrics metrics({"1.2.3", "abc"});
  ManualClock clock;
  HealthState health(metrics, clock);
  HealthServer server(health, metrics);
  auto result = server.start("192.0.2.1", 0);  // TEST-NET-1: nobody's address
  REQUIRE_FALSE(result.ok());
  CHECK(result.error().code == ErrorCode::kUnavailable);
  CHECK(result.error().message ==
        "cannot listen for health checks on 192.0.2.1:0: Cannot assign requested address");
}

TEST_CASE("invariant failures are counted, earlier runs' included") {
  Metrics metrics({"1.2.3", "abc"});
  metrics.countInvariantFailures(2);  // read from the data directory at start
  metrics.countInvariantFailures(1);  // one in this process
  CHECK(contains(metrics.exposition(), "\nzastava_agent_invariant_failures_total 3\n"));
}

}  // namespace
}  // namespace zastava
