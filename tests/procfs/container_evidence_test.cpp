// Against a real engine with the image zastava-test/busybox:1: CTest runs this binary through
// tests/integration/with_dockerd.py, which starts a private dockerd. Without one these tests
// fail; they never skip.
#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <set>
#include <string>

#include "collectors/procfs/proc_parsers.h"
#include "collectors/procfs/process_evidence.h"
#include "tests/procfs/procfs_test_support.h"

namespace zastava {
namespace {

using testing::dockerCli;
using testing::runCommand;
using testing::sha256OfFile;

// A container started with `docker run -d --name <name> <args>`, removed on destruction.
class Container {
 public:
  Container(const std::string& name, const std::string& args) : name_(name) {
    int status = 0;
    runCommand(dockerCli() + "rm -f " + name_ + " >/dev/null 2>&1", status);
    id_ = runCommand(dockerCli() + "run -d --name " + name_ + " " + args, startStatus_);
    if (startStatus_ == 0) {
      const auto pid = runCommand(dockerCli() + "inspect -f '{{.State.Pid}}' " + name_, status);
      pid_ = status == 0 ? std::atoi(pid.c_str()) : 0;
    }
  }
  ~Container() {
    int status = 0;
    runCommand(dockerCli() + "rm -f " + name_ + " >/dev/null 2>&1", status);
  }
  Container(const Container&) = delete;
  Container& operator=(const Container&) = delete;
  int startStatus() const { return startStatus_; }
  const std::string& id() const { return id_; }
  int pid() const { return pid_; }

 private:
  std::string name_;
  std::string id_;
  int startStatus_ = -1;
  int pid_ = 0;
};

// Fails the test case unless with_dockerd.py provided an engine.
void requireEngine() {
  REQUIRE_MESSAGE(!dockerCli().empty(),
                  "no test engine: run through ctest (tests/integration/with_dockerd.py)");
}

std::uint64_t ownNamespace(const std::string& name) {
  char buffer[256];
  const ssize_t n = ::readlink(("/proc/self/ns/" + name).c_str(), buffer, sizeof buffer - 1);
  if (n <= 0) return 0;
  return parseNamespaceLink(std::string(buffer, static_cast<std::size_t>(n))).value();
}

TEST_CASE("a busybox container's tree: its cgroup, its exe hash, its own namespaces") {
  requireEngine();
  Container c("pf-x", "zastava-test/busybox:1 sleep 60");
  REQUIRE_MESSAGE(c.startStatus() == 0, "docker run failed: is the engine up at " << dockerCli());
  REQUIRE(c.id().size() == 64);
  REQUIRE(c.pid() > 0);
  REQUIRE(testing::waitUntilSleeping(c.pid()));
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(c.pid(), testing::expectingContainer(c.id()));
  REQUIRE(tree.ok());
  REQUIRE(tree->processes.size() == 1);
  const auto& init = tree->processes.front();
  CHECK(init.unreadable.empty());
  CHECK(init.cgroupPath.find(c.id()) != std::string::npos);
  CHECK(init.containerId == c.id());
  CHECK(init.nsPid == 1);
  CHECK(init.cmdline == std::vector<std::string>{"sleep", "60"});
  CHECK(init.exePath == "/bin/busybox");  // as the container sees it
  CHECK(init.exeSha256 == sha256OfFile("/bin/busybox"));
  CHECK(init.seccompMode == "filter");
  CHECK(std::find(init.capEffNames.begin(), init.capEffNames.end(), "CAP_CHOWN") !=
        init.capEffNames.end());
  CHECK(std::find(init.capEffNames.begin(), init.capEffNames.end(), "CAP_SYS_ADMIN") ==
        init.capEffNames.end());
  CHECK(init.namespaces.pid != ownNamespace("pid"));
  CHECK(init.namespaces.mnt != ownNamespace("mnt"));
  CHECK(init.namespaces.net != ownNamespace("net"));
  CHECK(init.namespaces.ipc != ownNamespace("ipc"));
  CHECK(init.namespaces.uts != ownNamespace("uts"));
  CHECK(init.namespaces.pid != 0);

  const auto libs = reader.loadedLibraries({c.pid()});
  REQUIRE(libs.ok());
  REQUIRE(libs->libraries.size() == 1);  // busybox-static maps no library
  CHECK(libs->libraries[0].path == "/bin/busybox");
  CHECK(libs->libraries[0].openedVia == "root");
  CHECK(libs->libraries[0].identityVerified);
  CHECK(libs->libraries[0].sha256 == sha256OfFile("/bin/busybox"));
  CHECK(libs->libraries[0].cached);  // the exe hash above put it in the cache
}

TEST_CASE("a container that exited before evidence is read gives 'process exited'") {
  requireEngine();
  Container c("pf-gone", "zastava-test/busybox:1 sleep 60");
  REQUIRE(c.startStatus() == 0);
  REQUIRE(c.pid() > 0);
  int status = 0;
  runCommand(dockerCli() + "kill pf-gone >/dev/null && " + dockerCli() + "wait pf-gone >/dev/null",
             status);
  REQUIRE(status == 0);
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(c.pid(), testing::expectingContainer(c.id()));
  REQUIRE_FALSE(tree.ok());
  CHECK(tree.error().code == ErrorCode::kNotFound);
  CHECK(tree.error().message.rfind("process exited", 0) == 0);
}

// An image holding only a dynamically linked /usr/bin/sleep and the files its host copy maps.
class DynamicImage {
 public:
  static constexpr const char* kName = "zastava-test/pf-dyn:1";
  DynamicImage() {
    testing::Child probe({"/usr/bin/sleep", "60"});
    if (!probe.waitUntilSleeping()) return;
    files_ = testing::executablePathsOf(
        testing::readFile("/proc/" + std::to_string(probe.pid()) + "/maps"));
    char pattern[] = "/tmp/pf-rootfs-XXXXXX";
    rootfs_ = ::mkdtemp(pattern);
    std::string copy = "cp -L --parents /lib64/ld-linux-x86-64.so.2";
    for (const auto& f : files_) copy += " " + f;
    int status = 0;
    runCommand(copy + " " + rootfs_ + " && tar -C " + rootfs_ + " -c . | " + dockerCli() +
                   "import - " + kName + " >/dev/null",
               status);
    ok_ = status == 0;
  }
  ~DynamicImage() {
    int status = 0;
    runCommand(dockerCli() + "rmi -f " + kName + " >/dev/null 2>&1", status);
    if (!rootfs_.empty()) runCommand("rm -rf '" + rootfs_ + "'", status);
  }
  DynamicImage(const DynamicImage&) = delete;
  DynamicImage& operator=(const DynamicImage&) = delete;
  bool ok() const { return ok_ && files_.size() >= 3; }

 private:
  std::set<std::string> files_;
  std::string rootfs_;
  bool ok_ = false;
};

TEST_CASE("a dynamically linked program in a container: exe hash and the exact library set") {
  requireEngine();
  DynamicImage image;
  REQUIRE(image.ok());
  Container c("pf-dyn", std::string(DynamicImage::kName) + " /usr/bin/sleep 60");
  REQUIRE(c.startStatus() == 0);
  REQUIRE(c.pid() > 0);
  const std::string procDir = "/proc/" + std::to_string(c.pid());
  REQUIRE(testing::waitUntilSleeping(c.pid()));
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  const auto tree = reader.processTree(c.pid(), testing::expectingContainer(c.id()));
  REQUIRE(tree.ok());
  CHECK(tree->processes.front().exePath == "/usr/bin/sleep");
  CHECK(tree->processes.front().exeSha256 == sha256OfFile("/usr/bin/sleep"));

  const auto libs = reader.loadedLibraries({c.pid()});
  REQUIRE(libs.ok());
  const auto expected = testing::executablePathsOf(testing::readFile(procDir + "/maps"));
  std::set<std::string> got;
  for (const auto& lib : libs->libraries) {
    CAPTURE(lib.path);
    got.insert(lib.path);
    CHECK(lib.openedVia == "root");
    CHECK(lib.identityVerified);
    // The container's copy, read through its root, has the bytes of the host file it came from.
    CHECK(lib.sha256 == sha256OfFile(lib.path));
    CHECK(lib.sha256 == sha256OfFile(procDir + "/root" + lib.path));
  }
  CHECK(expected.size() >= 3);
  CHECK(got == expected);
}

}  // namespace
}  // namespace zastava
