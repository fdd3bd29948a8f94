#include "collectors/procfs/process_evidence.h"

#include <doctest/doctest.h>
#include <grp.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <set>
#include <sstream>
#include <string>

#include "collectors/procfs/proc_parsers.h"
#include "tests/procfs/procfs_test_support.h"

namespace zastava {
namespace {

using testing::Child;
using testing::readFile;
using testing::sha256OfFile;

std::string realPath(const std::string& path) {
  char buffer[PATH_MAX];
  return ::realpath(path.c_str(), buffer) != nullptr ? std::string(buffer) : path;
}

// The inode of a namespace link such as /proc/self/ns/pid, read without the code under test.
std::uint64_t namespaceInode(const std::string& link) {
  char buffer[256];
  const ssize_t n = ::readlink(link.c_str(), buffer, sizeof buffer - 1);
  if (n <= 0) return 0;
  const std::string text(buffer, static_cast<std::size_t>(n));
  const auto open = text.find('[');
  return open == std::string::npos ? 0 : std::stoull(text.substr(open + 1));
}

std::set<std::string> libraryPaths(const LibraryEvidence& evidence) {
  std::set<std::string> paths;
  for (const auto& lib : evidence.libraries) paths.insert(lib.path);
  return paths;
}

TEST_CASE("processTree of a real child: identity, exe hash, namespaces, cgroup") {
  Child child({"/bin/sleep", "60"});
  REQUIRE(child.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(child.pid());
  REQUIRE(tree.ok());
  CHECK(tree->discovery == "children");
  CHECK_FALSE(tree->truncated);
  REQUIRE(tree->processes.size() == 1);
  const auto& p = tree->processes.front();
  CHECK(p.unreadable.empty());
  CHECK(p.pid == child.pid());
  CHECK(p.ppid == ::getpid());
  CHECK(p.nsPid == child.pid());
  CHECK(p.comm == "sleep");
  CHECK(p.cmdline == std::vector<std::string>{"/bin/sleep", "60"});
  CHECK(p.exePath == realPath("/bin/sleep"));
  CHECK_FALSE(p.exeDeleted);
  CHECK(p.exeSha256 == sha256OfFile("/bin/sleep"));
  CHECK(p.uid == ::getuid());
  CHECK(p.gid == ::getgid());
  CHECK(p.seccompMode == "disabled");
  CHECK(p.capEff.has_value());
  CHECK(p.namespaces.pid == namespaceInode("/proc/self/ns/pid"));
  CHECK(p.namespaces.mnt == namespaceInode("/proc/self/ns/mnt"));
  CHECK(p.namespaces.net == namespaceInode("/proc/self/ns/net"));
  CHECK(p.namespaces.user == namespaceInode("/proc/self/ns/user"));
  CHECK(p.namespaces.cgroup == namespaceInode("/proc/self/ns/cgroup"));
  CHECK(p.cgroupPath == parseCgroupPath(readFile("/proc/self/cgroup")).value());
  // A second tree hashes nothing: the executable comes from the cache.
  const auto before = cache.stats();
  REQUIRE(reader.processTree(child.pid()).ok());
  CHECK(cache.stats().hits == before.hits + 1);
  CHECK(cache.stats().bytesHashed == before.bytesHashed);
}

TEST_CASE("an init whose cgroup names no container is the container's only if it started with it") {
  // The tests' own cgroup names no container, as a rootless engine's containers on cgroup v1.
  const std::string ownCgroup = parseCgroupPath(readFile("/proc/self/cgroup")).value();
  if (!containerIdFromCgroupPath(ownCgroup).empty()) {
    MESSAGE("skipped: the tests run in a container's cgroup, " << ownCgroup);
    return;
  }
  const auto beforeFork = std::chrono::duration_cast<std::chrono::nanoseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
  Child child({"/bin/sleep", "60"});
  REQUIRE(child.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  auto startedAt = [&](std::chrono::milliseconds fromFork) {
    TreeOptions options = testing::expectingContainer(std::string(64, 'a'));
    options.expectedStartedAt = beforeFork + fromFork.count() * 1'000'000;
    return reader.processTree(child.pid(), options);
  };
  // The engine records StartedAt a little after the init process was created.
  CHECK(startedAt(std::chrono::milliseconds(100)).ok());
  const auto reused = startedAt(std::chrono::milliseconds(-60'000));  // started long after it
  REQUIRE_FALSE(reused.ok());
  CHECK(reused.error().code == ErrorCode::kInvalidArgument);
  CHECK(reused.error().message.find("did not start with it") != std::string::npos);
  CHECK_FALSE(startedAt(std::chrono::milliseconds(60'000)).ok());  // long before it
  CHECK_FALSE(reader.processTree(child.pid(), testing::expectingContainer(std::string(64, 'a')))
                  .ok());  // StartedAt unknown
}

TEST_CASE("processTree finds descendants breadth-first and honours maxProcesses") {
  Child child({"/bin/sh", "-c", "/bin/sleep 60 & /bin/sleep 61 & wait"});
  const std::string childrenFile =
      "/proc/" + std::to_string(child.pid()) + "/task/" + std::to_string(child.pid()) + "/children";
  // Both children listed and both done with exec (a forked child is briefly still "sh").
  for (int i = 0; i < 500; ++i) {
    std::istringstream children(readFile(childrenFile));
    int sleeping = 0;
    for (int kid; children >> kid;) {
      sleeping +=
          readFile("/proc/" + std::to_string(kid) + "/stat").find("(sleep) S") != std::string::npos;
    }
    if (sleeping == 2) break;
    ::usleep(10000);
  }
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(child.pid());
  REQUIRE(tree.ok());
  REQUIRE(tree->processes.size() == 3);
  CHECK(tree->processes[0].pid == child.pid());
  for (std::size_t i = 1; i < 3; ++i) {
    CHECK(tree->processes[i].ppid == child.pid());
    CHECK(tree->processes[i].exeSha256 == sha256OfFile("/bin/sleep"));
  }
  CHECK(tree->processes[1].pid < tree->processes[2].pid);
  CHECK(tree->processes[0].exeSha256 == sha256OfFile(realPath("/bin/sh")));

  const auto capped = reader.processTree(child.pid(), testing::atMostProcesses(2));
  REQUIRE(capped.ok());
  CHECK(capped->processes.size() == 2);
  CHECK(capped->truncated);
  CHECK(capped->omittedCount == 1);
}

TEST_CASE("loadedLibraries equals the executable mappings the test reads, hashed once") {
  Child child({"/bin/sleep", "60"});
  REQUIRE(child.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto libs = reader.loadedLibraries({child.pid()});
  REQUIRE(libs.ok());
  const auto expected =
      testing::executablePathsOf(readFile("/proc/" + std::to_string(child.pid()) + "/maps"));
  CHECK(expected.size() >= 3);  // sleep, libc, ld.so
  CHECK(libraryPaths(*libs) == expected);
  CHECK(libs->libraries.size() == expected.size());
  CHECK_FALSE(libs->countCapHit);
  CHECK_FALSE(libs->byteCapHit);
  std::uint64_t total = 0;
  for (const auto& lib : libs->libraries) {
    CAPTURE(lib.path);
    CHECK(lib.whyNot.empty());
    CHECK(lib.openedVia == "root");
    CHECK(lib.identityVerified);
    CHECK(lib.sha256 == sha256OfFile(lib.path));
    total += lib.size;
  }
  CHECK(libs->bytesHashed == total);

  const auto again = reader.loadedLibraries({child.pid()});
  REQUIRE(again.ok());
  CHECK(again->bytesHashed == 0);
  for (const auto& lib : again->libraries) CHECK(lib.cached);
  CHECK(cache.stats().hits == expected.size());
  CHECK(cache.stats().filesHashed == expected.size());
}

TEST_CASE("loadedLibraries caps on count and bytes, and counts what it skipped") {
  Child child({"/bin/sleep", "60"});
  REQUIRE(child.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto all = reader.loadedLibraries({child.pid()});
  REQUIRE(all.ok());
  const auto n = all->libraries.size();

  const auto byCount = reader.loadedLibraries({child.pid()}, testing::atMostLibraries(1));
  REQUIRE(byCount.ok());
  CHECK(byCount->libraries.size() == 1);
  CHECK(byCount->countCapHit);
  CHECK_FALSE(byCount->byteCapHit);
  CHECK(byCount->skippedCount == n - 1);

  FileHashCache cold(testing::hashTimingClock());
  ProcfsReader coldReader("/proc", cold);
  const auto byBytes = coldReader.loadedLibraries({child.pid()}, testing::atMostBytes(1));
  REQUIRE(byBytes.ok());
  CHECK(byBytes->byteCapHit);
  CHECK_FALSE(byBytes->countCapHit);
  CHECK(byBytes->skippedCount == n);
  CHECK(byBytes->bytesHashed == 0);
  for (const auto& lib : byBytes->libraries) CHECK(lib.whyNot == "byte cap reached");
}

TEST_CASE("loadedLibraries over several processes: each file once, with the pids mapping it") {
  Child first({"/bin/sleep", "60"});
  Child second({"/bin/sleep", "61"});
  Child gone({"/bin/true"});
  const int gonePid = gone.reap();
  REQUIRE(first.waitUntilSleeping());
  REQUIRE(second.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto libs = reader.loadedLibraries({first.pid(), gonePid, second.pid()});
  REQUIRE(libs.ok());
  const auto expected =
      testing::executablePathsOf(readFile("/proc/" + std::to_string(first.pid()) + "/maps"));
  CHECK(libraryPaths(*libs) == expected);
  CHECK(libs->libraries.size() == expected.size());  // the same files, listed once
  for (const auto& lib : libs->libraries) {
    CAPTURE(lib.path);
    CHECK(lib.mappedBy == std::vector<int>{first.pid(), second.pid()});
    CHECK(lib.sha256 == sha256OfFile(lib.path));
  }
  REQUIRE(libs->unreadable.size() == 1);
  CHECK(libs->unreadable.at(gonePid).rfind("process exited", 0) == 0);

  const auto firstGone = reader.loadedLibraries({gonePid, first.pid()});
  REQUIRE_FALSE(firstGone.ok());
  CHECK(firstGone.error().code == ErrorCode::kNotFound);
}

TEST_CASE("a process that exited is kNotFound 'process exited', not an error of the reader") {
  Child child({"/bin/true"});
  const int pid = child.reap();  // the pid is gone from /proc
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(pid);
  REQUIRE_FALSE(tree.ok());
  CHECK(tree.error().code == ErrorCode::kNotFound);
  CHECK(tree.error().message.rfind("process exited", 0) == 0);
  const auto libs = reader.loadedLibraries({pid});
  REQUIRE_FALSE(libs.ok());
  CHECK(libs.error().code == ErrorCode::kNotFound);
  CHECK(libs.error().message.rfind("process exited", 0) == 0);
}

TEST_CASE("a zombie has exited: kNotFound 'process exited', no field reported unreadable") {
  // Exited, not reaped yet: /proc still has its stat, status and cgroup, but no exe,
  // namespaces or mappings (what a container's init looks like until the shim reaps it).
  Child zombie({"/bin/true"});
  REQUIRE(zombie.waitUntilZombie());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(zombie.pid());
  REQUIRE_FALSE(tree.ok());
  CHECK(tree.error().code == ErrorCode::kNotFound);
  CHECK(tree.error().message == "process exited: pid " + std::to_string(zombie.pid()));
  std::uint64_t budget = 1 << 20;
  CHECK_FALSE(reader.process(zombie.pid(), budget).ok());
}

TEST_CASE("a process in the kernel's exit path has exited, though it is no zombie yet") {
  // A PID namespace's init that exited while a process of its namespace is unreaped: its exe,
  // maps and namespaces are released, it waits (state S, PF_EXITING) to become a zombie.
  testing::ExitingPidNamespaceInit init;
  REQUIRE(init.waitUntilExiting());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(init.pid());
  REQUIRE_FALSE(tree.ok());
  CHECK(tree.error().code == ErrorCode::kNotFound);
  CHECK(tree.error().message == "process exited: pid " + std::to_string(init.pid()));
  ProcessInfo seen;
  seen.pid = init.pid();
  CHECK_FALSE(reader.stillRunning(seen));
}

// The thread a child starts before its main thread exits: the process runs on, while its main
// thread, whose pid is the process's, shows Z and PF_EXITING.
void* waitForEver(void*) {
  for (;;) ::pause();
}

TEST_CASE("a process whose main thread exited runs on: not taken for exited") {
  const pid_t pid = ::fork();
  if (pid == 0) {
    pthread_t thread;
    if (::pthread_create(&thread, nullptr, &waitForEver, nullptr) != 0) ::_exit(1);
    ::syscall(SYS_exit, 0);  // this thread only, and no unwinding through the test's frames
  }
  REQUIRE(pid > 0);
  const bool leaderExited = testing::waitUntilState(pid, 'Z');
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(pid);
  ProcessInfo seen;
  seen.pid = pid;
  const bool running = reader.stillRunning(seen);
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, 0);
  REQUIRE(leaderExited);
  CHECK(running);
  REQUIRE(tree.ok());  // listed; what its exited main thread no longer has is unreadable
  CHECK(tree->processes.front().unreadable.count("exe") == 1);
}

TEST_CASE("a zombie descendant has exited: counted in exitedDuringScan, not listed") {
  // sh starts true in the background and execs sleep, which never reaps it.
  Child parent({"/bin/sh", "-c", "/bin/true & exec /bin/sleep 60"});
  const int zombie = testing::waitForZombieChild(parent.pid());
  REQUIRE(zombie > 0);
  REQUIRE(parent.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(parent.pid());
  REQUIRE(tree.ok());
  REQUIRE(tree->processes.size() == 1);
  CHECK(tree->processes.front().pid == parent.pid());
  CHECK(tree->processes.front().unreadable.empty());
  CHECK(tree->exitedDuringScan == 1);
}

TEST_CASE("stillRunning: false once the process read has exited, as a zombie or reaped") {
  Child child({"/bin/sleep", "60"});
  REQUIRE(child.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  std::uint64_t budget = 1 << 30;
  const auto read = reader.process(child.pid(), budget);
  REQUIRE(read.ok());
  REQUIRE(read->startTicks);
  CHECK(reader.stillRunning(*read));
  ProcessInfo newer = *read;  // what the pid would name after a reuse: a later start
  newer.startTicks = *read->startTicks + 1;
  CHECK_FALSE(reader.stillRunning(newer));

  ::kill(child.pid(), SIGKILL);  // exits after it was read; not reaped yet
  REQUIRE(child.waitUntilZombie());
  CHECK_FALSE(reader.stillRunning(*read));
  child.reap();
  CHECK_FALSE(reader.stillRunning(*read));
}

TEST_CASE("a deleted executable is hashed through exe and map_files") {
  char pattern[] = "/tmp/pf-deleted-XXXXXX";
  const int fd = ::mkstemp(pattern);
  REQUIRE(fd >= 0);
  ::close(fd);
  const std::string copy = pattern;
  int status = 0;
  testing::runCommand("cp /bin/sleep " + copy + " && chmod 755 " + copy, status);
  REQUIRE(status == 0);
  Child child({copy, "60"});
  REQUIRE(child.waitUntilSleeping());
  ::unlink(copy.c_str());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(child.pid());
  REQUIRE(tree.ok());
  const auto& p = tree->processes.front();
  CHECK(p.exeDeleted);
  CHECK(p.exePath == copy);
  CHECK(p.exeSha256 == sha256OfFile("/bin/sleep"));
  const auto libs = reader.loadedLibraries({child.pid()});
  REQUIRE(libs.ok());
  REQUIRE_FALSE(libs->libraries.empty());
  const auto& exe = libs->libraries.front();
  CHECK(exe.path == copy);
  CHECK(exe.deleted);
  CHECK(exe.openedVia == "map_files");
  CHECK(exe.identityVerified);
  CHECK(exe.sha256 == sha256OfFile("/bin/sleep"));
}

TEST_CASE("without permission, each unreadable field is named with the reason") {
  REQUIRE(::getuid() == 0);  // the test drops to nobody in a child to see a root process
  Child target({"/bin/sleep", "60"});
  REQUIRE(target.waitUntilSleeping());
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  const pid_t reader = ::fork();
  if (reader == 0) {
    ::close(fds[0]);
    std::string out;
    if (::setgroups(0, nullptr) == 0 && ::setgid(65534) == 0 && ::setuid(65534) == 0) {
      FileHashCache cache(testing::hashTimingClock());
      ProcfsReader procfs("/proc", cache);
      const auto tree = procfs.processTree(target.pid());
      if (tree.ok()) {
        for (const auto& [field, why] : tree->processes.front().unreadable) {
          out += field + "=" + why + ";";
        }
        out += "comm=" + tree->processes.front().comm + ";";
      } else {
        out = "tree error: " + tree.error().message;
      }
      const auto libs = procfs.loadedLibraries({target.pid()});
      out += libs.ok() ? "libs=ok" : "libs=" + std::string(errorCodeName(libs.error().code));
    } else {
      out = "could not drop privileges";
    }
    (void)!::write(fds[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string got;
  char buffer[4096];
  for (ssize_t n; (n = ::read(fds[0], buffer, sizeof buffer)) > 0;) {
    got.append(buffer, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  ::waitpid(reader, nullptr, 0);
  CHECK(got ==
        "exe=permission denied;ns/cgroup=permission denied;ns/ipc=permission denied;"
        "ns/mnt=permission denied;ns/net=permission denied;ns/pid=permission denied;"
        "ns/user=permission denied;ns/uts=permission denied;comm=sleep;libs=forbidden");
}

TEST_CASE("a captured procfs tree: descendants by scanning stat, missing files recorded") {
  const std::string id = testing::readProcfsFixture("container-id.txt").substr(0, 64);
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader(testing::procfsFixtureDir() + "/tree", cache);
  const auto tree = reader.processTree(15462, testing::expectingContainer(id));
  REQUIRE(tree.ok());
  CHECK(tree->discovery == "scan");
  REQUIRE(tree->processes.size() == 3);  // 15505 is a host process, not a descendant
  CHECK(tree->processes[0].pid == 15462);
  CHECK(tree->processes[1].pid == 15474);
  CHECK(tree->processes[2].pid == 15475);
  const auto& init = tree->processes[0];
  CHECK(init.cmdline == std::vector<std::string>{"sh", "-c", "sleep 300 & sleep 301 & wait"});
  CHECK(init.nsPid == 1);
  CHECK(init.seccompMode == "filter");
  CHECK(init.containerId == id);
  CHECK(init.cgroupPath == "/docker/" + id);
  CHECK(init.unreadable.at("exe") == "not found");
  CHECK(init.unreadable.at("ns/pid") == "not found");
  CHECK(init.unreadable.count("status") == 0);
  CHECK(tree->processes[1].comm == "sleep");
  CHECK(tree->processes[1].cmdline == std::vector<std::string>{"sleep", "300"});

  const auto other = reader.processTree(15462, testing::expectingContainer(std::string(64, 'a')));
  REQUIRE_FALSE(other.ok());
  CHECK(other.error().code == ErrorCode::kInvalidArgument);
  const auto gone = reader.processTree(99999);
  REQUIRE_FALSE(gone.ok());
  CHECK(gone.error().code == ErrorCode::kNotFound);
}

}  // namespace
}  // namespace zastava
