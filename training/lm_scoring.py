"""How a language model is scored: nats per character over contiguous streams with carried state.

The trainer (choosing its best checkpoint) and `training.evaluate_lm` (scoring an archive) both
call `evaluate_nll`, so the figure a run reports is the figure its archive gives back.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.language_model import RecurrentLM

EVAL_STREAMS = 8  # the validation text is scored as this many contiguous streams
EVAL_BPTT = 256  # tokens per forward call while scoring (state is carried across calls)


def stream_batches(ids: torch.Tensor, streams: int) -> torch.Tensor:
    """[streams, length]: the token sequence cut into contiguous streams, the tail dropped."""
    length = ids.numel() // streams
    return ids[: streams * length].view(streams, length)


@torch.no_grad()
def evaluate_nll(
    model: RecurrentLM, ids: torch.Tensor, streams: int = EVAL_STREAMS, bptt: int = EVAL_BPTT
) -> float:
    """Total negative log-likelihood (nats) of ``ids[1:]`` given the preceding tokens, in fp32.

    The tokens are scored as ``streams`` contiguous pieces with state carried within each; the
    first token of each piece is given, not scored, and its likelihood is charged separately
    under a uniform distribution so every token of the text counts (a slight pessimism)."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    data = stream_batches(ids, streams).to(device)
    total, state = 0.0, None
    for start in range(0, data.shape[1] - 1, bptt):
        window = data[:, start : start + bptt + 1]
        logits, state = model(window[:, :-1], state)
        total += nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(), window[:, 1:].reshape(-1), reduction="sum"
        ).item()
    leftover = ids.numel() - data.shape[1] * streams + streams  # unscored tokens
    model.train(was_training)
    return total + leftover * math.log(model.config.vocab_size)
