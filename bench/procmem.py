"""Memory of a process as bench/ingest.py and bench/engine.py report it: private memory, PSS and
RSS from /proc/PID/smaps_rollup, and the same three of bench/library_floor.cpp.

private = Private_Clean + Private_Dirty: pages mapped by this process only. Private_Clean
includes file pages (shared libraries, the binary) that no other process maps at that moment,
so a library page counts as private in the only process that maps it and as shared as soon as a
second process maps it: the figures of two processes that map the same libraries depend on
whether they were read while both ran.
"""
import subprocess

KEYS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def parse_rollup(text):
    """{'private', 'dirty', 'pss', 'rss': KiB} from smaps_rollup lines ({} when they are not
    there); dirty is Private_Dirty, the part of private that other processes cannot change."""
    values = {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in KEYS:
            values[key] = int(rest.split()[0])
    if len(values) != len(KEYS):
        return {}
    return {"private": values["Private_Clean"] + values["Private_Dirty"],
            "dirty": values["Private_Dirty"], "pss": values["Pss"], "rss": values["Rss"]}


def smaps(pid):
    """{'private', 'dirty', 'pss', 'rss': KiB} of a live process ({} when it is gone)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            return parse_rollup(f.read())
    except OSError:
        return {}


def library_floor(path):
    """{'private', 'dirty', 'pss', 'rss', 'RssFile': KiB} of bench/library_floor.cpp (the agent's
    libraries loaded and libcurl initialised, nothing else), read by the program itself from its
    own smaps_rollup; {} when it is not built. Run it while no agent runs, or the libraries'
    pages it shares with the agent are not private."""
    try:
        text = subprocess.run([path], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError, TypeError):
        return {}
    out = parse_rollup(text)
    if not out:  # a library_floor built before it printed its smaps_rollup
        return {}
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        if key in ("RssFile", "RssAnon", "VmRSS"):
            out[key] = int(rest.split()[0])
    return out


def mib(kib):
    return "n/a" if kib is None else f"{kib / 1024:.1f}"


def triple(m):
    """'private P (dirty D) / PSS S / RSS R MiB' of a smaps() or library_floor() result."""
    if not m:
        return "n/a"
    return (f"private {mib(m['private'])} (dirty {mib(m['dirty'])}) / PSS {mib(m['pss'])} / "
            f"RSS {mib(m['rss'])} MiB")
