"""LSTM vs GRU at growing sequence lengths on sine-wave prediction (lesson exercise 2).

    python -m lesson.study --out runs/lesson_study       # a few minutes on 1 thread
    python -m lesson.study --tiny --out /tmp/study       # seconds: a smoke test

The task: read ``seq_len`` noisy samples of a sine wave with a random frequency and phase and
predict the wave's next (clean) value. Noise makes length matter: a model that really integrates
the whole window can estimate frequency and phase better from 100 samples than from 10, so its
error should fall with length; one that only uses the last few samples stays flat. Both cells get
the same hidden size, data, seeds and number of optimizer steps. The naive "repeat the last
sample" error is reported beside them as the scale to beat.

Writes results.md (tables), results.csv (one row per run), results.json (settings, runs and
summary) and mse_vs_length.png into ``--out``.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from docsgen.markdown import markdown_rows
from lesson.plots import pyplot

# Defaults (plain values; each has a flag). 40 epochs as in the lesson's exercise.
OUT = "runs/lesson_study"
LENGTHS = (10, 30, 50, 100)
CELL_NAMES = ("lstm", "gru")
HIDDEN = 32
EPOCHS = 40
TRAIN_SIZE = 2048
TEST_SIZE = 1024
BATCH_SIZE = 64
LR = 5e-3
CLIP_NORM = 1.0
NOISE = 0.1  # standard deviation of the noise added to each observed sample
FREQUENCIES = (0.05, 0.4)  # radians per step: periods of ~16 to ~126 steps
SEEDS = 3
THREADS = 1

TINY = dict(lengths=(5, 10), hidden=8, epochs=2, train_size=128, test_size=64, seeds=1)


@dataclass(frozen=True)
class StudySettings:
    lengths: tuple[int, ...] = LENGTHS
    hidden: int = HIDDEN
    epochs: int = EPOCHS
    steps: int | None = None  # caps optimizer steps per run (overrides epochs when smaller)
    train_size: int = TRAIN_SIZE
    test_size: int = TEST_SIZE
    batch_size: int = BATCH_SIZE
    lr: float = LR
    noise: float = NOISE
    seeds: int = SEEDS
    threads: int = THREADS

    def steps_per_run(self) -> int:
        total = self.epochs * math.ceil(self.train_size / self.batch_size)
        return total if self.steps is None else min(total, self.steps)


def sine_windows(
    count: int, length: int, noise: float, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` windows of ``length`` noisy samples [N, L, 1] and each wave's next clean
    value [N]. Frequency and phase are drawn per window, so nothing can be memorised."""
    low, high = FREQUENCIES
    frequency = low + (high - low) * torch.rand(count, 1, generator=generator)
    phase = 2 * math.pi * torch.rand(count, 1, generator=generator)
    clean = torch.sin(frequency * torch.arange(length + 1) + phase)
    observed = clean[:, :length] + noise * torch.randn(count, length, generator=generator)
    return observed.unsqueeze(-1), clean[:, length]


class SineRegressor(nn.Module):
    """A one-layer LSTM or GRU reading one value per step; a linear head on the last state."""

    def __init__(self, cell: str, hidden: int, input_size: int = 1) -> None:
        super().__init__()
        if cell not in CELL_NAMES:
            raise ValueError(f"cell must be one of {CELL_NAMES}, got {cell!r}")
        self.rnn = getattr(nn, cell.upper())(input_size, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        outputs, _ = self.rnn(inputs)
        return self.head(outputs[:, -1]).squeeze(-1)


def fit(
    model: nn.Module,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    steps: int,
    batch_size: int,
    lr: float,
    generator: torch.Generator,
    bar: tqdm | None = None,
) -> float:
    """Adam with a cosine-decayed learning rate for ``steps`` mini-batches (reshuffled each
    pass over the data); returns the mean training loss of the last pass."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(inputs), generator=generator)
    cursor = 0
    for _ in range(steps):
        if cursor >= len(order):
            order, cursor, losses = torch.randperm(len(inputs), generator=generator), 0, []
        batch = order[cursor : cursor + batch_size]
        cursor += batch_size
        loss = nn.functional.mse_loss(model(inputs[batch]), targets[batch])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.4f}", refresh=False)
    model.eval()
    return float(np.mean(losses)) if losses else math.nan


@torch.inference_mode()
def mse(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return nn.functional.mse_loss(model(inputs), targets).item()


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def warm_up(hidden: int) -> None:
    """One forward/backward per cell before anything is timed: the first call pays one-off
    kernel set-up that would otherwise land on the first run's clock."""
    for cell in CELL_NAMES:
        SineRegressor(cell, hidden)(torch.zeros(2, 3, 1)).sum().backward()


def run_study(settings: StudySettings, progress: bool = True) -> dict[str, Any]:
    """Train every (length, seed, cell) once; returns settings, per-run rows and a summary."""
    torch.set_num_threads(settings.threads)
    steps = settings.steps_per_run()
    total = len(settings.lengths) * settings.seeds * len(CELL_NAMES) * steps
    warm_up(settings.hidden)
    runs: list[dict[str, Any]] = []
    baselines: dict[int, list[float]] = {}
    with tqdm(total=total, disable=not progress, mininterval=0.5, unit="step") as bar:
        for length in settings.lengths:
            for seed in range(settings.seeds):
                # The same windows for both cells; the test set is drawn apart from training.
                data = torch.Generator().manual_seed(1000 * length + seed)
                train_x, train_y = sine_windows(settings.train_size, length, settings.noise, data)
                test_x, test_y = sine_windows(settings.test_size, length, settings.noise, data)
                last_value = nn.functional.mse_loss(test_x[:, -1, 0], test_y).item()
                baselines.setdefault(length, []).append(last_value)
                for cell in CELL_NAMES:
                    bar.set_description(f"{cell} len {length} seed {seed}")
                    torch.manual_seed(seed)
                    model = SineRegressor(cell, settings.hidden)
                    started = time.perf_counter()
                    train_loss = fit(
                        model,
                        train_x,
                        train_y,
                        steps,
                        settings.batch_size,
                        settings.lr,
                        torch.Generator().manual_seed(seed),
                        bar,
                    )
                    runs.append(
                        {
                            "cell": cell,
                            "seq_len": length,
                            "seed": seed,
                            "test_mse": mse(model, test_x, test_y),
                            "train_mse": train_loss,
                            "last_value_mse": last_value,
                            "parameters": parameter_count(model),
                            "rnn_parameters": parameter_count(model.rnn),
                            "steps": steps,
                            "seconds": round(time.perf_counter() - started, 2),
                        }
                    )
    return {"settings": asdict(settings), "runs": runs, "summary": summarize(runs, baselines)}


def summarize(runs: list[dict[str, Any]], baselines: dict[int, list[float]]) -> list[dict]:
    """Mean and standard deviation over seeds of test MSE per cell and length."""
    rows = []
    for length, last_values in baselines.items():
        row: dict[str, Any] = {"seq_len": length, "last_value_mse": float(np.mean(last_values))}
        for cell in CELL_NAMES:
            scores = [r["test_mse"] for r in runs if r["cell"] == cell and r["seq_len"] == length]
            row[f"{cell}_mse"] = float(np.mean(scores))
            row[f"{cell}_std"] = float(np.std(scores))
            row[f"{cell}_seconds"] = float(
                np.mean(
                    [r["seconds"] for r in runs if r["cell"] == cell and r["seq_len"] == length]
                )
            )
        rows.append(row)
    return rows


def markdown(result: dict[str, Any]) -> str:
    """Two tables: test MSE by length (mean ± std over seeds) and the parameter counts."""
    settings = result["settings"]
    lines = [
        f"Test MSE of the next clean value (mean ± std over {settings['seeds']} seed(s); "
        f"hidden {settings['hidden']}, {result['runs'][0]['steps']} steps of batch "
        f"{settings['batch_size']}, noise σ {settings['noise']}).",
        "",
    ]
    header = ("seq_len", "LSTM MSE", "GRU MSE", "GRU / LSTM", "last-value baseline", "LSTM s")
    lengths = [
        (
            row["seq_len"],
            f"{row['lstm_mse']:.5f} ± {row['lstm_std']:.5f}",
            f"{row['gru_mse']:.5f} ± {row['gru_std']:.5f}",
            f"{row['gru_mse'] / row['lstm_mse']:.2f}",
            f"{row['last_value_mse']:.5f}",
            f"{row['lstm_seconds']:.1f}",
            f"{row['gru_seconds']:.1f}",
        )
        for row in result["summary"]
    ]
    lines += markdown_rows((*header, "GRU s"), lengths, "r" * 7)
    runs = {run["cell"]: run for run in result["runs"]}
    cells = [
        (cell.upper(), f"{runs[cell]['rnn_parameters']:,}", f"{runs[cell]['parameters']:,}")
        for cell in CELL_NAMES
    ]
    header = ("cell", "recurrent parameters", "total parameters")
    lines += ["", *markdown_rows(header, cells, "lrr")]
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> None:
    plt = pyplot()
    summary = result["summary"]
    lengths = [row["seq_len"] for row in summary]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for cell, marker in zip(CELL_NAMES, "os", strict=True):
        ax.errorbar(
            lengths,
            [row[f"{cell}_mse"] for row in summary],
            yerr=[row[f"{cell}_std"] for row in summary],
            marker=marker,
            capsize=4,
            label=cell.upper(),
        )
    ax.plot(
        lengths,
        [row["last_value_mse"] for row in summary],
        linestyle="--",
        color="grey",
        label="repeat last sample",
    )
    ax.set_yscale("log")
    ax.set_xticks(lengths)
    ax.set_xlabel("sequence length (noisy samples read)")
    ax.set_ylabel("test MSE of next clean value (log)")
    ax.set_title(f"LSTM vs GRU, hidden {result['settings']['hidden']}: sine next-value")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_outputs(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(result, indent=2) + "\n")
    with (out / "results.csv").open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(result["runs"][0]))
        writer.writeheader()
        writer.writerows(result["runs"])
    (out / "results.md").write_text(markdown(result))
    plot(result, out / "mse_vs_length.png")


def parse_args(argv: Sequence[str] | None) -> tuple[StudySettings, Path, bool]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUT)
    parser.add_argument("--tiny", action="store_true", help="seconds-long smoke run")
    parser.add_argument("--no-progress", action="store_true")
    parser.add_argument("--lengths", type=int, nargs="+")
    for item in fields(StudySettings):
        if item.name != "lengths":
            kind = float if item.type == "float" else int
            parser.add_argument("--" + item.name.replace("_", "-"), type=kind)
    args = vars(parser.parse_args(argv))
    settings = StudySettings(**TINY) if args.pop("tiny") else StudySettings()
    if args["lengths"]:
        args["lengths"] = tuple(args["lengths"])
    out, progress = Path(args.pop("out")), not args.pop("no_progress")
    return replace(settings, **{k: v for k, v in args.items() if v is not None}), out, progress


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    settings, out, progress = parse_args(argv)
    result = run_study(settings, progress)
    write_outputs(result, out)
    print(markdown(result))
    print(f"wrote {out}/results.md, results.csv, results.json, mse_vs_length.png")
    return result


if __name__ == "__main__":
    main()
