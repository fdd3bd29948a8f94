// `zastava-agent seal-key export`: prints the sealing seeds still in the data directory
// (docs/records.md, "Seals") for the operator to take off the host, and says where each file is
// and that it must be deleted. It only reads.
#pragma once

#include <cstdio>
#include <string_view>

#include "agent/config.h"

namespace zastava {

inline constexpr std::string_view kSealKeyCommand = "seal-key";

// Prints every seed file's line of `dataDirectory` to `out`, and to `err` where each is and what
// to do with it. Returns the exit code: 0 when it printed one or more, 1 when there is none or
// the directory cannot be read. Any thread.
int exportSealSeeds(const std::filesystem::path& dataDirectory, std::FILE* out, std::FILE* err);

// `zastava-agent seal-key export [--data-directory DIR]` from main (argv[0] is "seal-key").
// Exit codes as exportSealSeeds, 2 for bad arguments. Main thread.
int runSealKeyCommand(int argc, const char* const* argv, const Environment& env);

}  // namespace zastava
