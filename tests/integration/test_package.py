#!/usr/bin/python3
"""cmake/packaging.cmake: `cpack -G DEB` on the build tree holding --agent makes a
.deb with the expected files, modes, root ownership, conffiles and control fields; lintian
reports no error; the maintainer scripts parse and refuse unknown arguments. As root: a real
install (apt-get, as docs/operations.md says) in an isolated Debian 12 root, never on this
host, twice: in a minimal root (the postinst's adduser branch, a docker group made beforehand)
and in one with systemd installed (its sysusers and tmpfiles branch, no docker group before).
Each creates the user and its directories, `--check-config` runs as that user with agent.env,
a reinstall keeps an edited conffile and its mode, and purge removes the data (the user stays:
Debian policy); the package's Depends come from Debian's mirror inside the root. Afterwards
the host's users, groups, dpkg database and /var/lib/zastava-agent are as they were before.

The root: `debootstrap --variant=minbase bookworm` (a few minutes, network), made once and
cached as BUILD/package-test-root/bookworm-minbase.tar (about 170 MB) with the .debs apt
downloads into it in BUILD/package-test-root/debs/ (later runs need no network); each run
unpacks a fresh copy under /tmp/zit-package-XXXX and enters it with chroot in new mount and
PID namespaces (its /proc and every process started there end with them). When debootstrap
fails (no network) the install test is skipped (exit 77), and fails under CI.
Needs cmake (cpack), dpkg-dev (dpkg-shlibdeps), lintian, debootstrap; no engine."""

import difflib
import fcntl
import glob
import gzip
import hashlib
import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
PACKAGE = "zastava-agent"
TOOLS = ("cpack", "dpkg-deb", "dpkg-shlibdeps", "lintian", "debootstrap")
USER = "zastava-agent"
DATA_DIR = "/var/lib/zastava-agent"
CONF_DIR = "/etc/zastava-agent"
ENV_FILE = CONF_DIR + "/agent.env"
CONFFILES = [ENV_FILE, "/etc/apparmor.d/usr.bin.zastava-agent"]
SCRIPTS = ("postinst", "prerm", "postrm")
DOC = "/usr/share/doc/zastava-agent/"
# apt-get inside the isolated root: no recommends, no prompt.
APT = ["apt-get", "-y", "-q", "--no-install-recommends"]
SUITE = "bookworm"
MIRROR = os.environ.get("ZIT_DEBIAN_MIRROR", "http://deb.debian.org/debian")
ROOT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# What the install test must leave as it was on this host.
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow", "/var/lib/dpkg/status")
# Why the isolated root could not be made (no network), when it could not: the script then
# exits 77 (skipped) instead of 0.
ROOT_UNAVAILABLE = None


class RootUnavailable(Exception):
    pass


def expected_files():
    """{path in the package: mode} for every regular file."""
    files = {
        "/usr/bin/zastava-agent": 0o755,
        "/usr/lib/systemd/system/zastava-agent.service": 0o644,
        "/usr/lib/sysusers.d/zastava-agent.conf": 0o644,
        "/usr/lib/tmpfiles.d/zastava-agent.conf": 0o644,
        "/usr/share/zastava-agent/selinux/zastava_agent.te": 0o644,
        "/usr/share/zastava-agent/selinux/zastava_agent.fc": 0o644,
        "/usr/share/zastava-agent/selinux/zastava_agent.if": 0o644,
        "/usr/share/zastava-agent/dashboards/zastava-agent.rules.yml": 0o644,
        "/usr/share/zastava-agent/dashboards/zastava-agent.rules.test.yml": 0o644,
        "/usr/share/zastava-agent/dashboards/zastava-observability.json": 0o644,
        "/usr/share/zastava-agent/nats/zastava-records.stream.json": 0o644,
        "/usr/share/zastava-agent/nats/zastava-store.consumer.json": 0o644,
        "/usr/share/man/man8/zastava-agent.8.gz": 0o644,
        DOC + "README.md": 0o644,
        DOC + "CONTRIBUTING.md": 0o644,  # docs/architecture.md links to it
        DOC + "copyright": 0o644,
        DOC + "changelog.gz": 0o644,
        DOC + "docs/record-schema.json": 0o644,
    }
    files.update({path: 0o644 for path in CONFFILES})
    for doc in glob.glob(os.path.join(ARGS.source_dir, "docs", "*.md")):
        files[DOC + "docs/" + os.path.basename(doc)] = 0o644
    return files


def run(*cmd, env=None, timeout=120):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


def check(*cmd, env=None):
    res = run(*cmd, env=env)
    if res.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {res.returncode}\n{res.stdout}{res.stderr}")
    return res.stdout


def deb_tar(deb, part):
    """The .deb's data (part "fsys") or control ("ctrl") archive, opened."""
    data = subprocess.run(["dpkg-deb", f"--{part}-tarfile", deb], capture_output=True,
                          check=True).stdout
    return tarfile.open(fileobj=io.BytesIO(data))


def in_root(root, *cmd, timeout=600):
    """cmd chrooted into root with a clean environment, in new mount and PID namespaces: the
    /proc mounted there and any process left running end with the command."""
    return run("unshare", "--mount", "--pid", "--fork", "--propagation", "private",
               "chroot", root, "/usr/bin/env", "-i", "PATH=" + ROOT_PATH, "HOME=/root",
               "LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive",
               "/bin/sh", "-c", 'mount -t proc proc /proc && exec "$@"', "sh", *cmd,
               timeout=timeout)


def check_in_root(root, *cmd, timeout=600):
    res = in_root(root, *cmd, timeout=timeout)
    if res.returncode != 0:
        raise AssertionError(f"in the root: {' '.join(cmd)}: exit {res.returncode}\n"
                             f"{res.stdout}{res.stderr}")
    return res.stdout


def mounts_under(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        points = [line.split()[1].replace("\\040", " ") for line in f]
    return [p for p in points if p == path or p.startswith(path + "/")]


def cached_root(cache):
    """CACHE/bookworm-minbase.tar: a minimal Debian root made by debootstrap the first time
    (RootUnavailable when it fails), reused afterwards."""
    tarball = os.path.join(cache, f"{SUITE}-minbase.tar")
    os.makedirs(cache, exist_ok=True)
    with open(os.path.join(cache, "lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another run making it at the same time
        if os.path.exists(tarball):
            return tarball
        work = tempfile.mkdtemp(prefix="debootstrap-", dir=cache)
        root = os.path.join(work, "root")
        try:
            h.log(f"making {tarball} (once): debootstrap --variant=minbase {SUITE} {MIRROR}")
            res = run("debootstrap", "--variant=minbase", SUITE, root, MIRROR, timeout=1800)
            if res.returncode != 0:
                detail = (res.stdout + res.stderr)[-2000:]
                log = h.tail(os.path.join(root, "debootstrap", "debootstrap.log"), 2000)
                raise RootUnavailable(
                    f"debootstrap --variant=minbase {SUITE} from {MIRROR} failed (exit "
                    f"{res.returncode}; no network to the mirror? ZIT_DEBIAN_MIRROR sets "
                    f"another):\n{detail}\ndebootstrap.log:\n{log}")
            for deb in glob.glob(os.path.join(root, "var/cache/apt/archives/*.deb")):
                os.remove(deb)  # the base system's, not needed again
            check("tar", "-C", root, "--numeric-owner", "-cf", tarball + ".part", ".")
            os.rename(tarball + ".part", tarball)
            h.log(f"{tarball}: {os.path.getsize(tarball) // 2**20} MiB")
            return tarball
        finally:
            # debootstrap unmounts what it mounted in the root, also when it fails; should one
            # remain, nothing is deleted through it.
            for point in reversed(mounts_under(work)):
                run("umount", "--lazy", point)
            if not mounts_under(work):
                shutil.rmtree(work, ignore_errors=True)


def root_db(root, name):
    """{name: fields} of the root's /etc/passwd or /etc/group."""
    with open(os.path.join(root, "etc", name)) as f:
        return {line.split(":")[0]: line.rstrip("\n").split(":") for line in f if ":" in line}


def owner_mode(root, path):
    st = os.stat(root + path)
    users = {int(e[2]): n for n, e in root_db(root, "passwd").items()}
    groups = {int(e[2]): n for n, e in root_db(root, "group").items()}
    return (users.get(st.st_uid, st.st_uid), groups.get(st.st_gid, st.st_gid),
            oct(st.st_mode & 0o7777))


def host_state():
    """What the install test must not change on this host."""
    state = {}
    for path in HOST_FILES:
        try:
            with open(path, errors="replace") as f:
                state[path] = f.read()
        except FileNotFoundError:
            state[path] = None
        if path.endswith("shadow") and state[path]:  # a difference names entries, no hashes
            state[path] = "".join(
                line.split(":")[0] + " " + hashlib.sha256(line.encode()).hexdigest()[:12] + "\n"
                for line in state[path].splitlines())
    state["/var/lib/dpkg/info/zastava-agent.*"] = sorted(
        glob.glob("/var/lib/dpkg/info/zastava-agent.*"))
    for path in (DATA_DIR, CONF_DIR, "/usr/bin/zastava-agent"):
        state[path] = os.path.lexists(path)
    return state


def host_changes(before, after):
    changes = []
    for key, old in before.items():
        new = after[key]
        if old == new:
            continue
        if isinstance(old, str) and isinstance(new, str):
            diff = difflib.unified_diff(old.splitlines(), new.splitlines(), "before", "after",
                                        lineterm="", n=1)
            changes.append(f"{key} changed:\n" + "\n".join(list(diff)[:60]))
        else:
            changes.append(f"{key}: {old!r} before, {new!r} after")
    return changes


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zit-package-", dir="/tmp")
        cls.addClassCleanup(shutil.rmtree, cls.tmp)
        build = os.path.dirname(os.path.dirname(os.path.abspath(ARGS.agent)))
        config = os.path.join(build, "CPackConfig.cmake")
        if not os.path.exists(config):
            raise AssertionError(f"{config} missing: re-run cmake on {build}")
        # -B keeps the package and CPack's staging tree out of the build tree (CPack still
        # writes install_manifest.txt there, as `cmake --install` does).
        h.log(check("cpack", "-G", "DEB", "--config", config, "-B", cls.tmp).strip())
        (cls.deb,) = glob.glob(os.path.join(cls.tmp, "*.deb"))
        cls.version = check(ARGS.agent, "--version").split()[1]

    def field(self, name):
        return check("dpkg-deb", "--field", self.deb, name).strip()

    def test_contents(self):
        """every file expected and no other, at its mode; everything root:root; directories
        0755 (an unstripped binary is a lintian error)"""
        h.log("\n" + check("dpkg-deb", "--contents", self.deb))
        files, problems = {}, []
        with deb_tar(self.deb, "fsys") as tar:
            for m in tar.getmembers():
                path = m.name.lstrip(".")
                if (m.uname, m.gname, m.uid, m.gid) != ("root", "root", 0, 0):
                    problems.append(f"{path} owned by {m.uname}:{m.gname}")
                if m.isdir() and m.mode != 0o755:
                    problems.append(f"{path} directory mode {oct(m.mode)}")
                elif m.isfile():
                    files[path] = m.mode
                elif not m.isdir():
                    problems.append(f"{path} is neither a file nor a directory")
        self.assertEqual(problems, [])
        self.assertEqual({p: oct(m) for p, m in files.items()},
                         {p: oct(m) for p, m in expected_files().items()})

    def test_control(self):
        """name, the agent's version (also the changelog's latest entry), this machine's
        architecture, section, priority; Depends from dpkg-shlibdeps plus adduser; conffiles;
        maintainer scripts 0755"""
        arch = check("dpkg", "--print-architecture").strip()
        self.assertEqual({f: self.field(f) for f in ("Package", "Version", "Architecture",
                                                      "Section", "Priority", "Recommends")},
                         {"Package": PACKAGE, "Version": self.version, "Architecture": arch,
                          "Section": "admin", "Priority": "optional", "Recommends": "docker.io"})
        self.assertEqual(os.path.basename(self.deb), f"{PACKAGE}_{self.version}_{arch}.deb")
        depends = [d.split()[0] for d in self.field("Depends").split(", ")]
        for name in ("adduser", "libc6", "libcurl4", "libsqlite3-0", "libsystemd0"):
            self.assertIn(name, depends)
        with deb_tar(self.deb, "ctrl") as tar:
            modes = {m.name.lstrip("./"): m.mode for m in tar.getmembers() if m.isfile()}
            conffiles = tar.extractfile("./conffiles").read().decode().split()
        self.assertEqual(conffiles, CONFFILES)
        self.assertEqual({s: oct(modes[s]) for s in SCRIPTS}, {s: "0o755" for s in SCRIPTS})
        with deb_tar(self.deb, "fsys") as tar:
            changelog = gzip.decompress(tar.extractfile("." + DOC + "changelog.gz").read())
        self.assertRegex(changelog.decode(), rf"^{PACKAGE} \({re.escape(self.version)}\) ")

    def test_lintian(self):
        """lintian (pedantic, info and experimental tags shown, all printed): no E: or W: tag"""
        res = run("lintian", "--tag-display-limit", "0", "--display-info", "--pedantic",
                  "--display-experimental", self.deb, timeout=170)
        tags = [line for line in res.stdout.splitlines() if re.match(r"^[A-Z]: ", line)]
        h.log("lintian:\n" + "\n".join(tags or ["(no tags)"]))
        self.assertIn(res.returncode, (0, 1), res.stderr)  # 1: tags at or above warning
        self.assertEqual([t for t in tags if t.startswith(("E: ", "W: "))], [])

    def test_maintainer_scripts(self):
        """each script: #!/bin/sh, set -e, parses with `sh -n`, exits 1 on an unknown argument
        (before doing anything)"""
        with deb_tar(self.deb, "ctrl") as tar:
            for name in SCRIPTS:
                with self.subTest(script=name):
                    text = tar.extractfile("./" + name).read().decode()
                    path = os.path.join(self.tmp, name)
                    with open(path, "w") as f:
                        f.write(text)
                    self.assertTrue(text.startswith("#!/bin/sh\n"))
                    self.assertRegex(text, r"(?m)^set -e$")
                    self.assertEqual(run("sh", "-n", path).returncode, 0)
                    res = run("sh", path, "no-such-argument")
                    self.assertEqual((res.returncode, res.stdout), (1, ""), res.stderr)
                    self.assertIn("unknown argument", res.stderr)

    @unittest.skipUnless(os.geteuid() == 0, "installing a package needs root")
    def test_install_reinstall_purge(self):
        """in an isolated Debian 12 root, never on this host, once with the minimal root
        (adduser; a docker group exists) and once with systemd in it (sysusers and tmpfiles;
        no docker group before): apt-get install: system user (nologin, home the data
        directory, in docker when that group exists), /var/lib/zastava-agent 0750
        zastava-agent, /etc/zastava-agent 0750 and agent.env 0640 root:zastava-agent, conffiles
        registered, unit not enabled; --check-config as the user reads a setting from
        agent.env; reinstall keeps the edited agent.env and its mode; purge removes data and
        configuration, the user stays. This host's users, groups, dpkg database and
        /var/lib/zastava-agent are unchanged."""
        global ROOT_UNAVAILABLE
        before = host_state()
        self.addCleanup(lambda: self.assertEqual(host_changes(before, host_state()), [],
                                                 "the test changed this host"))
        build = os.path.dirname(os.path.dirname(os.path.abspath(ARGS.agent)))
        cache = os.path.join(build, "package-test-root")
        try:
            tarball, why = cached_root(cache), None
        except RootUnavailable as exc:
            tarball, why = None, str(exc)
        if why and os.environ.get("CI"):
            self.fail(f"no isolated Debian root for the install test: {why}")
        if why:
            ROOT_UNAVAILABLE = why.splitlines()[0]
            self.skipTest(ROOT_UNAVAILABLE)
        for variant in ("adduser", "sysusers"):
            with self.subTest(postinst=variant):
                root = os.path.join(self.tmp, "root-" + variant)
                try:
                    self.install_reinstall_purge(tarball, os.path.join(cache, "debs"), root,
                                                 variant)
                finally:
                    if not mounts_under(root):
                        shutil.rmtree(root, ignore_errors=True)

    def apt_in_root(self, root, *args):
        """apt-get ARGS in the root; once more after `apt-get update` when it fails (the
        cached root's package lists may be older than the mirror)."""
        res = in_root(root, *APT, *args)
        if res.returncode != 0:
            h.log(f"apt-get {' '.join(args)} failed, updating the lists:\n{res.stderr[-1500:]}")
            check_in_root(root, "apt-get", "-q", "update")
            check_in_root(root, *APT, *args)

    def install_reinstall_purge(self, tarball, debs, root, variant):
        h.log(f"{variant}: a fresh root in {root}")
        os.makedirs(root)
        check("tar", "-C", root, "--numeric-owner", "-xpf", tarball)
        if os.path.exists("/etc/resolv.conf"):
            shutil.copyfile("/etc/resolv.conf", os.path.join(root, "etc/resolv.conf"))
        policy = os.path.join(root, "usr/sbin/policy-rc.d")  # no service starts in the root
        with open(policy, "w") as f:
            f.write("#!/bin/sh\nexit 101\n")
        os.chmod(policy, 0o755)
        # .debs downloaded by earlier runs go in, new ones come out: no network next time.
        os.makedirs(debs, exist_ok=True)
        archives = os.path.join(root, "var/cache/apt/archives")
        for deb in glob.glob(os.path.join(debs, "*.deb")):
            shutil.copy(deb, archives)
        deb = "/tmp/" + os.path.basename(self.deb)
        shutil.copy(self.deb, root + deb)
        try:
            if variant == "sysusers":
                self.apt_in_root(root, "install", "systemd")
                self.assertEqual(in_root(root, "getent", "group", "docker").returncode, 2)
            else:
                check_in_root(root, "groupadd", "--system", "docker")
            self.apt_in_root(root, "install", deb)
        finally:
            for new in glob.glob(os.path.join(archives, "*.deb")):
                if not os.path.exists(os.path.join(debs, os.path.basename(new))):
                    shutil.copy(new, debs)

        def installed():
            res = in_root(root, "dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE)
            return res.returncode == 0 and res.stdout == "installed"

        self.assertTrue(installed())
        users = root_db(root, "passwd")
        groups = root_db(root, "group")
        _, _, uid, gid, _, home, shell = users[USER]
        self.assertLess(int(uid), 1000)
        self.assertEqual((home, shell), (DATA_DIR, "/usr/sbin/nologin"))
        self.assertEqual([n for n, e in groups.items() if e[2] == gid], [USER])
        self.assertIn("docker", groups, "a docker group made beforehand or by sysusers")
        self.assertIn(USER, groups["docker"][3].split(","))
        expected_modes = {DATA_DIR: (USER, USER, "0o750"), CONF_DIR: ("root", USER, "0o750"),
                          ENV_FILE: ("root", USER, "0o640")}
        self.assertEqual({p: owner_mode(root, p) for p in expected_modes}, expected_modes)
        self.assertEqual(
            check_in_root(root, "dpkg-query", "-W", "-f=${Conffiles}", PACKAGE).split()[::2],
            CONFFILES)
        self.assertEqual(glob.glob(root + "/etc/systemd/system/*/zastava-agent.service"), [],
                         "the unit is enabled")

        with open(root + ENV_FILE, "a") as f:
            f.write("ZASTAVA_AGENT__HealthCheck__Port=9999\n")
        out = check_in_root(root, "runuser", "-u", USER, "--", "sh", "-c",
                            f"set -a; . {ENV_FILE}; exec /usr/bin/zastava-agent --check-config")
        self.assertIn("HealthCheck:Port = 9999 (env ZASTAVA_AGENT__HealthCheck__Port)",
                      out.splitlines())

        self.apt_in_root(root, "install", "--reinstall", deb)
        with open(root + ENV_FILE) as f:
            self.assertIn("ZASTAVA_AGENT__HealthCheck__Port=9999\n", f.read())
        self.assertEqual({p: owner_mode(root, p) for p in expected_modes}, expected_modes)

        with open(os.path.join(root + DATA_DIR, "zastava-agent.db"), "w") as f:
            f.write("records")
        self.apt_in_root(root, "purge", PACKAGE)
        self.assertEqual(in_root(root, "dpkg-query", "-W", PACKAGE).returncode, 1, "still known")
        self.assertEqual([p for p in (DATA_DIR, CONF_DIR) if os.path.exists(root + p)], [])
        self.assertEqual(root_db(root, "passwd")[USER][5], DATA_DIR, "the user stays")
        self.assertFalse(installed())


def skip_reason():
    missing = [t for t in TOOLS if not shutil.which(t)]
    return (f"missing: {', '.join(missing)} (cmake, dpkg-dev, lintian, debootstrap)"
            if missing else None)


if __name__ == "__main__":
    try:
        h.main(globals(), why_skip=skip_reason)  # packaging tools, not dockerd, haproxy, root
    except SystemExit as done:
        if done.code == 0 and ROOT_UNAVAILABLE:
            print(f"SKIP: the install test: {ROOT_UNAVAILABLE}")
            sys.exit(77)
        raise
