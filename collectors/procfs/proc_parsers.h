// Pure parsers from the bytes of /proc files to the structs of evidence_types.h. They keep no
// state, copy everything they return, and may be called from any thread. Errors are kMalformed
// and name the 1-based line (or the field) that is wrong, quoting at most 120 bytes of it.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/evidence_types.h"
#include "common/result.h"

namespace zastava {

// /proc/<pid>/maps: "start-end perms offset major:minor inode [path]". The path is everything
// after the inode and its padding, so it may contain spaces; a trailing " (deleted)" sets
// `deleted` and is removed. Anonymous mappings have an empty path, special ones keep "[heap]".
// Strict: the kernel writes this format, so any line that does not fit it (bad hex, missing
// field, perms not 4 characters) fails the whole parse with kMalformed naming the line number.
// Empty input yields no entries (a kernel thread or a zombie).
Result<std::vector<MapsEntry>> parseMaps(std::string_view text);

// The distinct (device, inode, path) of mappings with 'x' permission, inode != 0 and a path
// starting with '/', in first-mapped order. start/end are those of the first executable mapping.
std::vector<LibraryRef> executableFileMappings(const std::vector<MapsEntry>& entries);

// /proc/<pid>/status. Requires Name, Pid, PPid, Uid and Gid; CapEff, Seccomp, NoNewPrivs and
// NSpid are optional (older kernels or configs lack them). Unknown lines are ignored. kMalformed
// names the line of a present field whose value does not parse, or the missing required field.
Result<ProcStatus> parseStatus(std::string_view text);

// /proc/<pid>/stat: "pid (comm) state ppid ... flags ... num_threads ... starttime ...". comm
// may contain spaces and ')', so it ends at the last ')'. kMalformed when the parentheses or the
// numeric fields read are wrong.
Result<ProcStat> parseStat(std::string_view text);

// /proc/<pid>/cmdline: NUL-separated arguments with a trailing NUL. A process that rewrote its
// argv without NULs yields one element; empty input (kernel thread, zombie) yields none.
std::vector<std::string> parseCmdline(std::string_view text);

// /proc/<pid>/cgroup, v1 ("4:memory:/docker/<id>") and v2 ("0::/docker/<id>") lines. Returns the
// path that names the container: the v2 path if it contains a 64-hex id, else the first v1 path
// that does, else the v2 path, else the first v1 path. kMalformed on an empty file or a line
// without two ':'.
Result<std::string> parseCgroupPath(std::string_view text);

// The last 64-lowercase-hex run in a cgroup path ("/docker/<id>", "docker-<id>.scope",
// "/../<id>"), or empty when there is none.
std::string containerIdFromCgroupPath(std::string_view path);

// The boot time in /proc/stat ("btime 1795358000", seconds since the Unix epoch); kMalformed
// when there is no such line.
Result<std::int64_t> parseBootTime(std::string_view text);

// "pid:[4026532180]" (readlink of /proc/<pid>/ns/pid) -> 4026532180; kMalformed otherwise.
Result<std::uint64_t> parseNamespaceLink(std::string_view link);

// Capability number -> "CAP_CHOWN" ... "CAP_CHECKPOINT_RESTORE" (0..40); "CAP_<n>" beyond.
std::string capabilityName(unsigned bit);

// The names of the set bits of a capability mask, lowest bit first.
std::vector<std::string> capabilityNames(std::uint64_t mask);

// 0 -> "disabled", 1 -> "strict", 2 -> "filter", anything else -> "unknown(<n>)".
std::string seccompModeName(int mode);

}  // namespace zastava
