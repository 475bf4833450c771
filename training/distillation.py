"""The student's loss: gold labels where a row has one, the teacher's logits where it has them.

    python -m training.train_sentiment --distill-weight 0.8 --out artifacts/sentiment

The teacher (training/teacher.py) labels phrases and perturbed sentences that have no gold
label; the sentiment trainer mixes both kinds of target per row with this loss.
"""

from __future__ import annotations

import torch
from torch import nn


def distillation_loss(
    logits: torch.Tensor, gold: torch.Tensor, soft: torch.Tensor, weight: float
) -> torch.Tensor:
    """Cross-entropy on gold labels mixed with squared error to the teacher's logits (Tang et
    al.'s choice: logits keep the teacher's confidence, which softmax targets flatten). A row
    with only one kind of target learns from that one alone. ``gold`` -1 and ``soft`` NaN mark
    missing targets."""
    has_gold = gold >= 0
    has_soft = ~torch.isnan(soft[:, 0])
    hard = nn.functional.cross_entropy(logits, gold.clamp(min=0), reduction="none")
    imitate = (logits - soft.nan_to_num()).pow(2).mean(dim=1)
    mixed = torch.where(
        has_gold & has_soft,
        (1 - weight) * hard + weight * imitate,
        torch.where(has_gold, hard, imitate),
    )
    return mixed.mean()
