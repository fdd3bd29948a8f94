// The build's version and git commit, for --version, the User-Agent, the log and
// zastava_agent_build_info. The one definition is the generated translation unit made from
// common/version.cpp.in (CMake's project(VERSION) and `git rev-parse` at configure time), so a
// new commit rebuilds that file only. Any thread.
#pragma once

#include <string_view>

namespace zastava {

extern const std::string_view kVersion;    // project(VERSION) in CMakeLists.txt, e.g. "0.1.0"
extern const std::string_view kGitCommit;  // 12 hex digits; "unknown" outside a git checkout

}  // namespace zastava
