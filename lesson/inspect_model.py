"""Look inside trained recurrent models: gate activations, embedding norms, dev confusion matrix.

    python -m lesson.inspect_model gates --artifact artifacts/sentiment \\
        --text "a gripping , funny movie" --layer 0 --out runs/gates/
    python -m lesson.inspect_model sine-gates --out runs/gates/
    python -m lesson.inspect_model embeddings --artifact artifacts/sentiment --top 30 \\
        --out runs/inspect/
    python -m lesson.inspect_model confusion --artifact artifacts/sentiment --out runs/inspect/

The lesson's exercises 1 and 3 as commands. Gates are computed by models/gates.py (the NumPy
reference cells stepping the model's own weights); plots are PNGs drawn by lesson/plots.py,
tables are markdown with a JSON twin for scripts.
"""

from __future__ import annotations

import argparse
import json
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from docsgen.markdown import markdown_rows
from lesson.plots import plot_confusion, plot_sentiment_gates, plot_sine_gates
from lesson.study import NOISE, SineRegressor, fit, mse, sine_windows
from models.artifact import CONFIG_FILE
from models.classifier_predictor import ClassifierPredictor
from models.gates import explain_sentiment, lstm_gate_trace
from training.data import load_sentiment

DEFAULT_SOURCE = "sst2"
SINE_STEPS = 20  # the lesson's 20-step wave
SINE_HIDDEN = 4
SINE_FREQUENCY = 0.3  # radians per step: about one period over the 20 steps
SINE_TRAIN_STEPS = 600


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n")


def slug(text: str, limit: int = 40) -> str:
    """A file-name-safe stem from a text, so several sentences can share one folder."""
    words = re.findall(r"[a-z0-9]+", text.lower())
    kept = [w for i, w in enumerate(words) if len("-".join(words[: i + 1])) <= limit]
    return "-".join(kept) or (words[0][:limit] if words else "text")


# ---- gates of the sentiment model -----------------------------------------------------------


def command_gates(args: argparse.Namespace) -> list[Path]:
    predictor = ClassifierPredictor.from_artifact(args.artifact)
    explanation = explain_sentiment(predictor, args.text, layer=args.layer, per_unit=True)
    probabilities = predictor.predict([args.text])[0]
    stem = args.out / f"sentiment_layer{args.layer}_{slug(args.text)}"
    write_json(stem.with_suffix(".json"), {**explanation, "prediction": probabilities})
    title = (
        f'"{args.text}"  ({explanation["cell"].upper()} layer {args.layer}, '
        f"{explanation['hidden_size']} units per direction; predicted {probabilities['label']} "
        f"{probabilities['score']:.2f})"
    )
    plot_sentiment_gates(explanation, title, stem.with_suffix(".png"))
    print(mean_gate_table(explanation))
    return [stem.with_suffix(".png"), stem.with_suffix(".json")]


def mean_gate_table(explanation: dict[str, Any]) -> str:
    """Markdown: one row per token, the mean of each gate in each direction."""
    columns = [(d, g) for d in explanation["directions"] for g in explanation["gates"]]
    header = ["token", *(f"{g} ({d[:3]})" for d, g in columns)]
    rows = [
        [token["piece"], *(f"{np.mean(token[d][g]):.3f}" for d, g in columns)]
        for token in explanation["tokens"]
    ]
    return "\n".join(markdown_rows(header, rows, "l" + "r" * len(columns)))


# ---- gates of a small LSTM reading a sine wave (lesson exercise 1) --------------------------


def train_sine_lstm(steps: int, seed: int) -> tuple[SineRegressor, float]:
    """A 1-input, 4-unit LSTM trained briefly to predict a noisy sine's next value, so that its
    gates have learnt something before they are looked at. Returns it and its test MSE."""
    torch.manual_seed(seed)
    data = torch.Generator().manual_seed(seed)
    train_x, train_y = sine_windows(2048, SINE_STEPS, NOISE, data)
    test_x, test_y = sine_windows(512, SINE_STEPS, NOISE, data)
    model = SineRegressor("lstm", SINE_HIDDEN)
    fit(model, train_x, train_y, steps, 64, 1e-2, torch.Generator().manual_seed(seed))
    return model, mse(model, test_x, test_y)


def command_sine_gates(args: argparse.Namespace) -> list[Path]:
    model, test_mse = train_sine_lstm(args.steps, args.seed)
    wave = np.sin(SINE_FREQUENCY * np.arange(SINE_STEPS))
    trace = lstm_gate_trace(model.rnn, torch.tensor(wave, dtype=torch.float32)[:, None], 0)
    summary = [
        {
            "unit": unit,
            "forget_min": round(float(trace["forget"][:, unit].min()), 3),
            "forget_min_step": int(trace["forget"][:, unit].argmin()),
            "forget_max": round(float(trace["forget"][:, unit].max()), 3),
            "forget_max_step": int(trace["forget"][:, unit].argmax()),
        }
        for unit in range(SINE_HIDDEN)
    ]
    title = (
        f"LSTM(1, {SINE_HIDDEN}) gates on sin({SINE_FREQUENCY} t), after {args.steps} training "
        f"steps (test MSE {test_mse:.4f})"
    )
    png, data = args.out / "sine_gates.png", args.out / "sine_gates.json"
    plot_sine_gates(wave, trace, title, png)
    write_json(
        data,
        {
            "wave": wave.round(4).tolist(),
            "test_mse": test_mse,
            "train_steps": args.steps,
            "forget_summary": summary,
            **{k: v.round(4).tolist() for k, v in trace.items()},
        },
    )
    for row in summary:
        print(
            f"unit {row['unit']}: forget gate lowest {row['forget_min']} at step "
            f"{row['forget_min_step']}, highest {row['forget_max']} at step "
            f"{row['forget_max_step']}"
        )
    return [png, data]


# ---- embedding norms (lesson exercise 3.5) --------------------------------------------------


def embedding_norms(predictor: ClassifierPredictor, top: int) -> dict[str, Any]:
    """The ``top`` tokens whose embedding vectors are longest, with the vocabulary's median
    norm for scale: tokens the training pushed hardest tend to carry sentiment."""
    weight = predictor.model.embedding.weight.detach().float().cpu()
    norms = weight.norm(dim=1)
    order = torch.argsort(norms, descending=True)[:top].tolist()
    return {
        "vocab_size": len(norms),
        "median_norm": round(float(norms.median()), 4),
        "top": [
            {
                "rank": rank,
                "id": token_id,
                "piece": predictor.tokenizer.id_to_piece(token_id),
                "norm": round(float(norms[token_id]), 4),
            }
            for rank, token_id in enumerate(order, start=1)
        ],
    }


def embeddings_markdown(result: dict[str, Any]) -> str:
    lines = [
        f"Largest embedding norms ({len(result['top'])} of {result['vocab_size']} tokens; "
        f"median norm {result['median_norm']}). `▁` marks a word start.",
        "",
    ]
    rows = [
        (
            row["rank"],
            "`" + row["piece"].replace("|", "\\|") + "`",
            row["id"],
            f"{row['norm']:.3f}",
        )
        for row in result["top"]
    ]
    return "\n".join(lines + markdown_rows(("rank", "token", "id", "norm"), rows, "rlrr")) + "\n"


def command_embeddings(args: argparse.Namespace) -> list[Path]:
    result = embedding_norms(ClassifierPredictor.from_artifact(args.artifact), args.top)
    table, data = args.out / "embedding_norms.md", args.out / "embedding_norms.json"
    table.write_text(embeddings_markdown(result))
    write_json(data, result)
    print(table.read_text())
    return [table, data]


# ---- confusion matrix on the dev split (lesson exercise 3.4) --------------------------------


def artifact_source(artifact: Path) -> str | None:
    """The data source the artifact was trained on, if its config records it."""
    config = json.loads((artifact / CONFIG_FILE).read_text())
    for section in ("training", "metrics"):
        source = config.get(section, {}).get("source")
        if source:
            return source
    return None


def confusion_matrix(
    predictor: ClassifierPredictor, texts: list[str], labels: list[int], batch_size: int = 256
) -> np.ndarray:
    """Counts [true, predicted] over ``texts``, predicted exactly as the server would."""
    classes = len(predictor.labels)
    matrix = np.zeros((classes, classes), dtype=np.int64)
    for start in range(0, len(texts), batch_size):
        batch = texts[start : start + batch_size]
        predicted = predictor.predict_logits(*predictor.encode(batch)).argmax(dim=-1).tolist()
        for truth, guess in zip(labels[start : start + batch_size], predicted, strict=True):
            matrix[truth, guess] += 1
    return matrix


def confusion_report(matrix: np.ndarray, labels: Sequence[str], source: str) -> dict[str, Any]:
    total = int(matrix.sum())
    per_class = {}
    for k, label in enumerate(labels):
        predicted, actual = matrix[:, k].sum(), matrix[k, :].sum()
        per_class[label] = {
            "precision": float(matrix[k, k] / predicted) if predicted else math.nan,
            "recall": float(matrix[k, k] / actual) if actual else math.nan,
            "support": int(actual),
        }
    return {
        "source": source,
        "split": "dev",
        "labels": list(labels),
        "confusion_matrix": matrix.tolist(),
        "axes": "rows: true label, columns: predicted label",
        "accuracy": float(np.trace(matrix) / total) if total else math.nan,
        "rows": total,
        "per_class": per_class,
    }


def confusion_markdown(report: dict[str, Any]) -> str:
    labels = report["labels"]
    lines = [
        f"Dev split of `{report['source']}`: {report['rows']} sentences, accuracy "
        f"{report['accuracy']:.4f}.",
        "",
    ]
    confusion = [
        [f"**{label}**", *row]
        for label, row in zip(labels, report["confusion_matrix"], strict=True)
    ]
    lines += markdown_rows(["true \\ predicted", *labels], confusion, "l" + "r" * len(labels))
    scores = [
        (label, f"{s['precision']:.4f}", f"{s['recall']:.4f}", s["support"])
        for label, s in report["per_class"].items()
    ]
    lines += ["", *markdown_rows(("label", "precision", "recall", "support"), scores, "lrrr")]
    return "\n".join(lines) + "\n"


def command_confusion(args: argparse.Namespace) -> list[Path]:
    source = args.source or artifact_source(args.artifact) or DEFAULT_SOURCE
    dev = load_sentiment(source)["dev"]
    predictor = ClassifierPredictor.from_artifact(args.artifact)
    matrix = confusion_matrix(predictor, list(dev["sentence"]), list(dev["label"]))
    report = confusion_report(matrix, predictor.labels, source)
    paths = [args.out / f"confusion.{ext}" for ext in ("md", "json", "png")]
    paths[0].write_text(confusion_markdown(report))
    write_json(paths[1], report)
    plot_confusion(report, paths[2])
    print(paths[0].read_text())
    return paths


# ---- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    commands = parser.add_subparsers(dest="command", required=True)

    def command(name: str, handler: Any, help_text: str, out: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--out", type=Path, default=Path(out), help=f"folder (default {out})")
        sub.set_defaults(handler=handler)
        return sub

    gates = command("gates", command_gates, "plot a sentiment model's gates", "runs/gates")
    gates.add_argument("--artifact", type=Path, default=Path("artifacts/sentiment"))
    gates.add_argument("--text", required=True)
    gates.add_argument("--layer", type=int, default=0)

    sine = command(
        "sine-gates", command_sine_gates, "gates of a 4-unit LSTM on a sine wave", "runs/gates"
    )
    sine.add_argument("--steps", type=int, default=SINE_TRAIN_STEPS, help="training steps")
    sine.add_argument("--seed", type=int, default=0)

    norms = command(
        "embeddings", command_embeddings, "tokens with the largest embedding norms", "runs/inspect"
    )
    norms.add_argument("--artifact", type=Path, default=Path("artifacts/sentiment"))
    norms.add_argument("--top", type=int, default=30)

    confusion = command(
        "confusion", command_confusion, "dev-split confusion matrix", "runs/inspect"
    )
    confusion.add_argument("--artifact", type=Path, default=Path("artifacts/sentiment"))
    confusion.add_argument(
        "--source",
        help=f"data source; default: the artifact's training source, else {DEFAULT_SOURCE}",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> list[Path]:
    """Run one subcommand; returns the files it wrote."""
    args = build_parser().parse_args(argv)
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)
    paths = args.handler(args)
    for path in paths:
        print(f"wrote {path}")
    return paths


if __name__ == "__main__":
    main()
