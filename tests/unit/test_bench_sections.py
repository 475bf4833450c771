"""`make bench` plans one table per served model from the model's registry entry
(`handlers.registry.Bench`): a third model registered as a classifier gets its served-throughput
table from its entry alone, with no edit in benchmarks/ (the plan is read here, not run: a
full bench takes many minutes)."""

from __future__ import annotations

import argparse
import json
import re
import shutil
from pathlib import Path

import pytest

from benchmarks import classification_table, sections
from benchmarks.readme_tables import BENCH_PAGE, headline, render
from benchmarks.results import BENCH_JSON, Table, read_tables
from handlers import registry
from handlers.registry import Bench, ServedModel

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "bench" / "20261202-040004"
# A third classifier as tests/integration/test_third_model.py registers it: nothing of the
# bench is declared, the defaults serve.
TOPIC = ServedModel(
    "topic",
    "handlers.topic.train",
    examples=({"text": "my dog saw a cat"}, {"text": "the team scored a goal"}),
    answer_key="label",
)


def test_the_two_models_plan_the_tables_the_benchmark_page_shows():
    planned = {section.model: section for section in sections.plan()}
    sentiment, lm = planned["sentiment"], planned["lm"]
    assert sentiment.kind == "classification" and sentiment.scenario == "classify"
    assert sentiment.title == "Classification (sentiment)"
    assert sentiment.ceilings == (None, "int8")  # fp32 and int8, as bench.md has always held
    assert (sentiment.data, sentiment.data_name) == ("sst2", "SST-2")
    assert lm.kind == "generation" and lm.scenario == "generation"
    assert lm.title == "Generation (language model)" and lm.data == "tinyshakespeare"
    page_markers = set(re.findall(r"<!-- bench:(\w+) -->", BENCH_PAGE.read_text())) - {"run"}
    assert {section.marker for section in planned.values()} == page_markers


def test_a_third_classifier_gets_its_served_table_from_its_entry_alone():
    planned = sections.plan((*registry.MODELS, TOPIC))
    assert [section.model for section in planned] == [*registry.names(), "topic"]
    assert planned[-1] == sections.Section(
        model="topic",
        kind="classification",
        title="Classification (topic)",
        marker="",  # bench.md only: docs/benchmarks.md shows the two models'
        scenario="topic",  # the load test's scenario of its generic user
        ceilings=(),  # no bare-predictor rows: the served rate, batched and one by one
        data="",
        data_name="",
        examples=TOPIC.examples,
    )
    only = sections.plan((*registry.MODELS, TOPIC), only=("topic",))
    assert [section.model for section in only] == ["topic"]


def test_a_section_is_measured_by_its_kinds_module(monkeypatch, tmp_path):
    seen = []

    def measure(args, out, section):
        seen.append((out, section.model))
        return section.table()

    monkeypatch.setattr(classification_table, "measure", measure)
    topic = sections.section(TOPIC)
    table = sections.measure(argparse.Namespace(), tmp_path, topic)
    assert seen == [(tmp_path, "topic")]
    assert (table.title, table.marker, table.rows) == ("Classification (topic)", "", [])


def test_a_kind_the_bench_has_no_module_for_is_refused_when_planning():
    odd = ServedModel("odd", "handlers.odd.train", bench=Bench("regression"))
    with pytest.raises(ValueError, match="odd: bench kind 'regression'"):
        sections.plan((odd,))


def test_a_third_models_table_stays_in_bench_md_and_out_of_the_pages(tmp_path):
    run = shutil.copytree(SAMPLE, tmp_path / SAMPLE.name)
    tables = json.loads((run / BENCH_JSON).read_text())
    topic = Table("Classification (topic)")
    topic.rate("served under Locust (48 users, no wait), batchSize 8", 512.0, "/s")
    tables.append({"title": topic.title, "rows": [vars(row) for row in topic.rows], "marker": ""})
    (run / BENCH_JSON).write_text(json.dumps(tables))
    assert [table.marker for table in read_tables(run)] == ["classification", "generation", ""]
    page = render(BENCH_PAGE.read_text(), run)
    assert "512 /s" not in page and "512 /s" not in headline(run)
    shown = str(SAMPLE.relative_to(Path(__file__).resolve().parents[2]))
    same = page.replace(str(run.resolve()), shown)  # the caption names the run's folder
    assert same == render(BENCH_PAGE.read_text(), SAMPLE)  # the two models' tables unchanged
