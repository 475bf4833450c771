"""Int8 products stay close to fp32 (the batch invariance they exist for is tested with the
decode step, tests/unit/test_decode_step.py)."""

from __future__ import annotations

import torch

from models.int8_linear import Int8Linear


def test_int8_linear_stays_close_to_fp32():
    torch.manual_seed(2)
    linear = torch.nn.Linear(64, 96)
    x = torch.randn(10, 64)
    with torch.no_grad():
        exact, approx = linear(x), Int8Linear(linear)(x)
    relative = (approx - exact).norm() / exact.norm()
    assert relative < 0.02, relative
