"""Keep the best weights seen during training (by a score where higher is better)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class BestCheckpoint:
    """A CPU copy of the best-scoring state dict and the record that scored it.

    Training on a time budget evaluates a few times and the last evaluation is usually but not
    always the best; keeping a copy costs one state dict of memory."""

    def __init__(self) -> None:
        self.score = -float("inf")
        self.record: dict[str, Any] = {}
        self.state_dict: dict[str, torch.Tensor] = {}

    def offer(self, model: nn.Module, score: float, record: dict[str, Any]) -> bool:
        """Keep ``model``'s weights if ``score`` beats every earlier offer; True if kept."""
        if score <= self.score:
            return False
        self.score = score
        self.record = dict(record)
        self.state_dict = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        return True
