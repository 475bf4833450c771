"""Which CPU a command ran on: our figures differ by up to 2x between the machines the project
has run on (AMD EPYC, Intel Xeon with AMX), so every written figure names its CPU.
Standard library only: the benchmarks' run records import it too."""

from __future__ import annotations

import platform
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo ("" where there is none)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return ""


def machine() -> str:
    """The CPU's model name, else what the platform says of the processor."""
    return cpu_model() or platform.processor() or platform.machine()
