"""Time and peak memory of one command in its own process, as ``/usr/bin/time -f %M`` would.

``resource.getrusage(RUSAGE_CHILDREN)`` is the largest peak of *every* child waited for so far
(and of their children), so it reports an earlier, larger process; ``os.wait4`` gives the
resource usage of exactly the process it waits for.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def run_measured(command: list[str], log: Path | None = None,
                 env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``command``; return (wall seconds, peak resident GiB of that process).

    Output goes to ``log`` (or is discarded); ``env`` replaces the environment when given.
    Raises ``RuntimeError`` with the log's tail when the command fails.
    """
    started = time.perf_counter()
    with open(log if log is not None else os.devnull, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        tail = log.read_text()[-3000:] if log is not None else ""
        raise RuntimeError(f"{' '.join(command)} exited {code}\n{tail}")
    return seconds, usage.ru_maxrss / 2**20  # Linux reports KiB
