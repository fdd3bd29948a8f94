"""Runs a command against a private dockerd: for the C++ tests that need a real engine.

    with_dockerd.py COMMAND [ARGS...]

Starts dockerd in /tmp/zit-XXXX (harness.PrivateDockerd), imports zastava-test/busybox:1, runs
COMMAND with ZASTAVA_TEST_DOCKER_HOST (the engine's unix:// endpoint) and ZASTAVA_TEST_DOCKER_CLI
(the docker CLI to use) in its environment, stops dockerd and exits with COMMAND's status. Exits 77
(skipped) when this machine cannot run dockerd, except under CI, where that is a failure.
"""

import os
import subprocess
import sys

from harness import Workspace, docker_cli, log, skip_reason


def main():
    command = sys.argv[1:]
    if not command:
        print(__doc__)
        return 2
    reason = skip_reason()
    if reason:
        if os.environ.get("CI"):
            print(f"FAIL: {reason} (the README's test command should have installed it)")
            return 1
        print(f"SKIP: {reason}")
        return 77
    ws = Workspace()
    try:
        d = ws.dockerd()
        d.make_busybox_image()
        env = dict(os.environ, ZASTAVA_TEST_DOCKER_HOST=d.endpoint,
                   ZASTAVA_TEST_DOCKER_CLI=docker_cli())
        log(f"running {' '.join(command)}")
        return subprocess.run(command, env=env).returncode
    finally:
        ws.close()


if __name__ == "__main__":
    sys.exit(main())
