"""`make bench`'s table of a classifier (a registry entry's `Bench` of kind "classification"):
its served rate under Locust batched and one by one, and p99 at about half of the saturated
rate; where the entry names ceilings, the bare predictor's rate in each quantize mode (and its
dev accuracy) that serving is held to (benchmarks/sections.py plans it, benchmarks/run.py runs
it)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks import goals
from benchmarks.ceiling import classify_ceiling
from benchmarks.cpu import CpuSplit
from benchmarks.efficiency import efficiency_row
from benchmarks.harness import half_saturation, locust, served_settings, server, server_percentiles
from benchmarks.results import Table
from benchmarks.sections import Section
from models.artifact import load_artifact
from models.classifier import ClassifierConfig
from models.classifier_predictor import ClassifierPredictor, classifier_quantize
from training.archive import build_archive, unpack_archive
from training.data import load_sentiment


def measure(args: argparse.Namespace, out: Path, section: Section) -> Table:
    """Dev accuracy and the bare predictor's ceilings (where declared), then the served rate
    batched and one by one, and p99 at about half of the batched rate."""
    table = section.table()
    settings = served_settings(section.model, args.model_store)
    archive = args.model_store / f"{section.model}.mar"
    artifact = unpack_archive(archive, out / f"{section.model}-artifact")
    texts = [example["text"] for example in section.examples if "text" in example]
    if section.data:
        dev = load_sentiment(section.data)["dev"]
        texts = list(dev["sentence"])
        classifier_dev_accuracy(artifact, texts, list(dev["label"]), section, table)
    ceilings = classifier_ceilings(args, artifact, texts, settings, section, table)
    if args.skip_served:
        return table
    served: dict[str, float] = {}
    for variant, batch_size in (("served", settings["batchSize"]), ("batch1", 1)):
        store = archive_with_batch_size(out, artifact, settings, section, variant, batch_size)
        served[variant], split = saturated_classifier(
            args, out, store, section, variant, batch_size, table
        )
        if variant == "served":
            served_split = split
            p99_at_half_saturation(args, out, store, section, served[variant], table)
    cell = ClassifierConfig(**load_artifact(artifact).model).cell
    chosen = classifier_quantize(settings["handler"].get("quantize"), cell, torch.device("cpu"))
    if chosen in ceilings:
        served_against_ceilings(served["served"], served_split, ceilings, chosen, settings, table)
    batched = served["served"] / served["batch1"]
    table.add("batched / batchSize 1", f"{batched:.2f}", "", goals.BATCHED_VS_BATCH1, batched)
    return table


def served_against_ceilings(
    served: float,
    split: CpuSplit,
    ceilings: dict[str | None, float],
    chosen: str | None,
    settings: dict[str, Any],
    table: Table,
) -> None:
    """The served rate against the bare predictor's: in the served mode, per core, and
    against fp32 where that was measured."""
    table.add("served / ceiling of the served model", f"{served / ceilings[chosen]:.2f}", "")
    # The bare predictor's processes each keep their threads busy for the whole timed run.
    bare_cores = settings["minWorkers"] * settings["handler"]["torch_threads"]
    table.put(
        efficiency_row(
            "classification",
            "/s",
            served,
            split,
            ceilings[chosen],
            bare_cores,
            goals.CLASSIFY_PER_CORE,
        )
    )
    if None in ceilings:
        versus_fp32 = served / ceilings[None]
        table.add(
            "served / fp32 ceiling",
            f"{versus_fp32:.2f}",
            "",
            goals.SERVED_VS_FP32_CEILING,
            versus_fp32,
        )


def classifier_dev_accuracy(
    artifact: Path, texts: list, labels: list, section: Section, table: Table
) -> None:
    """Accuracy on the dev sentences in each mode of the ceilings: quantizing must not cost
    accuracy."""
    for quantize in section.ceilings:
        torch.set_num_threads(2)
        predictor = ClassifierPredictor.from_artifact(artifact, quantize=quantize)
        predicted = [p["label"] for p in predictor.predict(texts)]
        correct = sum(p == predictor.labels[y] for p, y in zip(predicted, labels, strict=True))
        table.add(
            f"dev accuracy, {quantize or 'fp32'}",
            f"{correct / len(texts):.4f}",
            f"{len(texts)} {section.data_name} dev sentences",
        )


def classifier_ceilings(
    args: argparse.Namespace,
    artifact: Path,
    texts: list,
    settings: dict[str, Any],
    section: Section,
    table: Table,
) -> dict[str | None, float]:
    """Sentences/s of the bare predictor in the served layout, in each mode of the section's
    ceilings: what serving could reach with nothing else on the cores."""
    batch, workers = settings["batchSize"], settings["minWorkers"]
    threads = settings["handler"]["torch_threads"]
    ceilings = {}
    for quantize in section.ceilings:
        ceilings[quantize] = classify_ceiling(
            str(artifact), texts, batch, workers, threads, args.duration / 2, quantize
        )
        table.rate(
            f"ceiling: bare predictor, {workers} proc x {threads} thread, batch {batch}, "
            f"{quantize or 'fp32'}",
            ceilings[quantize],
            "/s",
            "sentences per second",
        )
    return ceilings


def archive_with_batch_size(
    out: Path,
    artifact: Path,
    settings: dict[str, Any],
    section: Section,
    variant: str,
    batch_size: int,
) -> Path:
    """A model store holding the model's archive with only its batchSize changed."""
    store = out / f"store-{variant}"
    config_file = out / f"{section.model}-{variant}.yaml"
    config_file.write_text(yaml.safe_dump({**settings, "batchSize": batch_size}))
    build_archive(section.model, artifact, store, config_file)
    return store


def saturated_classifier(
    args: argparse.Namespace,
    out: Path,
    store: Path,
    section: Section,
    variant: str,
    batch_size: int,
    table: Table,
) -> tuple[float, CpuSplit]:
    """Requests/s served to Locust users without think time, and where the cores went."""
    run_dir = out / f"server-{variant}"
    with server(store, (section.model,), run_dir):
        result = locust(
            run_dir,
            out / f"locust-{variant}",
            section.scenario,
            args.users,
            args.duration,
            {"LOADTEST_MAX_WAIT": "0"},
        )
    stats = result["stats"][f"/predictions/{section.model}"]
    load = result["loads"][section.model]
    table.rate(
        f"served under Locust ({args.users} users, no wait), batchSize {batch_size}",
        stats.requests_per_s,
        "/s",
        f"p99 {stats.p99_ms:.0f} ms, mean batch {load.mean_batch_size or 0:.1f}, failures "
        f"{stats.failures}",
    )
    table.add(f"CPU while served, batchSize {batch_size}", result["cpu"].describe(), "")
    return stats.requests_per_s, result["cpu"]


def p99_at_half_saturation(
    args: argparse.Namespace,
    out: Path,
    store: Path,
    section: Section,
    saturated: float,
    table: Table,
) -> None:
    """The latency a moderately loaded server gives: users with think time for half the rate."""
    half_users, wait = half_saturation(saturated)
    route = f"/predictions/{section.model}"
    with server(store, (section.model,), out / "server-half"):
        result = locust(
            out / "server-half",
            out / "locust-half",
            section.scenario,
            half_users,
            args.duration,
            {"LOADTEST_MAX_WAIT": str(wait)},
        )
    half = result["stats"][route]
    table.add(
        f"p99 at ~half saturation ({half.requests_per_s:.0f} /s, {half_users} users)",
        f"{half.p99_ms:.0f} ms",
        f"p50 {half.p50_ms:.0f} ms",
        goals.HALF_SATURATION_P99,
        half.p99_ms,
    )
    inside = server_percentiles(out / "server-half", route, (0.5, 0.99))
    if inside:
        table.add(
            "the same, in the server (its access log): p50 / p99",
            f"{inside[0]} / {inside[1]} ms",
            "from receiving a request to answering it",
        )
    table.add("CPU at ~half saturation", result["cpu"].describe(), "")
