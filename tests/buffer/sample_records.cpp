// Writes a varied set of records through a real Recorder into the data directory argv[1], for
// check_records.py to validate against docs/record-schema.json and to verify the hash chain.
#include <cstdio>

#include "buffer/recorder.h"
#include "buffer_test_util.h"
#include "health/health_state.h"
#include "health/metrics.h"

int main(int argc, char** argv) {
  using namespace zastava;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
    return 2;
  }
  FakeClock clock(testing::kStart);
  Metrics metrics(testing::testBuild());
  HealthState health(metrics);
  RecorderOptions options;
  options.dataDirectory = argv[1];
  options.limits.maxFileBytes = 2048;  // several segments, so the chain crosses files
  auto recorder = Recorder::open(options, clock, metrics, health);
  if (!recorder.ok()) {
    std::fprintf(stderr, "%s\n", recorder.error().message.c_str());
    return 1;
  }
  for (int i = 0; i < 20; ++i) {
    Record record =
        testing::engineRecord("c" + std::to_string(i % 3), "start", testing::kStart + i);
    if (i % 4 == 1) {
      record.kind = "container.health_status";
      record.action = "health_status";
      record.actionDetail = "healthy";
    }
    if (i % 5 == 2) {
      record.container.imageId = "sha256:0123";
      record.container.state = "exited";
      record.container.exitCode = 137;
      record.container.pid = 0;
      record.container.restartCount = 2;
      record.container.oomKilled = true;
      record.container.startedAt = "2026-11-22T14:00:00.123456789Z";
      record.container.finishedAt = "2026-11-22T14:01:00Z";
      record.container.labels = {{"quote\"", "line\nbreak"}, {"bad", "\xff"}};
    }
    if (i % 6 == 3) {
      record.source = RecordSource::kSnapshot;
      record.kind = "container.snapshot";
      record.timeNano = 0;
      record.action.clear();
      record.attributes.clear();
      record.eventId = eventIdForSnapshot(record.container.id, record.observedAt);
    }
    (*recorder)->submit(record);
  }
  (*recorder)->stop();
  return 0;
}
