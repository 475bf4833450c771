"""The bench's per-server-core efficiency, on the numbers recorded by the run docs/benchmarks.md's
tables come from (runs/bench/20261202-225709, AMD EPYC, 2 cores)."""

from __future__ import annotations

import pytest

from benchmarks import goals
from benchmarks.cpu import CpuSplit
from benchmarks.efficiency import efficiency_row, per_core_efficiency
from benchmarks.results import Goal, Row, Table

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
        efficiency_row("c", "/s", 1815, split, 3491, 2).value for split in (CLASSIFY_SPLIT, busier)
    ]
    assert same == ["0.67", "0.67"]


def test_rows_carry_typed_goals_that_the_tables_judge():
    table = Table("Classification (sentiment)")
    table.put(efficiency_row("c", "/s", 1815, CLASSIFY_SPLIT, 3491, 2, goals.CLASSIFY_PER_CORE))
    table.put(
        efficiency_row("g", "tok/s", 14680, GENERATE_SPLIT, 26296, 2, goals.GENERATE_PER_CORE)
    )
    classify, generate = table.rows
    assert classify.value == "0.67" and generate.value == "0.70"
    assert "on 1.55 server cores" in classify.note and "on 1.60 server cores" in generate.note
    assert classify.verdict() == "≥ 0.8 ✗ (84% of the goal)"
    assert generate.verdict() == "≥ 0.85 ✗ (82% of the goal)"
    met = efficiency_row("g", "tok/s", 14680, GENERATE_SPLIT, 16000, 2, goals.GENERATE_PER_CORE)
    assert met.verdict() == "≥ 0.85 ✓"
    assert "goal ≥ 0.8 ✗" in table.markdown()


def test_a_goal_is_stated_with_its_unit_and_a_missed_limit_by_how_much():
    assert Goal("<=", 50, "ms").verdict(47) == "≤ 50 ms ✓"
    assert Goal(">=", 40, "x").verdict(18.4) == "≥ 40x ✗ (46% of the goal)"
    assert Goal("<=", 1.2, "x", "flat").verdict(1.48) == "≤ 1.2x (flat) ✗ (1.23× the limit)"
    with pytest.raises(ValueError, match="needs the figure"):
        Row("served / fp32 ceiling", "0.66", goal=Goal(">=", 0.9))


def test_nothing_measured_is_zero_not_a_division_error():
    assert per_core_efficiency(100, 0.0, 3491, 2) == 0.0
    assert per_core_efficiency(0, 1.5, 3491, 2) == 0.0
