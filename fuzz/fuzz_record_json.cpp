// Outside bytes on their way into the ledger: strings the engine and /proc choose (names,
// labels, environment, attributes, actions, a comm) written by chainedLine, whose
// JsonWriter replaces invalid UTF-8. Whatever the bytes, the line is valid JSON that
// summarizeRecord reads back with the same kind, action detail and container name (after the
// replacement of invalid UTF-8). Input: '\n'-separated strings used in turn.
#include <simdjson.h>

#include <string>
#include <vector>

#include "buffer/record.h"
#include "buffer/record_summary.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

namespace {

bool validUtf8(std::string_view text) { return simdjson::validate_utf8(text.data(), text.size()); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const auto parts = fuzz::lines(fuzz::text(data, size));
  std::size_t next = 0;
  const auto take = [&]() -> std::string {
    return parts.empty() ? std::string() : std::string(parts[next++ % parts.size()]);
  };
  Record record;
  record.kind = "container." + take();
  record.source = RecordSource::kStream;
  record.time = 1'795'358'000'123'456'789;
  record.observedAt = record.time;
  record.action = take();
  record.actionDetail = take();
  record.engineAction = take();
  record.container.id = "c" + take();
  record.container.name = take();
  record.container.image = take();
  record.container.state = take();
  record.container.labels[take()] = take();
  record.container.env[take()] = take();
  record.attributes[take()] = take();
  const ChainedLine chained = chainedLine(record, kGenesisHash);
  fuzz::check(!chained.line.empty() && chained.hash.size() == 64, "a record has a line and hash");
  fuzz::check(validUtf8(chained.line), "a line is valid UTF-8");
  simdjson::dom::parser parser;
  simdjson::dom::element root;
  fuzz::check(parser.parse(chained.line).get(root) == simdjson::SUCCESS, "a line is valid JSON");
  const auto summary = summarizeRecord(chained.line);
  fuzz::check(summary.ok(), "a line is read back");
  if (validUtf8(record.kind)) fuzz::check(summary->kind == record.kind, "the kind is kept");
  if (validUtf8(record.actionDetail)) {
    fuzz::check(summary->actionDetail == record.actionDetail, "the detail is kept");
  }
  if (validUtf8(record.container.name)) {
    fuzz::check(summary->containerName == record.container.name, "the name is kept");
  }
  return 0;
}
