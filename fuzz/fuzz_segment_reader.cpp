// SegmentReader (what `zastava-agent records` reads, on the agent's own directory or on any copy
// of one) and listSegments' reading of segment file names. The input drives a writer: up to
// three segments, each written in chunks with a readNew() after some of them, as the agent
// writes while `records -f` follows; every byte written must come back exactly once, in order:
// each complete line once, and a finished segment's unended rest as one torn line. Then one
// file whose name is built from the input is listed on its own.
#include <fuzzer/FuzzedDataProvider.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "buffer/segment_reader.h"
#include "buffer/segment_writer.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;
namespace fs = std::filesystem;

namespace {

// A directory of this process's own, emptied for each input and removed at exit: in /dev/shm
// when there is one (every input writes files) unless TMPDIR says where.
const fs::path& scratch() {
  static const fs::path dir = [] {
    const bool shm = std::getenv("TMPDIR") == nullptr && fs::is_directory("/dev/shm");
    const fs::path parent = shm ? fs::path("/dev/shm") : fs::temp_directory_path();
    std::string pattern = (parent / "zastava-fuzz-segments-XXXXXX").string();
    fuzz::check(::mkdtemp(pattern.data()) != nullptr, "a scratch directory can be made");
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(scratch(), ec);
    });
    return fs::path(pattern);
  }();
  return dir;
}

void append(const fs::path& file, std::string_view bytes) {
  std::ofstream out(file, std::ios::binary | std::ios::app);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  fuzz::check(out.good(), "a segment can be written");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  FuzzedDataProvider input(data, size);
  const fs::path segmentsDir = scratch() / "runtime-events";
  const fs::path namesDir = scratch() / "names";
  fs::remove_all(segmentsDir);
  fs::remove_all(namesDir);
  fs::create_directories(segmentsDir);
  fs::create_directories(namesDir);

  constexpr UnixNanos kCreatedAt = 1'795'358'000'000'000'000;
  SegmentReader reader(segmentsDir);
  std::map<fs::path, std::string> written;  // by segment
  std::map<fs::path, std::string> read;     // lines put back together
  const auto readNew = [&] {
    auto batch = reader.readNew();
    fuzz::check(batch.ok(), "a readable directory is read");
    for (const auto& line : batch->lines) {
      fuzz::check(line.text.find('\n') == std::string::npos, "a line holds no newline");
      read[line.segment] += line.text + (line.torn ? "" : "\n");
    }
  };
  const int segments = input.ConsumeIntegralInRange(1, 3);
  std::vector<fs::path> paths;
  for (int seq = 1; seq <= segments; ++seq) {
    const fs::path path = segmentsDir / segmentFileName(kCreatedAt + seq, seq);
    paths.push_back(path);
    append(path, "");
    const int chunks = input.ConsumeIntegralInRange(1, 4);
    for (int chunk = 0; chunk < chunks; ++chunk) {
      const std::string bytes = input.ConsumeRandomLengthString(4096);
      append(path, bytes);
      written[path] += bytes;
      if (input.ConsumeBool()) readNew();
    }
  }
  readNew();
  for (const fs::path& path : paths) {
    std::string expected = written[path];
    if (path == paths.back()) expected.erase(expected.rfind('\n') + 1);  // npos + 1 == 0
    fuzz::check(read[path] == expected, "every byte of a segment is read once, in order");
  }

  // A file name as a copied data directory may hold: listSegments reads its time and seq.
  std::string name = "events-" + input.ConsumeRandomLengthString(24) + ".ndjson";
  for (char& c : name) {
    if (c == '/' || c == '\0') c = '_';
  }
  append(namesDir / name, "");
  const auto listed = listSegments(namesDir);
  fuzz::check(listed.ok(), "a readable directory is listed");
  return 0;
}
