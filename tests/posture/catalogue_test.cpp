// Each posture check on inspect documents captured from real engines, one per risky setting
// (tests/fixtures/engine/posture/README.md says how each container was started).
#include "posture/catalogue.h"

#include <doctest/doctest.h>

#include <map>
#include <set>
#include <string>

#include "collectors/decoders.h"
#include "posture/evaluate.h"
#include "tests/fixture_files.h"

namespace zastava {
namespace {

using Ids = std::set<std::string, std::less<>>;

SecurityPosture postureOf(const std::string& fixture) {
  auto inspect = decodeContainerInspect(testing::readFixture("posture/" + fixture));
  REQUIRE_MESSAGE(inspect.ok(), fixture);
  return inspect->posture;
}

PostureFindings findingsOf(const std::string& fixture, std::string_view waiver = {},
                           const PosturePolicy& policy = {}) {
  return evaluateInspectChecks(postureOf(fixture), waiver, policy);
}

Ids idsWith(const PostureFindings& findings, CheckResult result) {
  Ids ids;
  for (const CheckFinding& finding : findings.checks) {
    if (finding.result == result) ids.emplace(finding.id);
  }
  return ids;
}

const CheckFinding& finding(const PostureFindings& findings, std::string_view id) {
  for (const CheckFinding& f : findings.checks) {
    if (f.id == id) return f;
  }
  FAIL("no finding " << id);
  static const CheckFinding kNone;
  return kNone;
}

// What a plain `docker run -d IMAGE sleep 300` fails on Docker 20.10: it runs as root, without
// limits, with a writable root, no no-new-privileges, no health check, the daemon's ulimits.
const Ids kDefaultFailures = {"4.1", "5.11", "5.12", "5.13", "5.19", "5.26", "5.27", "5.29"};

Ids plus(Ids ids, const Ids& more) {
  ids.insert(more.begin(), more.end());
  return ids;
}
Ids minus(Ids ids, const Ids& less) {
  for (const auto& id : less) ids.erase(id);
  return ids;
}

TEST_CASE("the catalogue: the benchmark's ids in order, each deciding from one input") {
  const auto catalogue = postureCatalogue();
  REQUIRE(catalogue.size() == 27);
  Ids ids;
  for (const PostureCheck& check : catalogue) {
    CAPTURE(check.id);
    CHECK(ids.emplace(check.id).second);
    const bool readsInspect = check.fromInspect != nullptr;
    const bool readsProcesses = check.fromProcesses != nullptr;
    CHECK(readsInspect != readsProcesses);
    CHECK(check.title.starts_with("Ensure"));
    CHECK(findPostureCheck(check.id) == &check);
  }
  // Not evaluated: they need what the agent does not read (docs/posture.md).
  for (const char* id : {"5.1", "5.9", "5.23", "5.24", "5.28", "5.30"}) {
    CHECK(findPostureCheck(id) == nullptr);
  }
  CHECK(findPostureCheck("5.5")->severity == Severity::kCritical);
  const bool sshdReadsProcesses = findPostureCheck("5.7")->fromProcesses != nullptr;
  CHECK(sshdReadsProcesses);
}

TEST_CASE("each risky setting fails its check and nothing else (Docker 20.10)") {
  struct Case {
    const char* fixture;
    Ids failed;
  };
  const Case cases[] = {
      {"inspect-default.json", kDefaultFailures},
      {"inspect-host-network.json", plus(kDefaultFailures, {"5.10"})},
      // Docker adds label=disable itself to the host PID and IPC namespaces and --privileged.
      {"inspect-host-pid.json", plus(kDefaultFailures, {"5.16", "5.3"})},
      {"inspect-host-ipc.json", plus(kDefaultFailures, {"5.17", "5.3"})},
      {"inspect-host-uts.json", plus(kDefaultFailures, {"5.21"})},
      {"inspect-host-userns.json", plus(kDefaultFailures, {"5.31"})},
      {"inspect-cap-add.json", plus(kDefaultFailures, {"5.4"})},
      {"inspect-cap-add-default.json", kDefaultFailures},
      {"inspect-cap-add-all.json", plus(kDefaultFailures, {"5.4"})},
      {"inspect-privileged.json", plus(kDefaultFailures, {"5.5", "5.3"})},
      {"inspect-sensitive-mount.json", plus(kDefaultFailures, {"5.6"})},
      {"inspect-sensitive-mount-ro.json", kDefaultFailures},
      {"inspect-docker-socket.json", plus(kDefaultFailures, {"5.32"})},
      {"inspect-docker-socket-mount.json", plus(kDefaultFailures, {"5.32"})},
      {"inspect-docker-socket-link.json", plus(kDefaultFailures, {"5.32"})},
      {"inspect-port-privileged.json", plus(kDefaultFailures, {"5.8", "5.14"})},
      {"inspect-port-localhost.json", kDefaultFailures},
      {"inspect-device.json", plus(kDefaultFailures, {"5.18"})},
      {"inspect-ulimit.json", minus(kDefaultFailures, {"5.19"})},
      {"inspect-propagation-rshared.json", plus(kDefaultFailures, {"5.20"})},
      {"inspect-seccomp-unconfined.json", plus(kDefaultFailures, {"5.22"})},
      {"inspect-apparmor-unconfined.json", kDefaultFailures},  // no AppArmor on the host
      {"inspect-label-disable.json", plus(kDefaultFailures, {"5.3"})},
      {"inspect-cgroup-parent.json", plus(kDefaultFailures, {"5.25"})},
      {"inspect-restart-always.json", plus(kDefaultFailures, {"5.15"})},
      {"inspect-restart-on-failure-10.json", plus(kDefaultFailures, {"5.15"})},
      {"inspect-healthcheck.json", minus(kDefaultFailures, {"5.27"})},
      {"inspect-pids-limit.json", minus(kDefaultFailures, {"5.29"})},
      {"inspect-hardened.json", {}},
  };
  for (const Case& c : cases) {
    CAPTURE(c.fixture);
    const PostureFindings findings = findingsOf(c.fixture);
    CHECK(idsWith(findings, CheckResult::kFailed) == c.failed);
    CHECK(findings.checks.size() == 26);  // every inspect check, none skipped
    CHECK(findings.skipped.empty());
    CHECK(findings.waiver.empty());
  }
}

TEST_CASE("not applicable: no AppArmor or SELinux on the host, no published port") {
  const PostureFindings plain = findingsOf("inspect-default.json");
  CHECK(idsWith(plain, CheckResult::kNotApplicable) == Ids{"5.2", "5.3", "5.8", "5.14"});
  const PostureFindings local = findingsOf("inspect-port-localhost.json");
  CHECK(finding(local, "5.8").result == CheckResult::kPassed);   // 8080
  CHECK(finding(local, "5.14").result == CheckResult::kPassed);  // 127.0.0.1
  // An engine that confines with AppArmor names the profile (Docker's documented default).
  SecurityPosture confined = postureOf("inspect-default.json");
  confined.appArmorProfile = "docker-default";
  CHECK(evaluateInspectChecks(confined, {}, {}).checks[1].result == CheckResult::kPassed);
  confined.appArmorProfile = "unconfined";
  CHECK(evaluateInspectChecks(confined, {}, {}).checks[1].value == "AppArmorProfile=unconfined");
}

TEST_CASE("a failure says what failed it") {
  CHECK(finding(findingsOf("inspect-default.json"), "4.1").value == "User= (root)");
  CHECK(finding(findingsOf("inspect-default.json"), "5.11").value == "Memory=0");
  CHECK(finding(findingsOf("inspect-default.json"), "5.29").value == "PidsLimit=0");
  CHECK(finding(findingsOf("inspect-host-network.json"), "5.10").value == "NetworkMode=host");
  CHECK(finding(findingsOf("inspect-host-pid.json"), "5.16").value == "PidMode=host");
  CHECK(finding(findingsOf("inspect-host-pid.json"), "5.3").value == "SecurityOpt=label=disable");
  CHECK(finding(findingsOf("inspect-cap-add.json"), "5.4").value ==
        "CapAdd=CAP_NET_ADMIN,CAP_SYS_ADMIN");
  CHECK(finding(findingsOf("inspect-cap-add-all.json"), "5.4").value == "CapAdd=ALL");
  CHECK(finding(findingsOf("inspect-privileged.json"), "5.5").value == "Privileged=true");
  CHECK(finding(findingsOf("inspect-sensitive-mount.json"), "5.6").value ==
        "/etc -> /host-etc (rw)");
  CHECK(finding(findingsOf("inspect-docker-socket.json"), "5.32")
            .value.ends_with("/docker.sock -> /var/run/docker.sock"));
  CHECK(finding(findingsOf("inspect-port-privileged.json"), "5.8").value == "80/tcp -> 0.0.0.0:80");
  CHECK(finding(findingsOf("inspect-device.json"), "5.18").value ==
        "Devices=/dev/null:/dev/xnull:rwm");
  CHECK(finding(findingsOf("inspect-propagation-rshared.json"), "5.20").value ==
        "/shared (rshared)");
  CHECK(finding(findingsOf("inspect-seccomp-unconfined.json"), "5.22").value ==
        "SecurityOpt=seccomp=unconfined");
  CHECK(finding(findingsOf("inspect-cgroup-parent.json"), "5.25").value ==
        "CgroupParent=zastava-fixture");
  CHECK(finding(findingsOf("inspect-restart-always.json"), "5.15").value == "RestartPolicy=always");
  CHECK(finding(findingsOf("inspect-restart-on-failure-10.json"), "5.15").value ==
        "RestartPolicy=on-failure:10");
  CHECK(finding(findingsOf("inspect-host-userns.json"), "5.31").value == "UsernsMode=host");
}

TEST_CASE("Docker 26.1 and Podman 4.3 decide the same way") {
  CHECK(idsWith(findingsOf("docker-26.1/inspect-default.json"), CheckResult::kFailed) ==
        kDefaultFailures);
  CHECK(idsWith(findingsOf("docker-26.1/inspect-hardened.json"), CheckResult::kFailed).empty());
  CHECK(idsWith(findingsOf("docker-26.1/inspect-host-pid.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.16", "5.3"}));
  CHECK(idsWith(findingsOf("docker-26.1/inspect-privileged.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.5", "5.3"}));
  CHECK(idsWith(findingsOf("docker-26.1/inspect-port-privileged.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.8", "5.14"}));
  CHECK(idsWith(findingsOf("docker-26.1/inspect-port-localhost.json"), CheckResult::kFailed) ==
        kDefaultFailures);
  CHECK(idsWith(findingsOf("podman-4.3/inspect-default.json"), CheckResult::kFailed) ==
        kDefaultFailures);
  CHECK(idsWith(findingsOf("podman-4.3/inspect-cap-add.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.4"}));
  CHECK(idsWith(findingsOf("podman-4.3/inspect-cap-add-default.json"), CheckResult::kFailed) ==
        kDefaultFailures);
  CHECK(idsWith(findingsOf("podman-4.3/inspect-privileged.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.5"}));
  CHECK(idsWith(findingsOf("podman-4.3/inspect-port-privileged.json"), CheckResult::kFailed) ==
        plus(kDefaultFailures, {"5.8", "5.14"}));
}

TEST_CASE("waivers: named checks are waived whatever they found, with the label") {
  const PostureFindings findings = findingsOf("inspect-host-network.json", "5.10, 5.13,5.5,9.9");
  CHECK(findings.waiver == "zastava.posture.ignore=5.10, 5.13,5.5,9.9");
  CHECK(finding(findings, "5.10").waived);
  CHECK(finding(findings, "5.10").result == CheckResult::kFailed);
  CHECK(finding(findings, "5.5").waived);
  CHECK(finding(findings, "5.5").result == CheckResult::kPassed);
  CHECK_FALSE(finding(findings, "5.11").waived);
  Ids counted;
  for (const CheckFinding& f : findings.checks) {
    if (PostureFindings::counts(f)) counted.emplace(f.id);
  }
  CHECK(counted == minus(kDefaultFailures, {"5.13"}));
  // A label naming no check of this input waives nothing and is not repeated.
  CHECK(findingsOf("inspect-default.json", "5.7").waiver.empty());
}

TEST_CASE("the policy skips checks and overrides severities") {
  PosturePolicy policy;
  policy.skip = {"5.19", "5.25"};
  policy.severities = {{"5.13", Severity::kCritical}};
  const PostureFindings findings = findingsOf("inspect-default.json", {}, policy);
  CHECK(findings.skipped == std::vector<std::string_view>{"5.19", "5.25"});
  CHECK(findings.checks.size() == 24);
  CHECK(finding(findings, "5.13").severity == Severity::kCritical);
  CHECK(finding(findings, "5.11").severity == Severity::kLow);
  CHECK(idsWith(findings, CheckResult::kFailed) == minus(kDefaultFailures, {"5.19"}));
}

ProcessInfo process(int pid, std::string comm, std::string exe) {
  ProcessInfo info;
  info.pid = pid;
  info.comm = std::move(comm);
  info.exePath = std::move(exe);
  return info;
}

TEST_CASE("5.7 from the container's processes: sshd by name or by executable") {
  ProcessTree tree;
  tree.processes = {process(41, "sh", "/bin/busybox"), process(42, "sleep", "/bin/busybox")};
  PostureFindings findings = evaluateProcessChecks(&tree, {}, {});
  CHECK(findings.input == PostureInput::kProcesses);
  REQUIRE(findings.checks.size() == 1);
  CHECK(findings.checks[0].id == "5.7");
  CHECK(findings.checks[0].result == CheckResult::kPassed);

  tree.processes.push_back(process(43, "sshd", "/usr/sbin/sshd"));
  findings = evaluateProcessChecks(&tree, {}, {});
  CHECK(findings.checks[0].result == CheckResult::kFailed);
  CHECK(findings.checks[0].value == "sshd: pid 43 (/usr/sbin/sshd)");
  tree.processes.back() = process(43, "sshd: root", "/usr/sbin/sshd");  // renamed, same binary
  CHECK(evaluateProcessChecks(&tree, {}, {}).checks[0].result == CheckResult::kFailed);

  CHECK(evaluateProcessChecks(nullptr, {}, {}).checks[0].result == CheckResult::kNotApplicable);
  CHECK(evaluateProcessChecks(&tree, "5.7", {}).checks[0].waived);
  PosturePolicy skip;
  skip.skip = {"5.7"};
  const PostureFindings skipped = evaluateProcessChecks(&tree, {}, skip);
  CHECK(skipped.checks.empty());
  CHECK(skipped.skipped == std::vector<std::string_view>{"5.7"});
}

}  // namespace
}  // namespace zastava
