"""The precision a served model runs in: its model-config.yaml's ``quantize``, for this machine.

Both int8 paths (`models.int8_linear.Int8Linear` for the LM, `models.int8_classifier` for the
classifier) multiply with `torch._int_mm`. Where the CPU has AVX-512 VNNI that is the faster
path, and on the two machine kinds this project measures it is; on a CPU without it (an AMD
EPYC with AVX2 only) the same kernels ran about an order of magnitude slower than fp32
(docs/experiments/cpu.md has the figures). So ``auto``, what the archives pack, serves int8
only where the CPU has VNNI, and fp32 elsewhere. The choice is the machine's, not the load's:
a server answers the same way every time it starts on the same machine.
"""

from __future__ import annotations

import torch

AUTO = "auto"
INT8 = "int8"
OFF = (None, "", "none")  # fp32


def int8_is_fast() -> bool:
    """Whether this CPU has the integer dot-product instructions (AVX-512 VNNI) that make
    `torch._int_mm` faster than an fp32 product."""
    return bool(torch.cpu._is_vnni_supported())


def resolve_quantize(
    requested: str | None, device: torch.device, int8_available: bool = True
) -> str | None:
    """``"int8"`` or ``None`` (fp32) for a model on ``device``.

    ``auto`` is int8 on a CPU where `int8_is_fast` and the model has an int8 form
    (``int8_available``: the int8 classifier has LSTM cells only), else fp32. ``int8`` stays
    int8, to measure it where it is slow; a model that cannot run it says so when it loads.
    """
    if requested not in (*OFF, AUTO, INT8):
        raise ValueError(f"quantize must be 'auto', 'int8' or None, got {requested!r}")
    if requested in OFF:
        return None
    if requested == AUTO:
        fast = device.type == "cpu" and int8_available and int8_is_fast()
        return INT8 if fast else None
    return INT8
