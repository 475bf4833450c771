"""The benchmark tables of docs/benchmarks.md and the README are written from a `make bench`
run's files, never typed.

The sample run is four rows of each table of runs/bench/20261202-040004 and its run.json; its
goals, which that run wrote as prose at the end of a note, are the typed fields a run writes
now.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from benchmarks.plot import throughputs
from benchmarks.readme_tables import (
    BENCH_PAGE,
    FRONT_PAGE,
    headline_measure,
    render,
    render_headline,
)
from benchmarks.results import BENCH_JSON, RunInfo, newest_run, read_tables, write_run

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "bench" / "20261202-040004"
MARKED = """\
# Benchmarks

<!-- bench:run -->
<!-- /bench:run -->

<!-- bench:classification -->
<!-- /bench:classification -->

Prose between the tables stays.

<!-- bench:generation -->
<!-- /bench:generation -->
"""


def table_row(text: str, measure: str) -> list[str]:
    line = next(line for line in text.splitlines() if line.startswith(f"| {measure} |"))
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def section(text: str, name: str) -> str:
    return re.search(rf"<!-- bench:{name} -->\n(.*?)<!-- /bench:{name} -->", text, re.S).group(1)


def test_a_figure_lands_in_its_row_of_its_table_with_thousands_separated():
    text = render(MARKED, SAMPLE)
    served = "served, 64 streams (Locust, no wait)"
    assert table_row(text, served) == [
        served,
        "14,858 tok/s",
        "mean rows per handler call 49.1",
        "",
    ]
    assert served in section(text, "generation")
    assert "1,687 /s" in section(text, "classification")
    assert "| classification (sentiment) | value | note | goal |" in text
    assert "Prose between the tables stays." in text


def test_a_goal_gets_its_own_cell_marked_by_the_runs_own_figure():
    text = render(MARKED, SAMPLE)
    # A missed goal says by how much: 0.66 is 73% of 0.9; 1.48x is 1.23 times the 1.2x limit.
    assert table_row(text, "served / fp32 ceiling")[1:] == [
        "**0.66**",
        "",
        "≥ 0.9 ✗ (73% of the goal)",
    ]
    assert table_row(text, "batched / batchSize 1")[1:] == ["**4.59**", "", "≥ 3 ✓"]
    first_chunk = table_row(text, "served single stream: time to first chunk")
    assert first_chunk[1:] == [
        "**12 ms**",
        "a lone request: prompt + 16 tokens (one handler call)",
        "≤ 20 ms ✓",
    ]
    longest = "session follow-up, first chunk at the longest / shortest history"
    assert table_row(text, longest)[3] == "≤ 1.2x (flat) ✗ (1.23× the limit)"


def test_the_caption_names_the_run_and_what_it_ran_on():
    caption = section(render(MARKED, SAMPLE), "run")
    assert "`tests/data/bench/20261202-040004`" in caption
    assert "2 CPU cores, torch 2.13.0+cpu, 3.9 minutes, arguments `(defaults)`" in caption


def test_a_run_that_recorded_its_cpu_model_names_it(tmp_path):
    """Figures from an AMD EPYC and an Intel Xeon differ by up to 2x: the caption says which."""
    shutil.copytree(SAMPLE, tmp_path / "run")
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    (tmp_path / "run" / "run.json").write_text(json.dumps({**info, "cpu_model": "Some CPU"}))
    caption = section(render(MARKED, tmp_path / "run"), "run")
    assert "2 CPU cores (Some CPU), torch 2.13.0+cpu, 3.9 minutes" in caption


def test_the_readme_renders_once_and_only_between_its_markers():
    text = BENCH_PAGE.read_text()
    once = render(text, SAMPLE)
    assert render(once, SAMPLE) == once
    outside = re.compile(r"<!-- bench:(\w+) -->\n.*?<!-- /bench:\1 -->", re.S)
    assert outside.sub("", once) == outside.sub("", text)
    assert "14,858 tok/s" in section(once, "generation")


def test_a_run_without_a_table_the_readme_shows_is_refused(tmp_path):
    run = tmp_path / "classification-only"
    shutil.copytree(SAMPLE, run)
    tables = json.loads((run / BENCH_JSON).read_text())
    (run / BENCH_JSON).write_text(json.dumps(tables[:1]))
    with pytest.raises(ValueError, match="no generation table"):
        render(MARKED, run)


def test_a_readme_without_the_markers_of_a_table_is_refused():
    with pytest.raises(ValueError, match="bench:generation"):
        render(MARKED.replace("<!-- bench:generation -->\n<!-- /bench:generation -->", ""), SAMPLE)


def test_the_newest_finished_run_is_read_by_default(tmp_path):
    shutil.copytree(SAMPLE, tmp_path / "20261202-040004")
    (tmp_path / "20261203-090000").mkdir()  # still running, or interrupted: no bench.json
    assert newest_run(tmp_path) == tmp_path / "20261202-040004"
    with pytest.raises(FileNotFoundError):
        newest_run(tmp_path / "nothing")


def test_a_written_run_reads_back_the_same(tmp_path):
    info, tables = RunInfo.load(SAMPLE), read_tables(SAMPLE)
    write_run(tmp_path, info, tables)
    assert RunInfo.load(tmp_path) == info
    assert read_tables(tmp_path) == tables
    bench_md = (tmp_path / "bench.md").read_text()
    assert bench_md.startswith("# Benchmark 20261202-040004\n\nOne run, 2 CPU cores")
    assert "| served / fp32 ceiling | 0.66 | goal ≥ 0.9 ✗ (73% of the goal) |" in bench_md


def test_the_readme_headline_is_the_rows_with_a_goal_under_the_runs_caption():
    text = render_headline(FRONT_PAGE.read_text(), SAMPLE)
    headline = section(text, "headline")
    assert headline.startswith("From `tests/data/bench/20261202-040004`: one run, 2 CPU cores")
    assert table_row(headline, "classification: served / fp32 ceiling") == [
        "classification: served / fp32 ceiling",
        "**0.66**",
        "≥ 0.9 ✗ (73% of the goal)",
    ]
    rows = [line for line in headline.splitlines() if line.startswith("| ") and "**" in line]
    assert len(rows) == 5  # the sample's five rows with a goal, and no other
    assert render_headline(text, SAMPLE) == text


def test_a_run_written_before_goals_were_typed_is_refused(tmp_path):
    run = tmp_path / "old"
    shutil.copytree(SAMPLE, run)
    old = [{"title": "Generation (language model)", "rows": [["m", "1.48x", "goal <= 1.2x"]]}]
    (run / BENCH_JSON).write_text(json.dumps(old))
    with pytest.raises(ValueError, match="run `make bench` again"):
        read_tables(run)


def test_a_headline_measure_names_its_table_once():
    assert headline_measure("generation", "served / best raw loop") == (
        "generation: served / best raw loop"
    )
    per_core = "classification: served per server core / bare per core"
    assert headline_measure("classification", per_core) == per_core


def test_the_chart_plots_the_rows_that_are_rates_by_their_unit():
    found = throughputs(read_tables(SAMPLE))
    assert found == {
        "/s": [("ceiling: bare predictor, 2 proc x 1 thread, batch 16, fp32", 1687.0)],
        "tok/s": [("served, 64 streams (Locust, no wait)", 14858.0)],
    }
