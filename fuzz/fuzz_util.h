// What every fuzz target shares: the input as text, and checks that turn a broken promise of a
// parser's header into a crash libFuzzer reports (and keeps the input of).
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>
#include <vector>

#include "common/split.h"

namespace zastava::fuzz {

inline std::string_view text(const std::uint8_t* data, std::size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// Aborts with a message when `ok` is false: the parser broke what its header says.
inline void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}

// The lines of `text` split on '\n', without it; a trailing '\n' does not add an empty line.
inline std::vector<std::string_view> lines(std::string_view text) {
  return splitEndedBy(text, '\n');
}

}  // namespace zastava::fuzz
