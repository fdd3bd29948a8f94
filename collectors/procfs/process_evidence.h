// Process and loaded-library evidence of a container, read from a procfs root ("/proc", or a
// fixture tree with the same layout in tests). The procfs root is the one seam: everything is
// read through it, so a pid means a pid in that procfs's pid namespace (what the engine reports
// as State.Pid when the agent shares the host's pid namespace). Nothing here fails a whole tree
// for one unreadable field: each field that could not be read is named with the reason.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "collectors/procfs/file_hasher.h"
#include "common/clock.h"
#include "common/evidence_types.h"
#include "common/result.h"

namespace zastava {

// How far a container's init may have started from the engine's StartedAt, where its cgroup
// cannot tell (TreeOptions::expectedStartedAt): it is created (runc create) before the engine
// records the start, and one started later is a stranger that reused the pid.
inline constexpr std::chrono::seconds kInitStartBefore{10};
inline constexpr std::chrono::seconds kInitStartAfter{1};

struct TreeOptions {
  std::size_t maxProcesses = 256;                    // init included
  std::uint64_t maxExeBytes = 512ULL * 1024 * 1024;  // bytes hashed for executables per call
  // When set, the init's cgroup path must name this container (a pid reused by another
  // process, or a pid from another namespace, would otherwise give evidence of a stranger).
  std::string expectedContainerId;
  // The container's StartedAt, for an init whose cgroup names no container at all (rootless
  // engines on cgroup v1 give their containers none): it must have started within
  // kInitStartBefore before it and kInitStartAfter after it. 0 when unknown: such an init is
  // refused.
  UnixNanos expectedStartedAt = 0;
};

struct LibraryLimits {
  std::size_t maxLibraries = 512;                 // distinct executable file mappings listed
  std::uint64_t maxBytes = 512ULL * 1024 * 1024;  // bytes read and hashed per call
};

// Reads /proc for one container at a time. Stateless apart from the borrowed hash cache, so one
// reader may be shared by the worker threads of a pool: any thread may call any member.
class ProcfsReader {
 public:
  static constexpr std::size_t kMaxMapsBytes = std::size_t{16} * 1024 * 1024;
  static constexpr std::size_t kMaxStatusBytes = std::size_t{64} * 1024;
  static constexpr std::size_t kMaxCmdlineBytes = std::size_t{256} * 1024;

  // `cache` must outlive the reader.
  ProcfsReader(std::string procRoot, FileHashCache& cache);
  ProcfsReader(const ProcfsReader&) = delete;
  ProcfsReader& operator=(const ProcfsReader&) = delete;

  // The init process and all its descendants, init first, then breadth-first with siblings by
  // pid. Descendants are found through <pid>/task/*/children (cost grows with the tree, not the
  // host); when the init has no such file (kernel without CONFIG_PROC_CHILDREN, or a fixture
  // tree) by one scan of <root>/*/stat (discovery says which). Executables are hashed through
  // <pid>/exe with the cache. Errors: kNotFound when the init has exited: "process exited: pid
  // N" when it was gone, exiting (in the kernel's exit path, which releases its exe, maps and
  // namespaces first) or a zombie (exited, not reaped yet) before it was read, "process exited
  // while being read: pid N" when it exited (or its pid came to name a newer process) while
  // being read; kInvalidArgument when expectedContainerId is set and the init's readable cgroup
  // path names another container, or names none and the init did not start at
  // expectedStartedAt. Descendants that have exited (zombies) or exit during the walk are
  // counted in exitedDuringScan, never an error.
  Result<ProcessTree> processTree(int initPid, const TreeOptions& options = {}) const;

  // One process's evidence; hashBudget is decreased by the bytes hashed for its executable.
  // Errors: kNotFound as processTree's for its init: an exiting process or a zombie has exited,
  // so the exe, namespaces and mappings it no longer has are never reported as unreadable.
  Result<ProcessInfo> process(int pid, std::uint64_t& hashBudget) const;

  // Whether `process`, as read by process() or processTree(), has not exited since: its pid is
  // still in the procfs, not exiting or a zombie, with the same start time (when that was
  // read). True when
  // its stat cannot be read or parsed for another reason than its absence (no evidence of an
  // exit).
  bool stillRunning(const ProcessInfo& process) const;

  // The distinct file-backed executable mappings of the processes `pids` (a container's tree,
  // init first; executables included), distinct by (device, inode), each hashed once. A file
  // is opened through <pid>/root/<path> of the first process mapping it (so the path resolves
  // in the process's mount namespace) and accepted when its (device, inode) equals the
  // mapping's; a deleted file, a path now naming another file, or an overlay path whose device
  // differs, is opened through <pid>/map_files/<start>-<end> instead (needs CAP_SYS_ADMIN or
  // CAP_CHECKPOINT_RESTORE); if that is refused too, the <pid>/root file is hashed with
  // identityVerified=false, or whyNot says what failed. Beyond maxLibraries or maxBytes (for
  // all of `pids` together) the rest are counted in skippedCount with countCapHit or
  // byteCapHit. Errors, from the first pid only: kNotFound "process exited: pid N"; kForbidden
  // when its maps cannot be read; kMalformed when they do not parse. A later pid that fails is
  // named in `unreadable`.
  Result<LibraryEvidence> loadedLibraries(const std::vector<int>& pids,
                                          const LibraryLimits& limits = {}) const;

 private:
  std::string pidPath(int pid, const std::string& leaf) const;
  // Children of pid through task/*/children; kNotFound when the files are not there.
  Result<std::vector<int>> childrenFromTasks(int pid) const;
  // pid -> children for every process, from one scan of <root>/*/stat.
  Result<std::vector<std::pair<int, int>>> scanParents() const;
  void readIdentity(int pid, ProcessInfo& info) const;
  // Whether the process of `stat` (its /proc/<pid>/stat) has exited or is exiting: its main
  // thread is in the kernel's exit path (PF_EXITING), a zombie or dead, and so is every other
  // thread it has.
  bool hasExited(int pid, const ProcStat& stat) const;
  // Whether `init` is the container's init (TreeOptions::expectedContainerId, expectedStartedAt).
  bool isContainerInit(const ProcessInfo& init, const TreeOptions& options) const;
  // When a process that started `startTicks` clock ticks after boot (stat field 22) started, in
  // UTC nanoseconds, to the second of the boot time in <root>/stat.
  Result<UnixNanos> startTime(std::uint64_t startTicks) const;
  // The executable file mappings of one process. Errors as loadedLibraries for that pid.
  Result<std::vector<LibraryRef>> executableMappings(int pid) const;
  // Hashes one mapping of `pid` within what is left of the byte budget.
  LoadedLibrary hashMapping(int pid, const LibraryRef& ref, std::uint64_t budget,
                            LibraryEvidence& out) const;

  const std::string root_;
  FileHashCache& cache_;
};

}  // namespace zastava
