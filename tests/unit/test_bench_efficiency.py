"""The bench's per-server-core efficiency, on the numbers recorded by the run the README's
tables come from (runs/bench/20261202-225709, AMD EPYC, 2 cores)."""

from __future__ import annotations

import pytest

from benchmarks.cpu import CpuSplit
from benchmarks.efficiency import (
    CLASSIFY_PER_CORE_GOAL,
    GENERATE_PER_CORE_GOAL,
    efficiency_row,
    per_core_efficiency,
)
from benchmarks.results import Table, goal_verdict

# Classification: 1,815 /s served at batchSize 16 with workers 1.21 + Java frontend 0.34
# cores (Locust and the rest 0.28, idle 0.13); the int8 bare predictor 3,491 /s on 2 x 1.
CLASSIFY_SPLIT = CpuSplit(workers=1.21, frontend=0.34, other=0.28, idle=0.13, seconds=30)
# Generation: 14,680 tok/s served at 64 streams with workers 1.42 + frontend 0.18 cores;
# the best raw loop (the served layout, 2 processes x 1 thread) 26,296 tok/s.
GENERATE_SPLIT = CpuSplit(workers=1.42, frontend=0.18, other=0.14, idle=0.24, seconds=30)


def test_recorded_runs_give_the_efficiency_worked_out_by_hand():
    # (1815 / 1.55) / (3491 / 2) = 1171 / 1745.5
    assert per_core_efficiency(1815, CLASSIFY_SPLIT.server, 3491, 2) == pytest.approx(0.6708, 1e-3)
    # (14680 / 1.60) / (26296 / 2) = 9175 / 13148
    assert per_core_efficiency(14680, GENERATE_SPLIT.server, 26296, 2) == pytest.approx(
        0.6978, 1e-3
    )


def test_the_load_generators_share_does_not_move_the_figure():
    """Locust taking more of the machine lowers served / ceiling, not the per-core figure."""
    busier = CpuSplit(workers=1.21, frontend=0.34, other=0.6, idle=0.0, seconds=30)
    same = [
        efficiency_row("c", "/s", 1815, split, 3491, 2)[1] for split in (CLASSIFY_SPLIT, busier)
    ]
    assert same == ["0.67", "0.67"]


def test_rows_carry_typed_goals_that_the_tables_judge():
    table = Table("Classification (sentiment)")
    table.add(
        *efficiency_row("classification", "/s", 1815, CLASSIFY_SPLIT, 3491, 2),
        goal=CLASSIFY_PER_CORE_GOAL,
    )
    table.add(
        *efficiency_row("generation", "tok/s", 14680, GENERATE_SPLIT, 26296, 2),
        goal=GENERATE_PER_CORE_GOAL,
    )
    (_, c_value, c_note), (_, g_value, g_note) = table.rows
    assert c_value == "0.67" and g_value == "0.70"
    assert "on 1.55 server cores" in c_note and "on 1.60 server cores" in g_note
    assert goal_verdict(c_value, c_note)[1] == "≥ 0.8 ✗ (84% of the goal)"
    assert goal_verdict(g_value, g_note)[1] == "≥ 0.85 ✗ (82% of the goal)"
    met = efficiency_row("g", "tok/s", 14680, GENERATE_SPLIT, 16000, 2)
    assert goal_verdict(met[1], f"{met[2]}; {GENERATE_PER_CORE_GOAL.note()}")[1].endswith("✓")


def test_nothing_measured_is_zero_not_a_division_error():
    assert per_core_efficiency(100, 0.0, 3491, 2) == 0.0
    assert per_core_efficiency(0, 1.5, 3491, 2) == 0.0
