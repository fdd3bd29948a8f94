// Evidence of containers: collectEvidence on a captured procfs tree and on live processes, and
// the EvidenceCollector's pool end to end through a real Recorder.
#include "agent/evidence_collector.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "agent/posture_census.h"
#include "buffer/recorder.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/buffer/buffer_test_util.h"
#include "tests/procfs/procfs_test_support.h"
#include "tests/support/manual_clock.h"

namespace zastava {
namespace {

constexpr int kFixtureInitPid = 15462;  // tests/fixtures/procfs/README.md
const Redactor kRedactor;

std::string fixtureContainerId() {
  return testing::readProcfsFixture("container-id.txt").substr(0, 64);
}

EvidenceRequest requestFor(const std::string& id, std::int64_t pid) {
  ContainerFacts facts;
  facts.id = id;
  facts.name = "web";
  facts.image = "zastava-test/busybox:1";
  facts.pid = pid;
  facts.env = {{"SECRET", "<redacted>"}};  // not identity: left out of the request
  return evidenceRequest(facts, EvidenceScan::kStart, RecordSource::kReplay);
}

TEST_CASE("evidenceRequest keeps the container's identity only") {
  const EvidenceRequest request = requestFor("abc", 42);
  CHECK(request.container.id == "abc");
  CHECK(request.container.pid == 42);
  CHECK(request.container.env.empty());
  CHECK_FALSE(request.container.security);
  CHECK(request.scan == EvidenceScan::kStart);
  CHECK(request.source == RecordSource::kReplay);
}

TEST_CASE("a captured container tree: read, with what the fixture lacks named") {
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  options.procRoot = testing::procfsFixtureDir() + "/tree";
  ProcfsReader reader(options.procRoot, cache);
  const auto facts = collectEvidence(reader, requestFor(fixtureContainerId(), kFixtureInitPid),
                                     options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kPartial);
  CHECK(facts.initPid == kFixtureInitPid);
  CHECK(facts.procRoot == options.procRoot);
  REQUIRE(facts.processTree);
  REQUIRE(facts.processTree->processes.size() == 3);
  CHECK(facts.processTree->discovery == "scan");
  CHECK(facts.reason.find("pid 15462 exe:") != std::string::npos);
  CHECK(facts.reason.find("and ") != std::string::npos);  // more problems than are shown
  CHECK_FALSE(facts.loadedLibraries);                     // the fixture has no maps
}

TEST_CASE("a pid naming a process of another container: its init exited, the pid was reused") {
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  options.procRoot = testing::procfsFixtureDir() + "/tree";
  ProcfsReader reader(options.procRoot, cache);
  const auto facts = collectEvidence(reader, requestFor(std::string(64, 'a'), kFixtureInitPid),
                                     options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kExited);
  CHECK(facts.reason.find("the pid now names another process") != std::string::npos);
  CHECK(facts.reason.find("is not in container aaaaaaaaaaaa") != std::string::npos);
  CHECK_FALSE(facts.processTree);
}

// The captured tree, with a pid 1 whose PID namespace is not the host's (ns/pid is a symlink
// whose text is what the kernel's magic link would say).
class ForeignPidNamespaceTree {
 public:
  ForeignPidNamespaceTree() {
    std::filesystem::copy(testing::procfsFixtureDir() + "/tree", dir_.path(),
                          std::filesystem::copy_options::recursive);
    std::filesystem::create_directories(dir_.path() / "1" / "ns");
    std::filesystem::create_symlink("pid:[4026532999]", dir_.path() / "1" / "ns" / "pid");
  }
  std::string path() const { return dir_.path().string(); }

 private:
  testing::TempDir dir_;
};

TEST_CASE("a procfs of another PID namespace than the engine's: unavailable, with the cure") {
  ForeignPidNamespaceTree tree;
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  options.procRoot = tree.path();
  ProcfsReader reader(options.procRoot, cache);
  const auto stranger = collectEvidence(reader, requestFor(std::string(64, 'a'), kFixtureInitPid),
                                        options, kRedactor);
  CHECK(stranger.status == EvidenceStatus::kUnavailable);
  CHECK(stranger.reason.find("another PID namespace than the engine") != std::string::npos);
  const auto missing = collectEvidence(reader, requestFor("", 4242), options, kRedactor);
  CHECK(missing.status == EvidenceStatus::kUnavailable);
  CHECK(missing.reason ==
        "pid 4242 is not in " + tree.path() +
            ": the agent sees another PID namespace than the engine (run it in the host's PID "
            "namespace, or set Evidence:ProcRoot to the host's /proc)");
  const auto own = collectEvidence(reader, requestFor(fixtureContainerId(), kFixtureInitPid),
                                   options, kRedactor);
  CHECK(own.status == EvidenceStatus::kPartial);  // the container's own pid is still read
}

TEST_CASE("a container not running, or whose init is gone, exited before its evidence") {
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  ProcfsReader reader("/proc", cache);
  const auto notRunning = collectEvidence(reader, requestFor("abc", 0), options, kRedactor);
  CHECK(notRunning.status == EvidenceStatus::kExited);
  CHECK(notRunning.initPid == 0);
  CHECK(notRunning.reason.empty());  // no initPid says it: there was no process to read

  testing::Child gone({"/bin/true"});
  const int pid = gone.reap();
  const auto exited = collectEvidence(reader, requestFor("", pid), options, kRedactor);
  CHECK(exited.status == EvidenceStatus::kExited);
  CHECK(exited.reason == "the container's init process (pid " + std::to_string(pid) +
                             ") exited before its evidence was collected");
}

TEST_CASE("an init that exited but is not reaped yet (a zombie): exited, not partial") {
  // A `docker run ... true` container's init between its exit and the shim's wait: its stat
  // is still in /proc, its exe, namespaces and maps are not.
  testing::Child zombie({"/bin/true"});
  REQUIRE(zombie.waitUntilZombie());
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  ProcfsReader reader("/proc", cache);
  const auto facts = collectEvidence(reader, requestFor("", zombie.pid()), options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kExited);
  CHECK(facts.reason == "the container's init process (pid " + std::to_string(zombie.pid()) +
                            ") exited before its evidence was collected");
  CHECK_FALSE(facts.processTree);
  CHECK_FALSE(facts.loadedLibraries);
}

TEST_CASE("an init in the kernel's exit path, no zombie yet: exited, not partial") {
  // What a container's init looks like while the kernel tears down its namespaces: exe, maps
  // and namespaces gone, state not Z. The agent's scan took that for unreadable fields.
  testing::ExitingPidNamespaceInit init;
  REQUIRE(init.waitUntilExiting());
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  ProcfsReader reader("/proc", cache);
  const auto facts = collectEvidence(reader, requestFor("", init.pid()), options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kExited);
  CHECK(facts.reason == "the container's init process (pid " + std::to_string(init.pid()) +
                            ") exited before its evidence was collected");
  CHECK_FALSE(facts.processTree);
}

TEST_CASE("a zombie descendant does not make a scan partial") {
  testing::Child parent({"/bin/sh", "-c", "/bin/true & exec /bin/sleep 60"});
  REQUIRE(testing::waitForZombieChild(parent.pid()) > 0);
  REQUIRE(parent.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  ProcfsReader reader("/proc", cache);
  const auto facts = collectEvidence(reader, requestFor("", parent.pid()), options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kComplete);
  CHECK(facts.reason == "");
  REQUIRE(facts.processTree);
  CHECK(facts.processTree->processes.size() == 1);
  CHECK(facts.processTree->exitedDuringScan == 1);
}

TEST_CASE("a live process: complete, libraries hashed, secrets in its command line redacted") {
  testing::Child child(
      {"/bin/sh", "-c", "exec /bin/sleep 60", "sh", "--password=hunter2", "--token", "abc"});
  REQUIRE(testing::waitUntilSleeping(child.pid()));
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  ProcfsReader reader("/proc", cache);
  // No container id: a host process has none for the cgroup check to compare.
  const auto facts = collectEvidence(reader, requestFor("", child.pid()), options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kComplete);
  CHECK(facts.reason.empty());
  REQUIRE(facts.processTree);
  const ProcessInfo& init = facts.processTree->processes.front();
  CHECK(init.exePath == "/usr/bin/sleep");
  CHECK(init.cmdline == std::vector<std::string>{"/bin/sleep", "60"});
  REQUIRE(facts.loadedLibraries);
  CHECK(facts.loadedLibraries->libraries.size() >= 3);

  testing::Child shell({"/bin/sh", "-c", "sleep 60; true", "sh", "--password=hunter2"});
  REQUIRE(testing::waitUntilSleeping(shell.pid()));
  const auto withArgs = collectEvidence(reader, requestFor("", shell.pid()), options, kRedactor);
  REQUIRE(withArgs.processTree);
  const auto& cmdline = withArgs.processTree->processes.front().cmdline;
  CHECK(cmdline ==
        std::vector<std::string>{"/bin/sh", "-c", "sleep 60; true", "sh", "--password=<redacted>"});
}

TEST_CASE("caps on processes, libraries and bytes make a scan partial and say so") {
  testing::Child shell({"/bin/sh", "-c", "sleep 60; true"});
  REQUIRE(testing::waitUntilSleeping(shell.pid()));
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the child sleep start
  FileHashCache cache(testing::hashTimingClock());
  EvidenceOptions options;
  options.tree.maxProcesses = 1;
  options.libraries.maxLibraries = 1;
  ProcfsReader reader("/proc", cache);
  const auto facts = collectEvidence(reader, requestFor("", shell.pid()), options, kRedactor);
  CHECK(facts.status == EvidenceStatus::kPartial);
  CHECK(facts.reason.find("process cap reached: 1 processes not read") != std::string::npos);
  CHECK(facts.reason.find("library cap reached") != std::string::npos);
  REQUIRE(facts.loadedLibraries);
  CHECK(facts.loadedLibraries->countCapHit);
}

// A real process that names itself as runc's init does until it execs the container's program.
constexpr const char* kRuncInitShell = "printf 'runc:[2:INIT]' > /proc/$$/comm; sleep 60";

// Waits (bounded) until the kRuncInitShell child `pid` has renamed itself.
bool waitUntilNamedLikeRunc(int pid) {
  for (int i = 0; i < 500; ++i) {
    if (testing::readFile("/proc/" + std::to_string(pid) + "/comm") == "runc:[2:INIT]\n")
      return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

TEST_CASE("an init still the runtime's, or with no command line yet, is still starting") {
  testing::Child runc({"/bin/sh", "-c", kRuncInitShell});
  testing::Child program({"/bin/sleep", "60"});
  REQUIRE(testing::waitUntilSleeping(runc.pid()));
  REQUIRE(program.waitUntilSleeping());
  FileHashCache cache(testing::hashTimingClock());
  ProcfsReader reader("/proc", cache);
  REQUIRE(waitUntilNamedLikeRunc(runc.pid()));
  EvidenceOptions options;
  const auto starting = collectEvidence(reader, requestFor("", runc.pid()), options, kRedactor);
  CHECK(initStillStarting(starting) ==
        "the container's init was still the runtime's (runc:[2:INIT])");
  auto started = collectEvidence(reader, requestFor("", program.pid()), options, kRedactor);
  CHECK(initStillStarting(started).empty());
  REQUIRE(started.loadedLibraries);
  // As read while the loader was still at work: the program and the loader only.
  auto& libraries = started.loadedLibraries->libraries;
  const std::string program_path = started.processTree->processes.front().exePath;
  std::erase_if(libraries, [&](const LoadedLibrary& lib) {
    return lib.path != program_path && lib.path.find("/ld-linux") == std::string::npos;
  });
  REQUIRE(libraries.size() == 2);
  CHECK(initStillStarting(started).find("dynamic loader") != std::string::npos);
  started.processTree->processes.front().cmdline.clear();  // as read in the middle of its exec
  CHECK(initStillStarting(started).find("no command line yet") != std::string::npos);
}

// Waits (bounded) until `series` reaches `value` in the exposition.
bool waitForMetric(const Metrics& metrics, const std::string& series, double value) {
  for (int i = 0; i < 500; ++i) {
    if (testing::metricValue(metrics, series) >= value) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

bool waitForThreads(const std::string& name, int count) {
  for (int i = 0; i < 500; ++i) {
    if (testing::threadsNamed(name) == count) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

// Waits until a thread waits `wait` on `clock` (the collector's wait for a due scan), then
// advances the clock by `wait`. False when none came.
bool advancePastWaitOf(ManualClock& clock, std::chrono::nanoseconds wait) {
  if (!clock.awaitWaits([wait](const std::vector<std::chrono::nanoseconds>& left) {
        return std::find(left.begin(), left.end(), wait) != left.end();
      })) {
    return false;
  }
  clock.advance(wait);
  return true;
}

// A real Recorder in a temporary directory and a sleeping child process to scan.
struct CollectorFixture {
  testing::TempDir dir;
  ManualClock clock{testing::kStart};  // the collector's: only its waits are on it
  // The Recorder's, apart: its idle waits (1 s) would otherwise pass for the collector's once
  // the collector's clock had moved 950 ms.
  ManualClock recorderClock{testing::kStart};
  Metrics metrics{testing::testBuild()};
  HealthState health{metrics, recorderClock};
  PostureCensus census{metrics, PosturePolicy{}};
  std::unique_ptr<Recorder> recorder;
  testing::Child child{{"/bin/sleep", "60"}};

  CollectorFixture() {
    RecorderOptions options;
    options.dataDirectory = dir.path();
    auto opened = Recorder::open(options, recorderClock, metrics, health);
    REQUIRE(opened.ok());
    recorder = std::move(opened).value();
    REQUIRE(testing::waitUntilSleeping(child.pid()));
  }
};

TEST_CASE_FIXTURE(
    CollectorFixture,
    "the collector: a start scan, its re-scan, metrics; a full queue drops and counts") {
  const Redactor redactor;

  EvidenceOptions options;
  options.workers = 1;
  options.rescanDelay = std::chrono::seconds(7);
  EvidenceCollector collector(*recorder, census, metrics, clock, redactor, options);
  collector.start();
  CHECK(collector.request(requestFor("", child.pid())));
  // The re-scan is due 7 s after the start scan, on the clock.
  CHECK(advancePastWaitOf(clock, std::chrono::seconds(7)));
  CHECK(waitForMetric(
      metrics, "zastava_agent_evidence_scans_total{scan=\"rescan\",status=\"complete\"}", 1));
  collector.stop();
  CHECK_FALSE(collector.request(requestFor("", child.pid())));  // stopped
  recorder->stop();
  const auto lines = testing::allSegmentLines(dir.path() / "runtime-events");
  REQUIRE(lines.size() == 2);
  // The source of what asked for the scan (here a replayed start), kept by the re-scan.
  CHECK(lines[0].find(R"("kind":"container.evidence","source":"replay")") != std::string::npos);
  CHECK(lines[1].find(R"("kind":"container.evidence","source":"replay")") != std::string::npos);
  CHECK(lines[0].find(R"("scan":"start","status":"complete")") != std::string::npos);
  CHECK(lines[1].find(R"("scan":"rescan","status":"complete")") != std::string::npos);
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_hashed_bytes_total") > 0);
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_hash_cache_hits_total") > 0);
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_scan_duration_seconds_count") == 2);

  options.queueCapacity = 1;
  EvidenceCollector idle(*recorder, census, metrics, clock, redactor, options);  // never started
  CHECK(idle.request(requestFor("", child.pid())));
  CHECK_FALSE(idle.request(requestFor("", child.pid())));
  CHECK(testing::metricValue(
            metrics, "zastava_agent_events_dropped_total{reason=\"evidence_queue_full\"}") == 1);
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_queue_depth") == 1);

  options.workers = 0;
  EvidenceCollector off(*recorder, census, metrics, clock, redactor, options);
  CHECK_FALSE(off.request(requestFor("", child.pid())));
}

TEST_CASE_FIXTURE(CollectorFixture,
                  "a scan that keeps finding the init starting is retried, then recorded so") {
  testing::Child runc({"/bin/sh", "-c", kRuncInitShell});
  REQUIRE(testing::waitUntilSleeping(runc.pid()));
  REQUIRE(waitUntilNamedLikeRunc(runc.pid()));
  const Redactor redactor;
  EvidenceOptions options;
  options.workers = 1;
  options.rescanDelay = std::chrono::seconds(0);
  EvidenceCollector collector(*recorder, census, metrics, clock, redactor, options);
  collector.start();
  CHECK(collector.request(requestFor("", runc.pid())));
  // Each try but the last schedules the next kStartRetryDelay later, on the clock.
  for (int retry = 0; retry < kStartRetries; ++retry) {
    CAPTURE(retry);
    REQUIRE(advancePastWaitOf(clock, kStartRetryDelay));
  }
  CHECK(waitForMetric(metrics,
                      "zastava_agent_evidence_scans_total{scan=\"start\",status=\"partial\"}", 1));
  collector.stop();
  recorder->stop();
  // One record and one counted scan, however many times it was tried.
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_scan_duration_seconds_count") == 1);
  const auto lines = testing::allSegmentLines(dir.path() / "runtime-events");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("the container's init was still the runtime's (runc:[2:INIT]) after 20 "
                      "tries") != std::string::npos);
}

TEST_CASE_FIXTURE(CollectorFixture,
                  "a start scan that finds the init exited schedules no re-scan") {
  testing::Child zombie({"/bin/true"});
  REQUIRE(zombie.waitUntilZombie());
  EvidenceOptions options;
  options.workers = 1;
  options.rescanDelay = std::chrono::hours(1);
  EvidenceCollector collector(*recorder, census, metrics, clock, kRedactor, options);
  collector.start();
  REQUIRE(collector.request(requestFor("", zombie.pid())));
  CHECK(waitForMetric(metrics,
                      "zastava_agent_evidence_scans_total{scan=\"start\",status=\"exited\"}", 1));
  collector.stop();  // joins the worker: the scan is over, re-scan scheduled or not
  recorder->stop();
  CHECK(testing::metricValue(metrics, "zastava_agent_evidence_queue_depth") == 0);
  const auto lines = testing::allSegmentLines(dir.path() / "runtime-events");
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find(R"("scan":"start","status":"exited")") != std::string::npos);
}

TEST_CASE_FIXTURE(CollectorFixture,
                  "stop() while a worker waits for a re-scan that is not due yet") {
  // The re-scan is dropped from the queue while the worker sleeps until its due time: under
  // AddressSanitizer this catches a wait on a time the queue no longer holds.
  EvidenceOptions options;
  options.workers = 2;
  options.rescanDelay = std::chrono::hours(1);
  EvidenceCollector collector(*recorder, census, metrics, clock, kRedactor, options);
  collector.start();
  CHECK(waitForThreads("zastava-scan", 2));
  REQUIRE(collector.request(requestFor("", child.pid())));
  CHECK(waitForMetric(metrics, "zastava_agent_evidence_queue_depth", 1));  // the re-scan
  CHECK(waitForMetric(metrics,
                      "zastava_agent_evidence_scans_total{scan=\"start\",status=\"complete\"}", 1));
  collector.stop();
  recorder->stop();
  CHECK(testing::metricValue(
            metrics, "zastava_agent_evidence_scans_total{scan=\"rescan\",status=\"complete\"}") ==
        0);
}

}  // namespace
}  // namespace zastava
