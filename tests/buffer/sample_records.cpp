// Writes a varied set of records through a real Recorder into the data directory argv[1], for
// check_records.py to validate against docs/record-schema.json and to verify the hash chain.
#include <cstdio>

#include "buffer/recorder.h"
#include "buffer_test_util.h"
#include "health/health_state.h"
#include "health/metrics.h"
#include "tests/support/manual_clock.h"

namespace {

using namespace zastava;

// A container.evidence record as EvidenceCollector writes it.
Record evidenceSample(const std::string& containerId, UnixNanos observedAt, EvidenceFacts facts) {
  Record record;
  record.eventId = eventIdForEvidence(containerId, facts.scan, observedAt);
  record.kind = std::string(kEvidenceKind);
  record.source = RecordSource::kSnapshot;
  record.time = observedAt;
  record.observedAt = observedAt;
  record.container.id = containerId;
  record.container.name = "web";
  record.container.image = "zastava-test/busybox:1";
  record.container.imageId = "sha256:" + std::string(64, 'b');
  record.container.pid = facts.initPid;
  record.container.startedAt = "2026-11-22T14:00:00.123456789Z";
  // The check its processes decide, as evaluateProcessChecks finds it (posture/evaluate.h).
  auto posture = std::make_shared<PostureFindings>();
  posture->input = PostureInput::kProcesses;
  posture->checks = {{"5.7", "Ensure sshd is not run within containers", Severity::kMedium,
                      facts.processTree ? CheckResult::kPassed : CheckResult::kNotApplicable, ""}};
  record.container.posture = posture;
  record.evidence = std::move(facts);
  return record;
}

// A snapshot's security posture and its findings, as the Tracker writes them.
void addPosture(Record& record) {
  auto security = std::make_shared<SecurityPosture>();
  security->networkMode = "host";
  security->ulimits = {"nofile=1024:2048"};
  record.container.security = security;
  auto posture = std::make_shared<PostureFindings>();
  posture->checks = {
      {"4.1", "Ensure that a user for the container has been created", Severity::kMedium,
       CheckResult::kFailed, "User= (root)"},
      {"5.2", "Ensure that, if applicable, an AppArmor Profile is enabled", Severity::kHigh,
       CheckResult::kNotApplicable, ""},
      {"5.5", "Ensure that privileged containers are not used", Severity::kCritical,
       CheckResult::kPassed, ""},
      {"5.10", "Ensure that the host's network namespace is not shared", Severity::kCritical,
       CheckResult::kFailed, "NetworkMode=host", /*waived=*/true}};
  posture->skipped = {"5.19"};
  posture->waiver = "zastava.posture.ignore=5.10";
  record.container.posture = posture;
}

ProcessInfo sampleProcess(int pid, int ppid, int nsPid, std::vector<std::string> cmdline) {
  ProcessInfo p;
  p.pid = pid;
  p.ppid = ppid;
  p.nsPid = nsPid;
  p.uid = p.euid = p.gid = p.egid = 0;
  p.comm = "sh";
  p.cmdline = std::move(cmdline);
  p.exePath = "/bin/busybox";
  p.exeSha256 = std::string(64, 'e');
  p.namespaces = {4026532180, 4026532177, 4026532183, 4026532178,
                  4026532179, 4026531837, 4026532181};
  p.capEff = 0x00000000a80425fbULL;
  p.capEffNames = {"CAP_CHOWN",       "CAP_DAC_OVERRIDE", "CAP_FOWNER",
                   "CAP_FSETID",      "CAP_KILL",         "CAP_SETGID",
                   "CAP_SETUID",      "CAP_SETPCAP",      "CAP_NET_BIND_SERVICE",
                   "CAP_NET_RAW",     "CAP_SYS_CHROOT",   "CAP_MKNOD",
                   "CAP_AUDIT_WRITE", "CAP_SETFCAP"};
  p.seccompMode = "filter";
  p.noNewPrivs = false;
  p.cgroupPath = "/system.slice/docker-" + std::string(64, 'a') + ".scope";
  p.containerId = std::string(64, 'a');
  return p;
}

LoadedLibrary sampleLibrary(std::string path, std::uint64_t inode, std::vector<int> mappedBy) {
  LoadedLibrary lib;
  lib.path = std::move(path);
  lib.device = "00:2f";
  lib.inode = inode;
  lib.size = 1126440;
  lib.sha256 = std::string(64, 'c');
  lib.openedVia = "root";
  lib.identityVerified = true;
  lib.mappedBy = std::move(mappedBy);
  return lib;
}

// complete, partial (two processes, caps hit, unreadable fields), exited and unavailable.
std::vector<Record> evidenceSamples(UnixNanos at) {
  const std::string id(64, 'a');
  std::vector<Record> out;

  EvidenceFacts complete;
  complete.scan = EvidenceScan::kStart;
  complete.procRoot = "/proc";
  complete.initPid = 4242;
  complete.status = EvidenceStatus::kComplete;
  ProcessTree tree;
  tree.initPid = 4242;
  tree.discovery = "children";
  tree.processes.push_back(sampleProcess(4242, 4200, 1, {"sh", "-c", "sleep 300"}));
  tree.processes.push_back(sampleProcess(4250, 4242, 7, {"sleep", "300"}));
  tree.processes[1].comm = "sleep";
  complete.processTree = tree;
  LibraryEvidence libraries;
  libraries.libraries.push_back(sampleLibrary("/bin/busybox", 131, {4242, 4250}));
  libraries.libraries.back().cached = true;
  libraries.bytesHashed = 0;
  complete.loadedLibraries = libraries;
  out.push_back(evidenceSample(id, at, complete));

  EvidenceFacts partial;
  partial.scan = EvidenceScan::kRescan;
  partial.procRoot = "/host/proc";
  partial.initPid = 4242;
  partial.status = EvidenceStatus::kPartial;
  partial.reason = "pid 4250 exeSha256: byte cap reached; pid 4250 ns/user: permission denied";
  ProcessTree partialTree = tree;
  partialTree.discovery = "scan";
  partialTree.truncated = true;
  partialTree.omittedCount = 3;
  partialTree.exitedDuringScan = 1;
  ProcessInfo& child = partialTree.processes[1];
  child.cmdline = {"app", "--password", "<redacted>", "DB_TOKEN=<redacted>",
                   "postgres://user:<redacted>@db/app"};
  child.exeDeleted = true;
  child.exeSha256.clear();
  child.unreadable = {{"exeSha256", "byte cap reached"}, {"ns/user", "permission denied"}};
  child.namespaces.user = 0;
  child.capEff.reset();
  child.capEffNames.clear();
  child.seccompMode.clear();
  child.noNewPrivs.reset();
  child.nsPid = 0;
  partial.processTree = partialTree;
  LibraryEvidence partialLibraries;
  partialLibraries.libraries.push_back(sampleLibrary("/bin/busybox", 131, {4242, 4250}));
  partialLibraries.libraries.back().cached = true;
  partialLibraries.libraries.push_back(sampleLibrary("/lib/ld-musl-x86_64.so.1", 4711, {4242}));
  partialLibraries.libraries.back().openedVia = "map_files";
  partialLibraries.libraries.back().deleted = true;
  partialLibraries.libraries.back().sha256 = std::string(64, 'd');
  partialLibraries.libraries.push_back(sampleLibrary("/usr/lib/libbig.so", 4712, {4242, 4250}));
  partialLibraries.libraries.back().sha256.clear();
  partialLibraries.libraries.back().size = 734003200;
  partialLibraries.libraries.back().whyNot = std::string(kByteCapReached);
  partialLibraries.libraries.push_back(sampleLibrary("/opt/gone.so", 4713, {4242}));
  partialLibraries.libraries.back().sha256.clear();
  partialLibraries.libraries.back().size = 0;
  partialLibraries.libraries.back().openedVia.clear();
  partialLibraries.libraries.back().identityVerified = false;
  partialLibraries.libraries.back().whyNot =
      "root: permission denied; map_files: permission denied";
  partialLibraries.byteCapHit = true;
  partialLibraries.skippedCount = 1;
  partialLibraries.bytesHashed = 98304;
  partialLibraries.unreadable = {{4251, "process exited: pid 4251"},
                                 {4260, "maps of pid 4260: permission denied"}};
  partial.loadedLibraries = partialLibraries;
  out.push_back(evidenceSample(id, at + 30 * testing::kSecond, partial));

  EvidenceFacts exited;
  exited.scan = EvidenceScan::kStart;
  exited.procRoot = "/proc";
  exited.initPid = 0;
  exited.status = EvidenceStatus::kExited;
  out.push_back(evidenceSample(std::string(64, '1'), at + 1, exited));

  EvidenceFacts unavailable;
  unavailable.scan = EvidenceScan::kReconcile;
  unavailable.procRoot = "/proc";
  unavailable.initPid = 4242;
  unavailable.status = EvidenceStatus::kUnavailable;
  unavailable.reason =
      "pid 4242 is not in container aaaaaaaaaaaa (cgroup '/'): the agent sees another PID "
      "namespace than the engine (run it in the host's PID namespace, or set Evidence:ProcRoot "
      "to the host's /proc)";
  out.push_back(evidenceSample(id, at + 2, unavailable));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace zastava;
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DATA_DIR\n", argv[0]);
    return 2;
  }
  ManualClock clock(testing::kStart);
  Metrics metrics(testing::testBuild());
  HealthState health(metrics, clock);
  RecorderOptions options;
  options.dataDirectory = argv[1];
  options.limits.maxFileBytes = 2048;  // several segments, so the chain crosses files
  options.sealInterval = std::chrono::seconds(60);  // agent.seal-key, and the seal at stop
  auto recorder = Recorder::open(options, clock, metrics, health);
  if (!recorder.ok()) {
    std::fprintf(stderr, "%s\n", recorder.error().message.c_str());
    return 1;
  }
  for (int i = 0; i < 20; ++i) {
    Record record =
        testing::engineRecord("c" + std::to_string(i % 3), "start", testing::kStart + i);
    if (i % 4 == 1) {
      record.kind = "container.health_status";
      record.action = "health_status";
      record.actionDetail = "healthy";
      if (i % 8 == 5) record.engineAction = "health_status";  // Podman's HealthStatus
    }
    if (i % 5 == 2) {
      record.container.imageId = "sha256:0123";
      record.container.state = "exited";
      record.container.exitCode = 137;
      record.container.pid = 0;
      record.container.restartCount = 2;
      record.container.oomKilled = true;
      record.container.startedAt = "2026-11-22T14:00:00.123456789Z";
      record.container.finishedAt = "2026-11-22T14:01:00Z";
      record.container.labels = {{"quote\"", "line\nbreak"}, {"bad", "\xff"}};
    }
    if (i % 6 == 3) {
      record.source = RecordSource::kSnapshot;
      record.kind = "container.snapshot";
      record.timeNano = 0;
      record.action.clear();
      record.attributes.clear();
      record.eventId = eventIdForSnapshot(record.container.id, record.observedAt);
      addPosture(record);
    }
    (*recorder)->submit(record);
  }
  for (const Record& record : evidenceSamples(testing::kStart + 100 * testing::kSecond)) {
    (*recorder)->submit(record);
  }
  (*recorder)->stop();
  return 0;
}
