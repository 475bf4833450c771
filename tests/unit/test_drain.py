"""The graceful-stop protocol between the stopper and the workers, without a server."""

from __future__ import annotations

import threading
import time

from handlers import drain
from handlers.drain import DrainGate


def test_a_gate_outside_a_server_never_drains():
    with DrainGate(None).batch() as draining:
        assert draining is False


def test_workers_refuse_batches_once_the_flag_is_raised(tmp_path):
    gate = DrainGate(tmp_path)
    with gate.batch() as draining:
        assert draining is False
    drain.begin(tmp_path)
    assert drain.is_draining(tmp_path)
    with gate.batch() as draining:
        assert draining is True
    drain.reset(tmp_path)
    assert not drain.is_draining(tmp_path) and not list(tmp_path.glob(drain.LOCK_GLOB))


def test_the_stopper_waits_for_a_running_batch(tmp_path):
    gate = DrainGate(tmp_path)
    started, release = threading.Event(), threading.Event()

    def worker() -> None:
        with gate.batch():
            started.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    thread.start()
    started.wait(10)
    try:
        assert drain.wait_for_batches(tmp_path, time.monotonic() + 0.3) is False
    finally:
        release.set()
        thread.join()
    assert drain.wait_for_batches(tmp_path, time.monotonic() + 5) is True
