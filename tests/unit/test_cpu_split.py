"""The benchmark's CPU split: a busy child counts as a worker, not as the rest."""

from __future__ import annotations

import os
import subprocess
import sys

from benchmarks.cpu import cpu_split

SPIN = """import time
end = time.process_time() + 0.5
while time.process_time() < end:
    pass
print("spun", flush=True)
time.sleep(60)
"""


def test_a_busy_child_is_counted_as_a_worker():
    child = subprocess.Popen([sys.executable, "-c", SPIN], stdout=subprocess.PIPE, text=True)
    try:
        with cpu_split(os.getpid()) as split:
            assert child.stdout.readline() == "spun\n"
    finally:
        child.kill()
        child.wait()
    busy = split.workers * split.seconds  # CPU seconds
    assert busy >= 0.4, split  # the child spun for 0.5 s of CPU time
    total = split.workers + split.frontend + split.other + split.idle
    assert total <= os.cpu_count() * 1.1, split
