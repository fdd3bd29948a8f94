// summarizeRecord: one NDJSON line of a ledger as `zastava-agent records` reads it back, from
// the agent's own directory or from any copy of one (so any bytes); with it what the command
// does with the summary: recordMatches and formatRecordLine.
#include <string>

#include "agent/records_command.h"
#include "buffer/record_summary.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto summary = summarizeRecord(fuzz::text(data, size));
  if (!summary.ok()) {
    fuzz::check(summary.error().code == ErrorCode::kMalformed, "a summary error is kMalformed");
    return 0;
  }
  fuzz::check(!summary->kind.empty() && !summary->source.empty(), "a record has kind and source");
  RecordsOptions options;
  options.containers = {"web", "36c7a3b3"};
  options.kinds = {"start", "container.die"};
  options.since = 1'795'358'000'000'000'000;
  (void)recordMatches(*summary, options);
  const std::string line = formatRecordLine(*summary);
  fuzz::check(!line.empty(), "a record has a line");
  return 0;
}
