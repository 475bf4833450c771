"""Print the pinned requirements of dependency groups from pyproject.toml, one per line.

    python scripts/pins.py serve > serve.txt      # what the serving image installs

The Dockerfiles install from this instead of the package itself, so the image holds only the
group's packages; pyproject.toml stays the one list of pins. Standard library only: it runs
before anything is installed.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pins(groups: list[str], pyproject: Path = PYPROJECT) -> list[str]:
    project = tomllib.loads(pyproject.read_text())["project"]
    extras = project["optional-dependencies"]
    unknown = [group for group in groups if group not in extras]
    if unknown:
        raise SystemExit(f"no such group(s) {unknown}; pyproject.toml has {sorted(extras)}")
    wanted = [pin for group in groups for pin in extras[group]]
    return list(dict.fromkeys(wanted))  # in order, each once


if __name__ == "__main__":
    print("\n".join(pins(sys.argv[1:])))
