// parseSeedFile and parseKeyFile (buffer/seal.h): a seed file handed to `zastava-agent verify
// --seal-key`, and the key file the agent reads at start, both possibly edited or torn. The
// first byte picks the parser. What parses must print back to the same bytes.
#include "buffer/seal.h"
#include "fuzz/fuzz_util.h"

using namespace zastava;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view text = fuzz::text(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    if (auto seed = parseSeedFile(text)) {
      fuzz::check(sealKeyIdOf(seed->seed) == seed->keyId, "a parsed seed has its own key id");
      fuzz::check(parseSeedFile(seedFileText(*seed)).ok(), "a seed prints back to a seed file");
    }
  } else if (auto state = parseKeyFile(text)) {
    fuzz::check(state->epoch >= 0, "an epoch is not negative");
    auto back = parseKeyFile(keyFileText(*state));
    fuzz::check(back.ok() && back->key == state->key && back->epoch == state->epoch,
                "a key file prints back to the same key and epoch");
  }
  return 0;
}
