"""What sealing costs: the agent idle (no engine: its socket does not exist) for the same time
twice, once sealing every second and once with one seal at stop only, side by side. The
difference of CPU time (every thread's, from /proc/PID/task/*/schedstat, in nanoseconds) over
the difference of seals is the CPU per seal; the seal lines' mean size gives the bytes a day at
the default interval (60 s), in the NDJSON segments and again in SQLite.

  python3 bench/seal_cost.py --agent build/bench/agent/zastava-agent [--seconds 120] [--repeat 3]
"""
import argparse
import glob
import json
import os
import signal
import statistics
import subprocess
import tempfile
import time

DEFAULT_INTERVAL_S = 60


def cpu_ns(pid):
    """CPU time of every thread of `pid`, in nanoseconds (first field of each schedstat)."""
    total = 0
    for stat in glob.glob(f"/proc/{pid}/task/*/schedstat"):
        try:
            with open(stat) as f:
                total += int(f.read().split()[0])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return total


def run_agent(agent, seconds, interval_s, port):
    """(cpu ns of the whole run, seals written, seal line bytes) of one idle agent."""
    with tempfile.TemporaryDirectory(prefix="zbench-seal-") as tmp:
        data = os.path.join(tmp, "data")
        proc = subprocess.Popen(
            [agent, "--data-directory", data, "--docker-endpoint", f"unix://{tmp}/no-engine.sock",
             "--health-address", "127.0.0.1", "--health-port", str(port),
             "--reconnect-max-backoff-seconds", "3600",
             "--ledger-seal-interval-seconds", str(interval_s), "--log-level", "error"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(seconds)
        used = cpu_ns(proc.pid)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        seals = []
        for segment in sorted(glob.glob(os.path.join(data, "runtime-events", "*.ndjson"))):
            with open(segment, "rb") as f:
                for line in f:
                    if json.loads(line).get("kind") == "agent.seal":
                        seals.append(len(line))
        return used, len(seals), statistics.mean(seals) if seals else 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agent", required=True)
    parser.add_argument("--seconds", type=int, default=120)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    per_seal, line_bytes = [], []
    for run in range(args.repeat):
        sealing = run_agent(args.agent, args.seconds, 1, 18190 + 2 * run)
        quiet = run_agent(args.agent, args.seconds, 3600, 18191 + 2 * run)
        seals = sealing[1] - quiet[1]
        per_seal.append((sealing[0] - quiet[0]) / seals / 1000)
        line_bytes.append(sealing[2])
        print(f"run {run + 1}: sealing every 1 s: {sealing[1]} seals, {sealing[0] / 1e6:.1f} ms CPU;"
              f" one seal at stop: {quiet[1]} seal, {quiet[0] / 1e6:.1f} ms CPU;"
              f" {per_seal[-1]:.0f} us CPU per seal")
    mean_line = statistics.mean(line_bytes)
    per_day = 86400 // DEFAULT_INTERVAL_S
    print(f"CPU per seal: median {statistics.median(per_seal):.0f} us over {args.repeat} runs"
          f" ({', '.join(f'{x:.0f}' for x in per_seal)})")
    print(f"seal line: {mean_line:.0f} bytes; at the default {DEFAULT_INTERVAL_S} s: {per_day} seals"
          f" = {per_day * (mean_line) / 1024:.0f} KiB a day in NDJSON, as much again in SQLite")


if __name__ == "__main__":
    main()
