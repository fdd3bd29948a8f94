// What the posture checks (docs/posture.md) add to each container start, on the agent's own
// code, over the inspect documents captured per risky setting (tests/fixtures/engine/posture):
// for each start the agent decodes the inspect's answer, makes its container.inspect record
// (Tracker::inspected) and writes its line (chainedLine). The posture's part of that is
// evaluateInspectChecks and the bytes of container.posture in the line. Prints, per start: the
// whole record's CPU µs, the checks' µs, the line's extra µs and bytes, and the posture's share.
//
//   posture_cost FIXTURE_DIR [STARTS=200000]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "agent/tracker.h"
#include "collectors/decoders.h"
#include "posture/evaluate.h"

using namespace zastava;

namespace {

std::vector<std::string> readInspects(const std::filesystem::path& dir) {
  std::vector<std::string> documents;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (!name.starts_with("inspect-") || entry.path().extension() != ".json") continue;
    std::ifstream in(entry.path(), std::ios::binary);
    std::stringstream text;
    text << in.rdbuf();
    documents.push_back(text.str());
  }
  return documents;
}

double cpuSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

// CPU µs per call of `work(i)` over `n` calls.
template <typename Work>
double microsPerCall(std::size_t n, Work work) {
  const double start = cpuSeconds();
  for (std::size_t i = 0; i < n; ++i) work(i);
  return (cpuSeconds() - start) * 1e6 / static_cast<double>(n);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: posture_cost FIXTURE_DIR [STARTS=200000]\n");
    return 2;
  }
  const std::size_t starts = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 200000;
  const std::vector<std::string> documents = readInspects(argv[1]);
  if (documents.empty()) {
    std::fprintf(stderr, "posture_cost: no inspect-*.json in %s\n", argv[1]);
    return 1;
  }
  std::vector<ContainerInspect> inspects;
  for (const std::string& document : documents) {
    auto inspect = decodeContainerInspect(document);
    if (!inspect.ok()) {
      std::fprintf(stderr, "posture_cost: %s\n", inspect.error().message.c_str());
      return 1;
    }
    inspects.push_back(*inspect);
  }
  const std::size_t kinds = inspects.size();

  SystemClock clock;
  const Redactor redactor;
  Tracker tracker(clock, redactor);
  // The whole start: decode the answer, make the inspect record, write its line.
  std::size_t sink = 0;
  const double whole = microsPerCall(starts, [&](std::size_t i) {
    auto inspect = decodeContainerInspect(documents[i % kinds]);
    InspectAnswer answer;
    answer.request = InspectRequest{inspect->id, "e" + std::to_string(i), "start", {}};
    answer.inspect = std::move(*inspect);
    sink += chainedLine(tracker.inspected(answer), kGenesisHash).line.size();
  });
  // The checks alone.
  const double checks = microsPerCall(starts, [&](std::size_t i) {
    const ContainerInspect& inspect = inspects[i % kinds];
    sink +=
        evaluateInspectChecks(inspect.posture, postureWaiverOf(inspect.labels), {}).checks.size();
  });
  // The line with and without container.posture.
  std::vector<Record> records;
  for (const ContainerInspect& inspect : inspects) {
    InspectAnswer answer;
    answer.request = InspectRequest{inspect.id, "e", "start", {}};
    answer.inspect = inspect;
    records.push_back(tracker.inspected(answer));
  }
  std::vector<Record> bare = records;
  for (Record& record : bare) record.container.posture.reset();
  double withBytes = 0;
  double bareBytes = 0;
  for (std::size_t k = 0; k < kinds; ++k) {
    withBytes += static_cast<double>(chainedLine(records[k], kGenesisHash).line.size());
    bareBytes += static_cast<double>(chainedLine(bare[k], kGenesisHash).line.size());
  }
  const double withLine = microsPerCall(starts, [&](std::size_t i) {
    sink += chainedLine(records[i % kinds], kGenesisHash).line.size();
  });
  const double bareLine = microsPerCall(starts, [&](std::size_t i) {
    sink += chainedLine(bare[i % kinds], kGenesisHash).line.size();
  });
  const double posture = checks + (withLine - bareLine);
  std::printf("posture cost over %zu starts of %zu captured settings (CPU µs per start):\n", starts,
              kinds);
  std::printf("  whole inspect record (decode + Tracker::inspected + line): %.2f\n", whole);
  std::printf("  posture checks (evaluateInspectChecks):                    %.2f\n", checks);
  std::printf("  line with container.posture minus without:                 %.2f\n",
              withLine - bareLine);
  std::printf("  posture share of the inspect record:                       %.1f %%\n",
              100.0 * posture / whole);
  std::printf("  line bytes per start: %.0f with posture, %.0f without (+%.0f)\n",
              withBytes / static_cast<double>(kinds), bareBytes / static_cast<double>(kinds),
              (withBytes - bareBytes) / static_cast<double>(kinds));
  return sink == 0 ? 1 : 0;
}
