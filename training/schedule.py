"""The learning-rate schedule and the budget both trainers share.

A default model is trained by every new user on whatever CPU they have, so a run's length is a
*budget*: a number of steps, or minutes of wall time, or both (whichever runs out first). The
learning rate warms up linearly over the first steps, then decays to ``floor`` times its peak
as the budget is spent, so a run that is cut by time still ends with a fully decayed rate
instead of stopping in the middle of a schedule planned in steps.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

SHAPES = ("linear", "cosine", "constant")


@dataclass
class Budget:
    """How long a run may train: ``steps`` and/or ``minutes`` (None means unlimited)."""

    steps: int | None = None
    minutes: float | None = None
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if self.steps is None and self.minutes is None:
            raise ValueError("a training budget needs steps or minutes")

    def elapsed_minutes(self) -> float:
        return (time.monotonic() - self.started) / 60

    def progress(self, step: int) -> float:
        """Share of the budget spent after ``step`` steps, in [0, 1]."""
        shares = []
        if self.steps is not None:
            shares.append(step / max(self.steps, 1))
        if self.minutes is not None:
            shares.append(self.elapsed_minutes() / self.minutes)
        return min(max(shares), 1.0)

    def spent(self, step: int) -> bool:
        return self.progress(step) >= 1.0


def lr_factor(step: int, progress: float, warmup: int, shape: str, floor: float = 0.0) -> float:
    """Multiplier of the peak learning rate at ``step`` with ``progress`` of the budget spent."""
    if shape not in SHAPES:
        raise ValueError(f"schedule shape must be one of {SHAPES}, not {shape!r}")
    ramp = min(1.0, (step + 1) / warmup) if warmup > 0 else 1.0
    if shape == "constant":
        return ramp
    linear = 1.0 - progress
    decay = linear if shape == "linear" else 0.5 * (1.0 + math.cos(math.pi * progress))
    return ramp * (floor + (1.0 - floor) * decay)
