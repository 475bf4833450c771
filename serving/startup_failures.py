"""Why a model did not come up, read from TorchServe's own logs while the server starts.

TorchServe keeps retrying a worker whose handler fails to load and answers "not READY" for
as long as one waits; an archive it cannot open (a manifest it cannot parse: a damaged zip
is refused before the start, `serving.lifecycle.damaged_archive`) it skips with a warning.
Its logs say why within a second or two, so `serving.lifecycle.start` reads them while it
waits and stops with the reason instead of timing out minutes later. The patterns are
TorchServe 0.12's log lines (tested against a real TorchServe in
tests/integration/test_startup_failures.py).
"""

from __future__ import annotations

import re
from pathlib import Path

TS_LOG = "ts_log.log"
MODEL_LOG = "model_log.log"

# "Failed to load model: lm.mar" and, a few lines later, the Java exception that says why.
ARCHIVE_FAILED = re.compile(r"Failed to load model: (?P<archive>\S+?)\.mar\b")
JAVA_EXCEPTION = re.compile(r"^(?P<line>(?:[a-z_$][\w$]*\.)+[A-Z][\w$]*(?:Exception|Error)\b.*)$")
# "Load model failed: lm, error: Worker died." and the worker's last Python exception line.
WORKER_FAILED = re.compile(r"Load model failed: (?P<model>[^,\s]+), error: (?P<error>.*)$")
WORKER_EXCEPTION = re.compile(
    r"W-\d+-(?P<model>\S+?)_[\w.]+-stdout MODEL_LOG - "
    r"(?P<line>[A-Za-z_][\w.]*(?:Error|Exception)\b.*)$"
)


def _lines(path: Path) -> list[str]:
    try:
        return path.read_text(errors="replace").splitlines()
    except OSError:
        return []


def load_failures(logs: Path, models: tuple[str, ...]) -> dict[str, str]:
    """{model: TorchServe's reason} for each of ``models`` that failed to load so far."""
    failures: dict[str, str] = {}
    ts_lines = _lines(logs / TS_LOG)
    for number, line in enumerate(ts_lines):
        archive = ARCHIVE_FAILED.search(line)
        if archive and archive["archive"] in models:
            cause = next(
                (m["line"] for m in map(JAVA_EXCEPTION.match, ts_lines[number + 1 :]) if m),
                "TorchServe could not open the archive",
            )
            failures[archive["archive"]] = f"the archive could not be read ({cause.strip()})"
        worker = WORKER_FAILED.search(line)
        if worker and worker["model"] in models and worker["model"] not in failures:
            failures[worker["model"]] = worker["error"].strip()
    for line in _lines(logs / MODEL_LOG):
        raised = WORKER_EXCEPTION.search(line)
        if raised and raised["model"] in failures:
            failures[raised["model"]] = f"its handler failed to load: {raised['line'].strip()}"
    return failures


def port_taken(logs: Path) -> bool:
    """TorchServe's start-up output says a port it wanted to bind was taken."""
    return any("Address already in use" in line for line in _lines(logs / "startup.log"))
