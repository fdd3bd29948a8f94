// Plain, owning structs for the evidence read from /proc: one mapping line, one parsed status,
// one process of a container's tree, one loaded library. No behaviour beyond defaults; every
// string is owned, so values may be moved across threads freely. Here rather than in
// collectors/procfs because buffer/ writes them into records.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace zastava {

// Why a file was not hashed when a byte cap stopped it (ProcessInfo::unreadable["exeSha256"],
// LoadedLibrary::whyNot).
inline constexpr std::string_view kByteCapReached = "byte cap reached";

// One line of /proc/<pid>/maps.
struct MapsEntry {
  std::uint64_t start = 0;
  std::uint64_t end = 0;
  std::string perms;  // "r-xp"
  std::uint64_t offset = 0;
  std::string device;  // "fe:00" exactly as the kernel wrote it
  unsigned major = 0;
  unsigned minor = 0;
  std::uint64_t inode = 0;
  std::string path;      // empty for anonymous mappings; "[heap]" etc. for special ones
  bool deleted = false;  // the kernel appended " (deleted)"; path is without that suffix
};

// A distinct file-backed executable mapping (the main executable, ld.so, every library).
struct LibraryRef {
  std::string path;  // as the process sees it (inside its mount namespace), no " (deleted)"
  std::string device;
  unsigned major = 0;
  unsigned minor = 0;
  std::uint64_t inode = 0;
  bool deleted = false;
  std::uint64_t start = 0;  // first executable mapping of the file, names map_files/<start>-<end>
  std::uint64_t end = 0;
};

// The fields of /proc/<pid>/status the evidence needs.
struct ProcStatus {
  std::string name;
  int pid = 0;
  int ppid = 0;
  std::uint32_t uid = 0;  // real
  std::uint32_t euid = 0;
  std::uint32_t gid = 0;
  std::uint32_t egid = 0;
  std::optional<std::uint64_t> capEff;  // absent on kernels that do not print it
  std::vector<std::string> capEffNames;
  std::optional<int> seccomp;  // 0, 1, 2; absent without CONFIG_SECCOMP
  std::string seccompMode;     // "disabled" | "strict" | "filter" | "" when absent
  std::optional<bool> noNewPrivs;
  std::vector<int> nsPids;  // NSpid: outermost (the reader's namespace) first
};

// The fields of /proc/<pid>/stat the tree walk needs.
struct ProcStat {
  int pid = 0;
  std::string comm;
  char state = '?';
  int ppid = 0;
  std::uint32_t flags = 0;       // field 9, the kernel's PF_* flags (PF_EXITING: 0x4)
  long numThreads = 0;           // field 20
  std::uint64_t startTicks = 0;  // field 22; with pid, identifies a process across pid reuse
};

// Namespace inode numbers, 0 when unreadable (the reason is in ProcessInfo::unreadable).
struct NamespaceIds {
  std::uint64_t pid = 0;
  std::uint64_t mnt = 0;
  std::uint64_t net = 0;
  std::uint64_t ipc = 0;
  std::uint64_t uts = 0;
  std::uint64_t user = 0;
  std::uint64_t cgroup = 0;
};

struct ProcessInfo {
  int pid = 0;  // in the procfs root's pid namespace
  int ppid = 0;
  int nsPid = 0;  // in the process's own (innermost) pid namespace; 0 when unknown
  std::uint32_t uid = 0;
  std::uint32_t euid = 0;
  std::uint32_t gid = 0;
  std::uint32_t egid = 0;
  std::string comm;
  std::vector<std::string> cmdline;
  std::string exePath;  // readlink of exe, without " (deleted)"
  bool exeDeleted = false;
  std::string
      exeSha256;  // lowercase hex; empty when not hashed (reason in unreadable["exeSha256"])
  NamespaceIds namespaces;
  std::optional<std::uint64_t> capEff;
  std::vector<std::string> capEffNames;
  std::string seccompMode;
  std::optional<bool> noNewPrivs;
  std::string cgroupPath;
  std::string containerId;  // 64-hex id found in cgroupPath, or empty
  // Clock ticks after boot when it started (stat field 22); not in records: it tells a
  // container's init by its start where the cgroup names no container.
  std::optional<std::uint64_t> startTicks;
  // Field name -> why it could not be read, e.g. {"exe": "permission denied"}. Field names:
  // stat, status, cmdline, exe, exeSha256, cgroup, ns/<name>. Without status, the ids are
  // unknown (not 0); without stat and status, ppid and comm too.
  std::map<std::string, std::string> unreadable;
};

struct ProcessTree {
  int initPid = 0;
  std::vector<ProcessInfo> processes;  // init first, then breadth-first by pid
  bool truncated = false;              // maxProcesses was hit
  std::size_t omittedCount = 0;        // descendants seen but not read because of the cap
  std::size_t exitedDuringScan = 0;    // descendants exited (zombies) or gone while being read
  std::string discovery;               // "children" (task/*/children) or "scan" (all */stat)
};

struct LoadedLibrary {
  std::string path;
  std::string device;
  std::uint64_t inode = 0;
  bool deleted = false;
  std::uint64_t size = 0;
  std::string sha256;  // lowercase hex; empty when not hashed, then whyNot says why
  std::string whyNot;
  std::string openedVia;          // "root" (<pid>/root/<path>) or "map_files"
  bool identityVerified = false;  // the opened file's (device, inode) equals the mapping's
  bool cached = false;            // the hash came from the cache, no bytes read
  std::vector<int> mappedBy;      // the processes (of those read) that map it, in read order
};

struct LibraryEvidence {
  std::vector<LoadedLibrary> libraries;  // distinct by (device, inode), first-mapped order
  bool countCapHit = false;              // more files than maxLibraries: the rest not listed
  bool byteCapHit = false;               // maxBytes reached: the rest listed, not hashed
  std::size_t skippedCount = 0;          // libraries not hashed (or not listed) because of caps
  std::uint64_t bytesHashed = 0;         // read and hashed by this call (cache hits are free)
  // Processes after the first whose maps could not be read: pid -> why ("process exited", ...).
  std::map<int, std::string> unreadable;
};

}  // namespace zastava
