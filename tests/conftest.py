"""Shared test set-up: the data directory, no network for anything under test, and how
`make test` shares the tests between its two pytest-xdist workers."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from xdist.scheduler import LoadScopeScheduling

ROOT = Path(__file__).resolve().parent.parent

# Tests read the shared data beside the checkout unless DATA_DIR names another folder.
os.environ["DATA_DIR"] = str((ROOT / os.environ.get("DATA_DIR", "../shared/data")).resolve())
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# Two xdist workers on two cores: each keeps to one torch thread, and so do the commands the
# tests start (TorchServe's workers set their own: 1). Two threads each spin-wait on each
# other's cores: seen on the 2-core EPYC, the unit tests took 3 times their CPU time.
if "PYTEST_XDIST_WORKER" in os.environ:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


# Under `make test` (`-n 2 --dist loadscope`) a unit module is one unit of work, and the
# integration modules are two: most share the session's server, and some stop, kill or freeze
# servers, or measure, so they run in file order on one worker, as they would alone; those in
# BESIDE build, serve and stop only their own models and measure nothing: they run on the other
# worker, with the unit tests.
INTEGRATION = "tests/integration/"
BESIDE = {
    "test_archives.py",
    "test_container.py",
    "test_model_cards.py",
    "test_subword_lm.py",
    "test_third_model.py",
}


def work_unit(nodeid: str) -> str:
    """The unit of work (run on one worker, in order) that the test ``nodeid`` belongs to."""
    module = nodeid.split("::", 1)[0]
    if module.startswith(INTEGRATION):
        return "integration-beside" if module.removeprefix(INTEGRATION) in BESIDE else "integration"
    return module


class WorkUnits(LoadScopeScheduling):
    """xdist's `loadscope` with `work_unit`'s units. (Its `loadgroup` and `xdist_group` do not
    group under pytest 9, whose node ids no longer take xdist's suffix.)"""

    def _split_scope(self, nodeid: str) -> str:
        return work_unit(nodeid)


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log) -> LoadScopeScheduling | None:
    return WorkUnits(config, log) if config.getvalue("dist") == "loadscope" else None
