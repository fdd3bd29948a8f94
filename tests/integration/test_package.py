#!/usr/bin/python3
"""cmake/packaging.cmake (issue 6): `cpack -G DEB` on the build tree holding --agent makes a
.deb with the expected files, modes, root ownership, conffiles and control fields; lintian
reports no error; the maintainer scripts parse and refuse unknown arguments. As root, on a
machine without the package: a real install (apt-get, as docs/operations.md says) creates the
user and its directories, `--check-config` runs as that user with agent.env, a reinstall keeps
an edited conffile and its mode, and purge removes the data (the user stays: Debian policy).
Needs cmake (cpack), dpkg-dev (dpkg-shlibdeps), lintian; no engine."""

import glob
import grp
import gzip
import io
import os
import pwd
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
TOOLS = ("cpack", "dpkg-deb", "dpkg-shlibdeps", "lintian")
USER = "zastava-agent"
DATA_DIR = "/var/lib/zastava-agent"
CONF_DIR = "/etc/zastava-agent"
ENV_FILE = CONF_DIR + "/agent.env"
CONFFILES = [ENV_FILE, "/etc/apparmor.d/usr.bin.zastava-agent"]
SCRIPTS = ("postinst", "prerm", "postrm")
DOC = "/usr/share/doc/zastava-agent/"
# apt-get waits for a dpkg lock held by someone else instead of failing; no needrestart prompt.
APT = ["apt-get", "-y", "-q", "--no-install-recommends", "-o", "DPkg::Lock::Timeout=120"]
APT_ENV = dict(os.environ, DEBIAN_FRONTEND="noninteractive", NEEDRESTART_SUSPEND="1")


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
        "/usr/share/man/man8/zastava-agent.8.gz": 0o644,
        DOC + "README.md": 0o644,
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


def installed():
    res = run("dpkg-query", "-W", "-f=${db:Status-Status}", PACKAGE)
    return res.returncode == 0 and res.stdout == "installed"


def owner_mode(path):
    st = os.stat(path)
    return (pwd.getpwuid(st.st_uid).pw_name, grp.getgrgid(st.st_gid).gr_name,
            oct(st.st_mode & 0o7777))


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
        """apt-get install: system user (nologin, home the data directory, in docker when that
        group exists), /var/lib/zastava-agent 0750 zastava-agent, /etc/zastava-agent 0750 and
        agent.env 0640 root:zastava-agent, conffiles registered, unit not enabled;
        --check-config as the user reads a setting from agent.env; reinstall keeps the edited
        agent.env and its mode; purge removes data and configuration, the user stays"""
        if run("dpkg-query", "-W", PACKAGE).returncode == 0:
            self.skipTest(f"{PACKAGE} is already known to dpkg here; not touching it")
        try:
            check(*APT, "install", self.deb, env=APT_ENV)
            self.assertTrue(installed())
            user = pwd.getpwnam(USER)
            self.assertLess(user.pw_uid, 1000)
            self.assertEqual((user.pw_dir, user.pw_shell), (DATA_DIR, "/usr/sbin/nologin"))
            self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, USER)
            if "docker" in (g.gr_name for g in grp.getgrall()):
                self.assertIn(USER, grp.getgrnam("docker").gr_mem)
            expected_modes = {DATA_DIR: (USER, USER, "0o750"), CONF_DIR: ("root", USER, "0o750"),
                              ENV_FILE: ("root", USER, "0o640")}
            self.assertEqual({p: owner_mode(p) for p in expected_modes}, expected_modes)
            self.assertEqual(check("dpkg-query", "-W", "-f=${Conffiles}", PACKAGE).split()[::2],
                             CONFFILES)
            self.assertEqual(glob.glob("/etc/systemd/system/*/zastava-agent.service"), [],
                             "the unit is enabled")

            with open(ENV_FILE, "a") as f:
                f.write("ZASTAVA_AGENT__HealthCheck__Port=9999\n")
            out = check("runuser", "-u", USER, "--", "sh", "-c",
                        f"set -a; . {ENV_FILE}; exec /usr/bin/zastava-agent --check-config")
            self.assertIn("HealthCheck:Port = 9999 (env ZASTAVA_AGENT__HealthCheck__Port)",
                          out.splitlines())

            check(*APT, "install", "--reinstall", self.deb, env=APT_ENV)
            with open(ENV_FILE) as f:
                self.assertIn("ZASTAVA_AGENT__HealthCheck__Port=9999\n", f.read())
            self.assertEqual({p: owner_mode(p) for p in expected_modes}, expected_modes)

            with open(os.path.join(DATA_DIR, "zastava-agent.db"), "w") as f:
                f.write("records")
            check(*APT, "purge", PACKAGE, env=APT_ENV)
            self.assertEqual(run("dpkg-query", "-W", PACKAGE).returncode, 1, "still known")
            self.assertEqual([p for p in (DATA_DIR, CONF_DIR) if os.path.exists(p)], [])
            self.assertEqual(pwd.getpwnam(USER).pw_dir, DATA_DIR, "the user stays")
        finally:
            if run("dpkg-query", "-W", PACKAGE).returncode == 0:
                run(*APT, "purge", PACKAGE, env=APT_ENV)


def skip_reason():
    missing = [t for t in TOOLS if not shutil.which(t)]
    return f"missing: {', '.join(missing)} (cmake, dpkg-dev, lintian)" if missing else None


if __name__ == "__main__":
    h.main(globals(), why_skip=skip_reason)  # packaging tools instead of the default dockerd, haproxy, root
