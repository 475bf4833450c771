"""Mixed precision for training: bf16 autocast where the hardware computes bf16 natively.

On a CPU with avx512_bf16 (the project's 2-core machines have it) an LSTM 2x512 training step
runs faster under bf16 autocast with no loss in quality at equal minutes: compare the steps and
validation loss that `python -m training.train_lm --minutes 2 --precision bf16` and
`--precision fp32` report (docs/experiments/cpu.md). Without native bf16 it
would be emulated and slower, so "auto" falls back to fp32 there.
"""

from __future__ import annotations

import contextlib

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` or ``fp32`` for this device; other values are checked and kept."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, not {precision!r}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if torch.cpu._is_avx512_bf16_supported() else "fp32"


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The forward pass's context: bf16 autocast, or nothing for fp32."""
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()
