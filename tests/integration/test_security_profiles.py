#!/usr/bin/python3
"""The AppArmor profile (deploy/apparmor) and the SELinux policy module (deploy/selinux), checked
without loading them, so they are checked the same on a kernel with neither LSM (this one):
apparmor_parser compiles the profile for Debian's pinned kernel feature set with no warning of
its own, its includes resolve, the site override included; the profile grants what the agent
needs and nothing broad. The module builds with the reference policy's devel Makefile,
checkmodule and semodule_package accept it, it writes only in the data directory, and its file
contexts label the binary, the configuration and the data directory. --agent is not used."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness as h  # noqa: E402

ARGS = None
PROFILE = "usr.bin.zastava-agent"
# The feature set Debian's apparmor compiles policy for (policy-features= in
# /etc/apparmor/parser.conf), given as the kernel's so the result does not depend on this kernel.
FEATURES = "/usr/share/apparmor-features/features"
APPARMOR_D = "/etc/apparmor.d"
SELINUX_MAKEFILE = "/usr/share/selinux/devel/Makefile"
TOOLS = ("apparmor_parser", "make", "checkmodule", "semodule_package", "semodule_unpackage")


def run(args, cwd=None):
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=60)


def skip_reason():
    missing = [t for t in TOOLS if not shutil.which(t)]
    missing += [f for f in (FEATURES, SELINUX_MAKEFILE, f"{APPARMOR_D}/abstractions/base")
                if not os.path.exists(f)]
    return f"missing: {', '.join(missing)}" if missing else None


# ----------------------------------------------------------------------------------------------
# AppArmor

def include_base(directory, local_override=None):
    """An include directory with /etc/apparmor.d's tunables, abstractions and abi, and a local/
    holding only `local_override` (if given): the system's own local/ never takes part."""
    os.makedirs(os.path.join(directory, "local"))
    for name in ("tunables", "abstractions", "abi"):
        os.symlink(os.path.join(APPARMOR_D, name), os.path.join(directory, name))
    if local_override is not None:
        with open(os.path.join(directory, "local", PROFILE), "w") as f:
            f.write(local_override)
    return directory


def parser(base, *args):
    return run(["apparmor_parser", "--skip-kernel-load", "--skip-cache",
                "--kernel-features", FEATURES, "--base", base, *args])


def warnings(result):
    """The warning messages, without the "Warning from profile NAME (FILE): " prefix."""
    return {re.sub(r"^Warning from .*?\): ", "", line)
            for line in result.stderr.splitlines() if line.startswith("Warning")}


def rules(text):
    """The profile's lines without comments and blank lines (#include lines stay)."""
    lines = (line.strip() for line in text.splitlines())
    return [s for s in lines if s and (s.startswith("#include") or not s.startswith("#"))]


class AppArmorProfile(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zit-aa-", dir="/tmp")
        cls.path = os.path.join(ARGS.source_dir, "deploy", "apparmor", PROFILE)
        with open(cls.path) as f:
            cls.rules = rules(f.read())
        cls.base = include_base(os.path.join(cls.tmp, "base"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_compiles_without_warnings(self):
        """apparmor_parser --Werror: exit 0, nothing on stdout or stderr"""
        res = parser(self.base, "--Werror", self.path)
        self.assertEqual((res.returncode, res.stdout, res.stderr), (0, "", ""), "apparmor_parser")

    def test_no_warning_of_its_own(self):
        """with every warning on, only those its abstractions cause on their own"""
        includes = "\n".join(r for r in self.rules if r.startswith("#include <abstractions/"))
        baseline = os.path.join(self.tmp, "baseline")
        with open(baseline, "w") as f:
            f.write(f"abi <abi/3.0>,\n#include <tunables/global>\nprofile baseline {{\n"
                    f"{includes}\n}}\n")
        ours = parser(self.base, "--warn", "all", self.path)
        theirs = parser(self.base, "--warn", "all", baseline)
        self.assertEqual((ours.returncode, theirs.returncode), (0, 0), ours.stderr + theirs.stderr)
        h.log(f"warnings with --warn all: {sorted(warnings(ours))}")
        self.assertLessEqual(warnings(ours), warnings(theirs), "warnings of the profile's own")

    def test_includes_resolve(self):
        """-p: tunables, abstractions and the site's local/usr.bin.zastava-agent are pulled in;
        the profile still compiles with an override in place"""
        base = include_base(os.path.join(self.tmp, "with-override"),
                            "  /srv/zastava-site-override/** r,\n")
        res = parser(base, "--preprocess", self.path)
        self.assertEqual(res.returncode, 0, res.stderr)
        for name in ("tunables/global", "abstractions/base", "abstractions/openssl",
                     "abstractions/ssl_certs", f"local/{PROFILE}"):
            self.assertIn(f"##included <{name}>", res.stdout)
        self.assertIn("/srv/zastava-site-override/** r,", res.stdout)
        res = parser(base, "--Werror", self.path)
        self.assertEqual((res.returncode, res.stderr), (0, ""), "compiled with the override")

    def test_grants_what_the_agent_needs(self):
        """attached to /usr/bin/zastava-agent; engine sockets, data directory, configuration,
        /proc, ptrace read, its three capabilities; the site override hook"""
        expected = [
            "profile zastava-agent /usr/bin/zastava-agent flags=(attach_disconnected) {",
            "capability sys_ptrace,", "capability dac_read_search,",
            "capability checkpoint_restore,", "ptrace (read),",
            "@{PROC}/@{pid}/{stat,status,cmdline,cgroup,maps} r,",
            "@{PROC}/@{pid}/task/@{tid}/children r,",
            "@{run}/docker.sock rw,", "@{run}/user/@{uid}/docker.sock rw,",
            "network unix stream,", "network inet stream,", "network inet6 stream,",
            "@{run}/systemd/notify w,",
            "/etc/zastava-agent/** r,",
            "/var/lib/zastava-agent/ rw,", "/var/lib/zastava-agent/** rwk,",
            "deny @{PROC}/@{pid}/{environ,mem} r,",
            "#include if exists <local/usr.bin.zastava-agent>",
        ]
        self.assertEqual([r for r in expected if r not in self.rules], [], "rules missing")

    def test_nothing_broad(self):
        """no bare capability/file/network/ptrace/unix rule, no capability beyond the three, no
        trace, exec, mount or profile change; writes only in the data directory and on sockets"""
        bare = {"capability,", "file,", "network,", "ptrace,", "unix,", "signal,", "dbus,",
                "mount,", "umount,", "pivot_root,", "change_profile,", "/** w,", "/** rw,"}
        self.assertEqual([r for r in self.rules if r in bare], [], "bare rules")
        caps = {cap for r in self.rules for m in [re.match(r"capability (.+),$", r)]
                if m for cap in m.group(1).split()}
        self.assertEqual(caps, {"sys_ptrace", "dac_read_search", "checkpoint_restore"})
        for word in ("sys_admin", "dac_override", "change_profile", "mount", "unconfined"):
            self.assertFalse([r for r in self.rules if word in r], f"a rule mentions {word}")
        self.assertEqual([r for r in self.rules if r.startswith("ptrace")], ["ptrace (read),"])
        network = {r for r in self.rules if r.startswith("network")}
        self.assertLessEqual(network, {f"network {family} {kind}," for family in
                                       ("unix", "inet", "inet6") for kind in ("stream", "dgram")}
                             | {"network netlink raw,"})
        writable = {"/var/lib/zastava-agent/", "/var/lib/zastava-agent/**",
                    "@{run}/docker.sock", "@{run}/user/@{uid}/docker.sock",
                    "@{run}/{nscd/socket,systemd/resolve/io.systemd.Resolve}",
                    "@{run}/systemd/notify"}
        for rule in self.rules:
            m = re.match(r"(deny |owner )?(\S+) ([rwakmlixpuc]+),$", rule)
            if not m or m.group(1) == "deny ":
                continue
            path, perms = m.group(2), m.group(3)
            self.assertFalse(set(perms) & set("mixpuc"), f"exec or mmap-exec: {rule}")
            if set(perms) & set("wal"):
                self.assertIn(path, writable, f"write outside the data directory: {rule}")


# ----------------------------------------------------------------------------------------------
# SELinux

WRITE_PERMS = {"write", "append", "create", "unlink", "rename", "link", "setattr", "add_name",
               "remove_name", "rmdir", "reparent"}
FILE_CLASSES = {"file", "dir", "lnk_file", "chr_file", "blk_file", "fifo_file"}
ALLOW = re.compile(r"^\s*allow\s+zastava_agent_t\s+(\{[^}]*\}|\S+?):(\{[^}]*\}|\S+)\s+(.*?);\s*$")


def words(text):
    return text.replace("{", " ").replace("}", " ").split()


def allow_rules(policy_text):
    """(target, class, perms) of every allow rule of zastava_agent_t in m4-expanded policy."""
    out = []
    for line in policy_text.splitlines():
        m = ALLOW.match(line)
        if m:
            targets, classes, perms = (words(g) for g in m.groups())
            out += [(t, c, set(perms)) for t in targets for c in classes]
    return out


class SELinuxModule(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="zit-se-", dir="/tmp")
        source = os.path.join(ARGS.source_dir, "deploy", "selinux")
        for ext in ("te", "if", "fc"):
            shutil.copy(os.path.join(source, f"zastava_agent.{ext}"), cls.tmp)
        cls.make = run(["make", "-f", SELINUX_MAKEFILE, "zastava_agent.pp"], cwd=cls.tmp)
        cls.pp = os.path.join(cls.tmp, "zastava_agent.pp")
        with open(os.path.join(cls.tmp, "tmp", "zastava_agent.tmp")) as f:
            cls.rules = allow_rules(f.read())

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_makefile_builds(self):
        """make -f /usr/share/selinux/devel/Makefile zastava_agent.pp: exit 0, no warning"""
        output = self.make.stdout + self.make.stderr
        h.log(f"make: {output.strip()!r}")
        self.assertEqual(self.make.returncode, 0, output)
        self.assertEqual(re.findall(r"(?im)^.*(?:warn|error).*$", output), [], "make output")
        self.assertGreater(os.path.getsize(self.pp), 0)

    def test_checkmodule_and_semodule_package(self):
        """checkmodule -M -m on the expanded policy, then semodule_package with the file
        contexts unpacked from the Makefile's package"""
        out = os.path.join(self.tmp, "by-hand")
        os.mkdir(out)
        res = run(["checkmodule", "-M", "-m", "-o", f"{out}/zastava_agent.mod",
                   "tmp/zastava_agent.tmp"], cwd=self.tmp)
        self.assertEqual(res.returncode, 0, res.stdout + res.stderr)
        res = run(["semodule_unpackage", self.pp, f"{out}/unpacked.mod", f"{out}/unpacked.fc"])
        self.assertEqual(res.returncode, 0, res.stderr)
        res = run(["semodule_package", "-o", f"{out}/zastava_agent.pp",
                   "-m", f"{out}/zastava_agent.mod", "-f", f"{out}/unpacked.fc"])
        self.assertEqual(res.returncode, 0, res.stderr)
        self.assertGreater(os.path.getsize(f"{out}/zastava_agent.pp"), 0)

    def test_file_contexts(self):
        """the packaged contexts label the binary, /etc/zastava-agent and /var/lib/zastava-agent
        with everything under them, and nothing next to them"""
        out = os.path.join(self.tmp, "contexts")
        os.mkdir(out)
        res = run(["semodule_unpackage", self.pp, f"{out}/m.mod", f"{out}/m.fc"])
        self.assertEqual(res.returncode, 0, res.stderr)
        with open(f"{out}/m.fc") as f:
            entries = [line.split() for line in f if line.strip() and not line.startswith("#")]
        contexts = {e[0]: e[-1] for e in entries}
        self.assertEqual(contexts, {
            "/usr/bin/zastava-agent": "system_u:object_r:zastava_agent_exec_t:s0",
            "/etc/zastava-agent(/.*)?": "system_u:object_r:zastava_agent_conf_t:s0",
            "/var/lib/zastava-agent(/.*)?": "system_u:object_r:zastava_agent_var_lib_t:s0",
        })
        self.assertIn(["/usr/bin/zastava-agent", "--",
                       "system_u:object_r:zastava_agent_exec_t:s0"], entries)

        def label(path):
            return [ctx for regex, ctx in contexts.items() if re.fullmatch(regex, path)]
        for path, type_ in (("/etc/zastava-agent/agent.env", "conf"),
                            ("/var/lib/zastava-agent", "var_lib"),
                            ("/var/lib/zastava-agent/runtime-events/events-1.ndjson", "var_lib"),
                            ("/var/lib/zastava-agent/zastava-agent.db-wal", "var_lib")):
            self.assertEqual(label(path), [f"system_u:object_r:zastava_agent_{type_}_t:s0"], path)
        for path in ("/var/lib/zastava-agent2", "/etc/zastava-agent.bak", "/usr/bin/zastava"):
            self.assertEqual(label(path), [], path)

    def test_grants(self):
        """sys_ptrace, dac_read_search, checkpoint_restore and no other capability; /proc of all
        domains, non-security files read; the engine's socket in both labelings"""
        caps = {(c, p) for t, c, perms in self.rules if c.startswith("capability")
                for p in perms}
        self.assertEqual(caps, {("capability", "sys_ptrace"), ("capability", "dac_read_search"),
                                ("capability2", "checkpoint_restore")})
        have = {(t, c) for t, c, perms in self.rules if "read" in perms or "write" in perms
                or "connectto" in perms}
        for need in (("domain", "file"), ("domain", "lnk_file"),
                     ("non_security_file_type", "file"),
                     ("var_run_t", "sock_file"), ("initrc_t", "unix_stream_socket"),
                     ("container_runtime_t", "sock_file"),
                     ("container_engine_system_domain", "unix_stream_socket"),
                     ("zastava_agent_conf_t", "file")):
            self.assertIn(need, have)
        self.assertFalse([r for r in self.rules if r[0] == "file_type" or "ptrace" in r[2]],
                         "reads of every file type, or ptrace")

    def test_writes_only_in_the_data_directory(self):
        """file writes: the data directory (and /var/lib to create it), plus the stdio that
        init_daemon_domain lets every daemon inherit from systemd or an init script"""
        writes = {(t, c) for t, c, perms in self.rules if c in FILE_CLASSES and perms & WRITE_PERMS}
        self.assertEqual(writes, {
            ("zastava_agent_var_lib_t", "dir"), ("zastava_agent_var_lib_t", "file"),
            ("var_lib_t", "dir"),
            ("init_t", "fifo_file"), ("initrc_t", "fifo_file"), ("initrc_devpts_t", "chr_file"),
            ("init_tmpfs_t", "file"),
        })


if __name__ == "__main__":
    h.main(globals(), why_skip=skip_reason)  # the compilers only: no root, no dockerd
