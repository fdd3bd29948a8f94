#include "collectors/procfs/process_evidence.h"

#include <dirent.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string_view>

#include "collectors/procfs/proc_io.h"
#include "collectors/procfs/proc_parsers.h"

namespace zastava {
namespace {

constexpr std::size_t kMaxStatBytes = 4096;
// <root>/stat: a line per CPU, and an "intr" line per interrupt source before "btime".
constexpr std::size_t kMaxSystemStatBytes = std::size_t{1024} * 1024;
constexpr std::size_t kMaxCgroupBytes = std::size_t{64} * 1024;
constexpr std::size_t kMaxChildrenBytes = std::size_t{1024} * 1024;
constexpr std::array<std::string_view, 7> kNamespaces = {"pid", "mnt",  "net",   "ipc",
                                                         "uts", "user", "cgroup"};
constexpr std::string_view kDeletedSuffix = " (deleted)";

Error exited(int pid) {
  return Error{ErrorCode::kNotFound, "process exited: pid " + std::to_string(pid)};
}

Error exitedWhileRead(int pid) {
  return Error{ErrorCode::kNotFound, "process exited while being read: pid " + std::to_string(pid)};
}

// The kernel's PF_EXITING (include/linux/sched.h): set first thing in do_exit, before the task
// releases its memory (exe, maps) and namespaces and long before it becomes a zombie.
constexpr std::uint32_t kPfExiting = 0x4;

// The task is exiting or has exited: in the kernel's exit path, a zombie (not reaped yet by its
// parent) or dead. What /proc still shows of it is its identity, no executable, namespaces or
// mappings.
bool isExiting(const ProcStat& stat) {
  return stat.state == 'Z' || stat.state == 'X' || (stat.flags & kPfExiting) != 0;
}

std::string reasonOf(const Error& e) {
  return e.code == ErrorCode::kMalformed ? "malformed: " + e.message : e.message;
}

bool parsePid(std::string_view s, int& pid) {
  const auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), pid);
  return ec == std::errc() && ptr == s.data() + s.size() && pid > 0;
}

std::uint64_t& namespaceField(NamespaceIds& ids, std::string_view name) {
  if (name == "pid") return ids.pid;
  if (name == "mnt") return ids.mnt;
  if (name == "net") return ids.net;
  if (name == "ipc") return ids.ipc;
  if (name == "uts") return ids.uts;
  if (name == "user") return ids.user;
  return ids.cgroup;
}

struct DirCloser {  // a failed closedir of a directory only read loses nothing
  void operator()(DIR* d) const { ::closedir(d); }
};

// The numeric entries of a directory. On failure: errnoError of opendir.
Result<std::vector<int>> numericEntries(const std::string& dir) {
  std::unique_ptr<DIR, DirCloser> d(::opendir(dir.c_str()));
  if (!d) return errnoError(errno);
  std::vector<int> pids;
  while (const dirent* e = ::readdir(d.get())) {
    int pid = 0;
    if (parsePid(e->d_name, pid)) pids.push_back(pid);
  }
  std::sort(pids.begin(), pids.end());
  return pids;
}

}  // namespace

ProcfsReader::ProcfsReader(std::string procRoot, FileHashCache& cache)
    : root_(std::move(procRoot)), cache_(cache) {}

std::string ProcfsReader::pidPath(int pid, const std::string& leaf) const {
  return root_ + "/" + std::to_string(pid) + "/" + leaf;
}

void ProcfsReader::readIdentity(int pid, ProcessInfo& info) const {
  auto status = readProcFile(pidPath(pid, "status"), kMaxStatusBytes);
  auto parsed = status.ok() ? parseStatus(*status) : Result<ProcStatus>(status.error());
  if (!parsed.ok()) {
    info.unreadable["status"] = reasonOf(parsed.error());
    return;
  }
  if (info.comm.empty()) info.comm = parsed->name;
  if (info.ppid == 0) info.ppid = parsed->ppid;
  info.nsPid = parsed->nsPids.empty() ? 0 : parsed->nsPids.back();
  info.uid = parsed->uid;
  info.euid = parsed->euid;
  info.gid = parsed->gid;
  info.egid = parsed->egid;
  info.capEff = parsed->capEff;
  info.capEffNames = std::move(parsed->capEffNames);
  info.seccompMode = parsed->seccompMode;
  info.noNewPrivs = parsed->noNewPrivs;
}

Result<ProcessInfo> ProcfsReader::process(int pid, std::uint64_t& hashBudget) const {
  ProcessInfo info;
  info.pid = pid;
  const auto statText = readProcFile(pidPath(pid, "stat"), kMaxStatBytes);
  if (!statText.ok() && statText.error().code == ErrorCode::kNotFound) return exited(pid);
  auto stat = statText.ok() ? parseStat(*statText) : Result<ProcStat>(statText.error());
  if (stat.ok() && hasExited(pid, *stat)) return exited(pid);
  if (stat.ok()) {
    info.comm = stat->comm;
    info.ppid = stat->ppid;
    info.startTicks = stat->startTicks;
  } else {
    info.unreadable["stat"] = reasonOf(stat.error());
  }
  readIdentity(pid, info);

  const auto cmdline = readProcFile(pidPath(pid, "cmdline"), kMaxCmdlineBytes);
  if (cmdline.ok()) {
    info.cmdline = parseCmdline(*cmdline);
  } else {
    info.unreadable["cmdline"] = reasonOf(cmdline.error());
  }

  const auto exe = readLinkText(pidPath(pid, "exe"));
  if (exe.ok()) {
    info.exePath = *exe;
    if (info.exePath.ends_with(kDeletedSuffix)) {
      info.exePath.resize(info.exePath.size() - kDeletedSuffix.size());
      info.exeDeleted = true;
    }
    const auto hash = cache_.hashPath(pidPath(pid, "exe"), hashBudget);
    if (!hash.ok()) {
      info.unreadable["exeSha256"] = reasonOf(hash.error());
    } else if (hash->overBudget) {
      info.unreadable["exeSha256"] = kByteCapReached;
    } else {
      info.exeSha256 = hash->sha256;
      hashBudget -= std::min(hashBudget, hash->bytesRead);
    }
  } else {
    info.unreadable["exe"] = reasonOf(exe.error());
  }

  for (const auto name : kNamespaces) {
    const std::string leaf = "ns/" + std::string(name);
    const auto link = readLinkText(pidPath(pid, leaf));
    auto inode = link.ok() ? parseNamespaceLink(*link) : Result<std::uint64_t>(link.error());
    if (inode.ok()) {
      namespaceField(info.namespaces, name) = *inode;
    } else {
      info.unreadable[leaf] = reasonOf(inode.error());
    }
  }

  const auto cgroupText = readProcFile(pidPath(pid, "cgroup"), kMaxCgroupBytes);
  auto cgroup =
      cgroupText.ok() ? parseCgroupPath(*cgroupText) : Result<std::string>(cgroupText.error());
  if (cgroup.ok()) {
    info.cgroupPath = *cgroup;
    info.containerId = containerIdFromCgroupPath(info.cgroupPath);
  } else {
    info.unreadable["cgroup"] = reasonOf(cgroup.error());
  }

  // The fields above belong to one running process only if it is still that one now: a process
  // that exited in between lost its exe, namespaces and mappings, which are then "not found".
  if (!stillRunning(info)) return exitedWhileRead(pid);
  return info;
}

bool ProcfsReader::stillRunning(const ProcessInfo& process) const {
  const auto text = readProcFile(pidPath(process.pid, "stat"), kMaxStatBytes);
  if (!text.ok()) return text.error().code != ErrorCode::kNotFound;
  const auto stat = parseStat(*text);
  if (!stat.ok()) return true;
  if (hasExited(process.pid, *stat)) return false;
  return !process.startTicks || stat->startTicks == *process.startTicks;
}

bool ProcfsReader::hasExited(int pid, const ProcStat& stat) const {
  if (!isExiting(stat)) return false;
  if (stat.numThreads <= 1) return true;
  // Its main thread exited (pthread_exit), or all its threads are exiting: it runs on as long as
  // one of the others is not.
  const auto tids = numericEntries(pidPath(pid, "task"));
  if (!tids.ok()) return tids.error().code == ErrorCode::kNotFound;
  for (const int tid : *tids) {
    if (tid == pid) continue;
    const auto text =
        readProcFile(pidPath(pid, "task/" + std::to_string(tid) + "/stat"), kMaxStatBytes);
    if (!text.ok()) continue;  // that thread is gone
    const auto thread = parseStat(*text);
    if (!thread.ok() || !isExiting(*thread)) return false;
  }
  return true;
}

bool ProcfsReader::isContainerInit(const ProcessInfo& init, const TreeOptions& options) const {
  if (!init.containerId.empty()) return init.containerId == options.expectedContainerId;
  if (options.expectedStartedAt == 0 || !init.startTicks) return false;
  const auto started = startTime(*init.startTicks);
  if (!started.ok()) return false;
  const std::chrono::nanoseconds fromContainerStart(*started - options.expectedStartedAt);
  return fromContainerStart >= -kInitStartBefore && fromContainerStart <= kInitStartAfter;
}

Result<UnixNanos> ProcfsReader::startTime(std::uint64_t startTicks) const {
  const auto statText = readProcFile(root_ + "/stat", kMaxSystemStatBytes);
  if (!statText.ok()) return statText.error();
  const auto bootTime = parseBootTime(*statText);
  if (!bootTime.ok()) return bootTime.error();
  constexpr UnixNanos kNanosPerSecond = 1'000'000'000;
  static const long ticksPerSecond = ::sysconf(_SC_CLK_TCK);
  return *bootTime * kNanosPerSecond +
         static_cast<UnixNanos>(startTicks) * (kNanosPerSecond / ticksPerSecond);
}

Result<std::vector<int>> ProcfsReader::childrenFromTasks(int pid) const {
  const auto tids = numericEntries(pidPath(pid, "task"));
  if (!tids.ok()) return tids.error();
  std::set<int> children;
  bool anyFile = false;
  for (const int tid : *tids) {
    const auto text =
        readProcFile(pidPath(pid, "task/" + std::to_string(tid) + "/children"), kMaxChildrenBytes);
    if (!text.ok()) continue;  // the thread exited, or the kernel has no children files
    anyFile = true;
    std::string_view rest = *text;
    while (!rest.empty()) {
      const auto space = rest.find_first_of(" \n");
      int child = 0;
      if (parsePid(rest.substr(0, space), child)) children.insert(child);
      if (space == std::string_view::npos) break;
      rest.remove_prefix(space + 1);
    }
  }
  if (!anyFile) return Error{ErrorCode::kNotFound, "no task/*/children files"};
  return std::vector<int>(children.begin(), children.end());
}

Result<std::vector<std::pair<int, int>>> ProcfsReader::scanParents() const {
  const auto pids = numericEntries(root_);
  if (!pids.ok()) return pids.error();
  std::vector<std::pair<int, int>> parentOf;  // (ppid, pid), sorted
  for (const int pid : *pids) {
    const auto text = readProcFile(pidPath(pid, "stat"), kMaxStatBytes);
    if (!text.ok()) continue;
    const auto stat = parseStat(*text);
    if (stat.ok()) parentOf.emplace_back(stat->ppid, pid);
  }
  std::sort(parentOf.begin(), parentOf.end());
  return parentOf;
}

Result<ProcessTree> ProcfsReader::processTree(int initPid, const TreeOptions& options) const {
  std::uint64_t hashBudget = options.maxExeBytes;
  auto init = process(initPid, hashBudget);
  if (!init.ok()) return init.error();
  if (!options.expectedContainerId.empty() && init->unreadable.count("cgroup") == 0 &&
      !isContainerInit(*init, options)) {
    return Error{ErrorCode::kInvalidArgument,
                 "pid " + std::to_string(initPid) + " is not in container " +
                     options.expectedContainerId.substr(0, 12) + " (cgroup '" + init->cgroupPath +
                     "'" + (init->containerId.empty() ? ", and it did not start with it)" : ")")};
  }
  ProcessTree tree;
  tree.initPid = initPid;
  tree.processes.push_back(std::move(init.value()));

  std::vector<std::pair<int, int>> parentOf;
  const auto initChildren = childrenFromTasks(initPid);
  if (initChildren.ok()) {
    tree.discovery = "children";
  } else {
    auto scanned = scanParents();
    if (!scanned.ok()) return scanned.error();
    parentOf = std::move(scanned.value());
    tree.discovery = "scan";
  }
  const auto childrenOf = [&](int pid) -> std::vector<int> {
    if (tree.discovery == "children") {
      if (pid == initPid) return *initChildren;
      auto kids = childrenFromTasks(pid);
      return kids.ok() ? std::move(kids.value()) : std::vector<int>{};
    }
    std::vector<int> kids;
    auto it = std::lower_bound(parentOf.begin(), parentOf.end(), std::make_pair(pid, 0));
    for (; it != parentOf.end() && it->first == pid; ++it) kids.push_back(it->second);
    return kids;
  };

  std::set<int> visited{initPid};
  std::deque<int> queue;
  for (const int kid : childrenOf(initPid)) queue.push_back(kid);
  while (!queue.empty()) {
    const int pid = queue.front();
    queue.pop_front();
    if (!visited.insert(pid).second) continue;
    if (tree.processes.size() >= options.maxProcesses) {
      tree.truncated = true;
      ++tree.omittedCount;
      continue;
    }
    auto info = process(pid, hashBudget);
    if (!info.ok()) {
      ++tree.exitedDuringScan;  // only kNotFound comes back from process()
      continue;
    }
    tree.processes.push_back(std::move(info.value()));
    for (const int kid : childrenOf(pid)) queue.push_back(kid);
  }
  return tree;
}

}  // namespace zastava
