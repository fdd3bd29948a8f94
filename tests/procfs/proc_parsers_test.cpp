#include "collectors/procfs/proc_parsers.h"

#include <doctest/doctest.h>

#include <algorithm>

#include "tests/procfs/procfs_test_support.h"

namespace zastava {
namespace {

using testing::readProcfsFixture;

bool contains(const std::vector<std::string>& v, const std::string& s) {
  return std::find(v.begin(), v.end(), s) != v.end();
}

TEST_CASE("parseMaps reads every line of a real dynamically linked process") {
  const auto entries = parseMaps(readProcfsFixture("host-sleep-maps.txt"));
  REQUIRE(entries.ok());
  REQUIRE(entries->size() == 37);
  const auto& text = entries->at(1);  // 561bb5a5e000-561bb5a63000 r-xp 00002000 fe:00 248056
  CHECK(text.start == 0x561bb5a5e000ULL);
  CHECK(text.end == 0x561bb5a63000ULL);
  CHECK(text.perms == "r-xp");
  CHECK(text.offset == 0x2000);
  CHECK(text.device == "fe:00");
  CHECK(text.major == 0xfe);
  CHECK(text.minor == 0);
  CHECK(text.inode == 248056);
  CHECK(text.path == "/usr/bin/sleep");
  CHECK_FALSE(text.deleted);
  CHECK(entries->at(5).path == "[heap]");
  CHECK(entries->at(5).inode == 0);
  CHECK(entries->at(14).path.empty());  // anonymous
  CHECK(entries->at(36).path == "[vsyscall]");
}

TEST_CASE("executableFileMappings: distinct file-backed x mappings, first-mapped order") {
  const auto entries = parseMaps(readProcfsFixture("host-sleep-maps.txt"));
  REQUIRE(entries.ok());
  const auto refs = executableFileMappings(*entries);
  REQUIRE(refs.size() == 3);  // [vdso] and [vsyscall] are not files; locale files are not x
  CHECK(refs[0].path == "/usr/bin/sleep");
  CHECK(refs[0].inode == 248056);
  CHECK(refs[0].start == 0x561bb5a5e000ULL);
  CHECK(refs[0].end == 0x561bb5a63000ULL);
  CHECK(refs[1].path == "/usr/lib/x86_64-linux-gnu/libc.so.6");
  CHECK(refs[1].inode == 332835);
  CHECK(refs[2].path == "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2");
  CHECK(refs[2].device == "fe:00");
}

TEST_CASE("parseMaps keeps spaces in paths and strips ' (deleted)'") {
  const auto spaced = parseMaps(readProcfsFixture("spaced-path-maps.txt"));
  REQUIRE(spaced.ok());
  CHECK(spaced->front().path == "/tmp/pf dir/my sleep");
  CHECK_FALSE(spaced->front().deleted);
  const auto refs = executableFileMappings(*spaced);
  REQUIRE_FALSE(refs.empty());
  CHECK(refs.front().path == "/tmp/pf dir/my sleep");

  const auto deleted = parseMaps(readProcfsFixture("deleted-exe-maps.txt"));
  REQUIRE(deleted.ok());
  CHECK(deleted->front().path == "/tmp/pf-deleted-sleep");
  CHECK(deleted->front().deleted);
  const auto deletedRefs = executableFileMappings(*deleted);
  REQUIRE_FALSE(deletedRefs.empty());
  CHECK(deletedRefs.front().deleted);
  CHECK(deletedRefs.front().path == "/tmp/pf-deleted-sleep");
}

TEST_CASE("parseMaps of a static container init: only the binary is a file") {
  const auto entries = parseMaps(readProcfsFixture("container-init-maps.txt"));
  REQUIRE(entries.ok());
  const auto refs = executableFileMappings(*entries);
  REQUIRE(refs.size() == 1);
  CHECK(refs[0].path == "/bin/busybox");
  CHECK(parseMaps("")->empty());
}

TEST_CASE("parseMaps fails on a malformed line and names it") {
  const struct {
    const char* file;
    const char* line;
  } cases[] = {{"malformed-maps-bad-address.txt", "line 3:"},
               {"malformed-maps-missing-inode.txt", "line 7:"},
               {"malformed-maps-short-perms.txt", "line 11:"}};
  for (const auto& c : cases) {
    CAPTURE(c.file);
    const auto entries = parseMaps(readProcfsFixture(c.file));
    REQUIRE_FALSE(entries.ok());
    CHECK(entries.error().code == ErrorCode::kMalformed);
    CHECK(entries.error().message.find(c.line) != std::string::npos);
  }
  CHECK_FALSE(parseMaps("00400000-00401000 r-xp 00000000 fe:00\n").ok());
  CHECK_FALSE(parseMaps("00400000 r-xp 00000000 fe:00 1 /x\n").ok());
  CHECK_FALSE(parseMaps("00400000-00401000 r-xp 00000000 fe00 1 /x\n").ok());
}

TEST_CASE("parseStatus of a root process on the host") {
  const auto s = parseStatus(readProcfsFixture("host-sleep-status.txt"));
  REQUIRE(s.ok());
  CHECK(s->name == "sleep");
  CHECK(s->uid == 0);
  CHECK(s->euid == 0);
  CHECK(s->gid == 0);
  REQUIRE(s->capEff.has_value());
  CHECK(*s->capEff == 0x000001fffeffffffULL);
  CHECK(s->capEffNames.size() == 40);  // 0..40 without CAP_SYS_RESOURCE (24) on this machine
  CHECK(contains(s->capEffNames, "CAP_SYS_ADMIN"));
  CHECK(contains(s->capEffNames, "CAP_CHECKPOINT_RESTORE"));
  CHECK_FALSE(contains(s->capEffNames, "CAP_SYS_RESOURCE"));
  CHECK(s->seccompMode == "disabled");
  CHECK(s->noNewPrivs == false);
  REQUIRE(s->nsPids.size() == 1);
  CHECK(s->nsPids.back() == s->pid);
}

TEST_CASE("parseStatus of a process with dropped capabilities") {
  const auto s = parseStatus(readProcfsFixture("capsh-dropped-status.txt"));
  REQUIRE(s.ok());
  CHECK(*s->capEff == 0x000001fffed7dfffULL);
  CHECK_FALSE(contains(s->capEffNames, "CAP_NET_RAW"));
  CHECK_FALSE(contains(s->capEffNames, "CAP_SYS_ADMIN"));
  CHECK_FALSE(contains(s->capEffNames, "CAP_SYS_PTRACE"));
  CHECK(contains(s->capEffNames, "CAP_NET_ADMIN"));
}

TEST_CASE("parseStatus of a container init seen from the host") {
  const auto s = parseStatus(readProcfsFixture("container-init-status.txt"));
  REQUIRE(s.ok());
  CHECK(s->name == "sh");
  CHECK(s->pid == 15462);
  CHECK(s->ppid == 15441);
  CHECK(*s->capEff == 0xa80425fbULL);
  CHECK(s->capEffNames ==
        std::vector<std::string>{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_FSETID",
                                 "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP",
                                 "CAP_NET_BIND_SERVICE", "CAP_NET_RAW", "CAP_SYS_CHROOT",
                                 "CAP_MKNOD", "CAP_AUDIT_WRITE", "CAP_SETFCAP"});
  CHECK(s->seccomp == 2);
  CHECK(s->seccompMode == "filter");
  CHECK(s->nsPids == std::vector<int>{15462, 1});
}

TEST_CASE("parseStatus fails on malformed or missing fields") {
  const struct {
    const char* file;
    const char* what;
  } cases[] = {{"malformed-status-uid.txt", "line 9:"},
               {"malformed-status-capeff.txt", "CapEff"},
               {"malformed-status-seccomp.txt", "Seccomp:\t7"},
               {"malformed-status-missing-ppid.txt", "missing field PPid"}};
  for (const auto& c : cases) {
    CAPTURE(c.file);
    const auto s = parseStatus(readProcfsFixture(c.file));
    REQUIRE_FALSE(s.ok());
    CHECK(s.error().code == ErrorCode::kMalformed);
    CHECK(s.error().message.find(c.what) != std::string::npos);
  }
  // Optional fields may be absent (older kernels).
  const auto minimal =
      parseStatus("Name:\tx\nPid:\t5\nPPid:\t1\nUid:\t1\t2\t3\t4\nGid:\t5\t6\t7\t8\n");
  REQUIRE(minimal.ok());
  CHECK(minimal->euid == 2);
  CHECK(minimal->egid == 6);
  CHECK_FALSE(minimal->capEff.has_value());
  CHECK(minimal->seccompMode.empty());
}

TEST_CASE("parseStat takes comm up to the last ')' and reads ppid, flags, threads, start time") {
  const auto st = parseStat(readProcfsFixture("container-init-stat.txt"));
  REQUIRE(st.ok());
  CHECK(st->pid == 15462);
  CHECK(st->comm == "sh");
  CHECK(st->state == 'S');
  CHECK(st->ppid == 15441);
  CHECK(st->flags == 4194560);
  CHECK(st->numThreads == 1);
  CHECK(st->startTicks == 503036);
  const auto odd = parseStat("42 (a) b (c) R 7 1 1 0 -1 4 0 0 0 0 0 0 0 0 20 0 3 0 99 0 0\n");
  REQUIRE(odd.ok());
  CHECK(odd->comm == "a) b (c");
  CHECK(odd->ppid == 7);
  CHECK(odd->flags == 4);
  CHECK(odd->numThreads == 3);
  CHECK(odd->startTicks == 99);
  CHECK_FALSE(parseStat("42 (x) R 7 1 1 0 -1 x 0 0 0 0 0 0 0 0 20 0 1 0 99 0 0\n").ok());
  CHECK_FALSE(parseStat(readProcfsFixture("malformed-stat-no-paren.txt")).ok());
  CHECK_FALSE(parseStat("42 (x) R 7 1 1\n").ok());
}

TEST_CASE("parseCmdline splits on NUL") {
  CHECK(parseCmdline(readProcfsFixture("container-init-cmdline.txt")) ==
        std::vector<std::string>{"sh", "-c", "sleep 300 & sleep 301 & wait"});
  CHECK(parseCmdline(readProcfsFixture("host-sleep-cmdline.txt")) ==
        std::vector<std::string>{"sleep", "300"});
  CHECK(parseCmdline("").empty());
  CHECK(parseCmdline("nginx: worker process") == std::vector<std::string>{"nginx: worker process"});
  CHECK(parseCmdline(std::string_view("a\0\0b\0", 5)) == std::vector<std::string>{"a", "", "b"});
}

TEST_CASE("parseCgroupPath returns the path naming the container") {
  const std::string id = testing::readProcfsFixture("container-id.txt").substr(0, 64);
  const auto path = parseCgroupPath(readProcfsFixture("container-init-cgroup.txt"));
  REQUIRE(path.ok());
  CHECK(*path == "/docker/" + id);
  CHECK(containerIdFromCgroupPath(*path) == id);
  // No line names a container (32 hex digits are not an id): the v2 path.
  const auto host = parseCgroupPath(readProcfsFixture("host-sleep-cgroup.txt"));
  REQUIRE(host.ok());
  CHECK(*host == "/");
  CHECK(containerIdFromCgroupPath("/process_api/97cad7f326fd7fa37a50de211d58d736").empty());
  // The v1 line names the container when the v2 line does not.
  CHECK(*parseCgroupPath("1:cpu:/\n0::/system.slice/docker-" + id + ".scope\n") ==
        "/system.slice/docker-" + id + ".scope");
  CHECK(*parseCgroupPath("5:memory:/docker/" + id + "\n0::/\n") == "/docker/" + id);
  CHECK(*parseCgroupPath("0::/user.slice\n") == "/user.slice");
  CHECK(containerIdFromCgroupPath("/../" + id) == id);
  const auto bad = parseCgroupPath(readProcfsFixture("malformed-cgroup.txt"));
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.error().message.find("line 4:") != std::string::npos);
  CHECK_FALSE(parseCgroupPath("").ok());
}

TEST_CASE("parseBootTime reads the btime line of /proc/stat") {
  CHECK(parseBootTime("cpu  1 2 3\nintr 5 0 0\nctxt 9\nbtime 1795358000\nprocesses 7\n").value() ==
        1795358000);
  CHECK(parseBootTime(testing::readFile("/proc/stat")).ok());
  CHECK(parseBootTime("cpu  1 2 3\n").error().code == ErrorCode::kMalformed);
  CHECK(parseBootTime("btime soon\n").error().code == ErrorCode::kMalformed);
}

TEST_CASE("capability names, namespace links and seccomp modes") {
  CHECK(capabilityName(0) == "CAP_CHOWN");
  CHECK(capabilityName(21) == "CAP_SYS_ADMIN");
  CHECK(capabilityName(40) == "CAP_CHECKPOINT_RESTORE");
  CHECK(capabilityName(41) == "CAP_41");
  CHECK(capabilityNames(0).empty());
  CHECK(capabilityNames((1ULL << 12) | 1ULL) ==
        std::vector<std::string>{"CAP_CHOWN", "CAP_NET_ADMIN"});
  CHECK(*parseNamespaceLink("pid:[4026532180]") == 4026532180ULL);
  CHECK_FALSE(parseNamespaceLink("pid:4026532180").ok());
  CHECK_FALSE(parseNamespaceLink("pid:[x]").ok());
  CHECK(seccompModeName(0) == "disabled");
  CHECK(seccompModeName(1) == "strict");
  CHECK(seccompModeName(2) == "filter");
}

}  // namespace
}  // namespace zastava
