// Helpers for the procfs tests: fixtures, an independent SHA-256, child processes, the docker CLI.
#pragma once

#include <fcntl.h>
#include <openssl/evp.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "collectors/procfs/proc_parsers.h"
#include "collectors/procfs/process_evidence.h"
#include "tests/support/manual_clock.h"

namespace zastava::testing {

// The clock a FileHashCache times its hashing with; these tests do not look at the time.
inline const Clock& hashTimingClock() {
  static const ManualClock clock;
  return clock;
}

inline std::string procfsFixtureDir() { return std::string(ZASTAVA_FIXTURES_DIR) + "/procfs"; }

// The whole file; empty when it cannot be read (tests then fail on the content).
inline std::string readFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

inline std::string readProcfsFixture(const std::string& name) {
  return readFile(procfsFixtureDir() + "/" + name);
}

// SHA-256 of the whole file read into memory with one-shot EVP_Digest (not the code under test).
inline std::string sha256OfFile(const std::string& path) {
  const std::string bytes = readFile(path);
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned length = 0;
  if (bytes.empty() ||
      EVP_Digest(bytes.data(), bytes.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    return "unreadable:" + path;
  }
  std::string hex;
  char two[3];
  for (unsigned i = 0; i < length; ++i) {
    std::snprintf(two, sizeof two, "%02x", digest[i]);
    hex += two;
  }
  return hex;
}

// The paths of executable, file-backed mappings in a maps text, read the simple way.
inline std::set<std::string> executablePathsOf(const std::string& maps) {
  std::set<std::string> paths;
  std::istringstream in(maps);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, dev, inode;
    fields >> range >> perms >> offset >> dev >> inode;
    std::string path;
    std::getline(fields >> std::ws, path);
    if (perms.size() == 4 && perms[2] == 'x' && inode != "0" && !path.empty() && path[0] == '/') {
      paths.insert(path);
    }
  }
  return paths;
}

// Waits (bounded, 5 s) until the process's state in /proc/<pid>/stat is `state`. False when it
// never was.
inline bool waitUntilState(int pid, char state) {
  for (int i = 0; i < 500; ++i) {
    const auto stat = readFile("/proc/" + std::to_string(pid) + "/stat");
    const auto close = stat.rfind(')');
    if (close != std::string::npos && close + 2 < stat.size() && stat[close + 2] == state) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Waits (bounded, 5 s) until the process sleeps: it has exec'd and finished loading. False when
// it never did.
inline bool waitUntilSleeping(int pid) { return waitUntilState(pid, 'S'); }

// The children of pid, from /proc/<pid>/task/<pid>/children (a single-threaded process).
inline std::vector<int> childrenOf(int pid) {
  std::istringstream in(
      readFile("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) + "/children"));
  std::vector<int> kids;
  for (int kid = 0; in >> kid;) kids.push_back(kid);
  return kids;
}

// Waits (bounded, 5 s) until pid has exactly one child and it is a zombie (exited, not reaped);
// returns that child's pid, or 0 when it never was.
inline int waitForZombieChild(int pid) {
  for (int i = 0; i < 500; ++i) {
    const auto kids = childrenOf(pid);
    if (kids.size() == 1 && waitUntilState(kids.front(), 'Z')) return kids.front();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return 0;
}

// A child process running argv in its own process group; the group is killed and the child
// reaped on destruction.
class Child {
 public:
  explicit Child(std::vector<std::string> argv) {
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);  // its own group, so stop() also ends what it started
      std::vector<char*> args;
      for (auto& a : argv) args.push_back(a.data());
      args.push_back(nullptr);
      ::execv(args[0], args.data());
      ::_exit(127);
    }
  }
  ~Child() { stop(); }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  int pid() const { return pid_; }
  // Kills and reaps the child; afterwards its pid is gone from /proc.
  void stop() {
    if (pid_ > 0) {
      ::kill(-pid_, SIGKILL);
      ::kill(pid_, SIGKILL);
      ::waitpid(pid_, nullptr, 0);
      pid_ = -1;
    }
  }
  // Waits for the child to exit and reaps it (its pid then names nothing); returns that pid.
  int reap() {
    const int pid = pid_;
    if (pid_ > 0) ::waitpid(pid_, nullptr, 0);
    pid_ = -1;
    return pid;
  }
  // Waits (bounded) until the child sleeps, i.e. exec and dynamic loading are done.
  bool waitUntilSleeping() const { return testing::waitUntilSleeping(pid_); }
  // Waits (bounded) until the child has exited and is a zombie: not reaped, so its pid stays
  // in /proc (state Z) without an executable, namespaces or mappings, until stop() or reap().
  bool waitUntilZombie() const { return testing::waitUntilState(pid_, 'Z'); }

 private:
  int pid_ = -1;
};

// A process held in the kernel's exit path, as a container's init is between its exit and its
// becoming a zombie: its stat says PF_EXITING, not Z, while its exe, maps and namespaces are
// gone. It is the init of a new PID namespace, and a process that another child of this one
// forked into that namespace (setns, as `docker exec` does) has exited and is not reaped yet:
// the exiting init waits until it is (zap_pid_ns_processes). Needs root. The destructor lets it
// finish and reaps everything.
class ExitingPidNamespaceInit {
 public:
  ExitingPidNamespaceInit() {
    if (::pipe2(initGo_, O_CLOEXEC) != 0 || ::pipe2(joinerGo_, O_CLOEXEC) != 0 ||
        ::pipe2(joined_, O_CLOEXEC) != 0) {
      return;
    }
    init_ = ::clone(&initMain, stack_.data() + stack_.size(), CLONE_NEWPID | SIGCHLD, initGo_);
    if (init_ <= 0) return;
    joiner_ = ::fork();
    if (joiner_ == 0) {
      const int ns = ::open(("/proc/" + std::to_string(init_) + "/ns/pid").c_str(), O_RDONLY);
      if (ns < 0 || ::setns(ns, CLONE_NEWPID) != 0) ::_exit(1);
      const pid_t member = ::fork();
      if (member == 0) ::_exit(0);  // exits at once, reaped only when the test lets it
      char c = member > 0 ? 'y' : 'n';
      if (::write(joined_[1], &c, 1) != 1) ::_exit(1);
      if (::read(joinerGo_[0], &c, 1) < 0) ::_exit(1);
      ::waitpid(member, nullptr, 0);
      ::_exit(0);
    }
    char joined = 'n';
    if (joiner_ < 0 || ::read(joined_[0], &joined, 1) != 1 || joined != 'y') return;
    ok_ = ::write(initGo_[1], "x", 1) == 1;  // the init exits, and waits for the member
  }
  ~ExitingPidNamespaceInit() {
    if (joiner_ > 0) {
      (void)!::write(joinerGo_[1], "x", 1);
      ::waitpid(joiner_, nullptr, 0);
    }
    if (init_ > 0) {
      (void)!::write(initGo_[1], "x", 1);
      ::waitpid(init_, nullptr, 0);
    }
    for (int fd : {initGo_[0], initGo_[1], joinerGo_[0], joinerGo_[1], joined_[0], joined_[1]}) {
      if (fd >= 0) ::close(fd);
    }
  }
  ExitingPidNamespaceInit(const ExitingPidNamespaceInit&) = delete;
  ExitingPidNamespaceInit& operator=(const ExitingPidNamespaceInit&) = delete;
  int pid() const { return init_; }
  // Waits (bounded, 5 s) until the init is in the exit path: PF_EXITING set, not a zombie.
  bool waitUntilExiting() const {
    for (int i = 0; ok_ && i < 500; ++i) {
      const auto stat = parseStat(readFile("/proc/" + std::to_string(init_) + "/stat"));
      if (stat.ok() && (stat->flags & 0x4) != 0 && stat->state != 'Z') return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

 private:
  static int initMain(void* arg) {
    char c;
    (void)!::read(static_cast<int*>(arg)[0], &c, 1);
    ::_exit(0);
  }

  std::vector<char> stack_ = std::vector<char>(256 * 1024);
  int initGo_[2] = {-1, -1};
  int joinerGo_[2] = {-1, -1};
  int joined_[2] = {-1, -1};
  pid_t init_ = -1;
  pid_t joiner_ = -1;
  bool ok_ = false;
};

// Runs a shell command; returns its stdout without trailing newlines, and its exit status.
inline std::string runCommand(const std::string& command, int& status) {
  std::string out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) {
    status = -1;
    return out;
  }
  char buffer[4096];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) out += buffer;
  const int raw = ::pclose(pipe);
  status = WIFEXITED(raw) ? WEXITSTATUS(raw) : -1;
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

// "<docker CLI> -H <engine> " for the engine tests/integration/with_dockerd.py started
// (ZASTAVA_TEST_DOCKER_CLI, ZASTAVA_TEST_DOCKER_HOST); empty when not run through it.
inline std::string dockerCli() {
  const char* cli = std::getenv("ZASTAVA_TEST_DOCKER_CLI");
  const char* host = std::getenv("ZASTAVA_TEST_DOCKER_HOST");
  if (cli == nullptr || *cli == '\0' || host == nullptr || *host == '\0') return "";
  return std::string(cli) + " -H " + host + " ";
}

// TreeOptions and LibraryLimits with one field set.
inline TreeOptions expectingContainer(const std::string& id) {
  TreeOptions options;
  options.expectedContainerId = id;
  return options;
}
inline TreeOptions atMostProcesses(std::size_t n) {
  TreeOptions options;
  options.maxProcesses = n;
  return options;
}
inline LibraryLimits atMostLibraries(std::size_t n) {
  LibraryLimits limits;
  limits.maxLibraries = n;
  return limits;
}
inline LibraryLimits atMostBytes(std::uint64_t n) {
  LibraryLimits limits;
  limits.maxBytes = n;
  return limits;
}

}  // namespace zastava::testing
