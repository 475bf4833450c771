"""Write a model card's generated sections: the figures of the trained default, and samples
from the archive that is served.

    python -m training.model_card sentiment                # figures from artifacts/sentiment
    python -m training.model_card lm                       # figures from artifacts/lm
    python -m training.model_card lm --samples             # + samples from model_store/lm.mar
    python -m training.model_card lm --artifact A --archive M --page P   # other files

The figures come from the artifact's own metrics.json (written by its trainer), the samples
from the .mar archive decoded as it is served (its packed `quantize` setting). What was read
is kept beside the card as docs/models/<model>.json, the card's one source: `python -m
docsgen --check` renders the sections from it again and fails when the card differs. A card
whose model was never written this way says so instead of showing another model's figures.
"""

from __future__ import annotations

import argparse
import html
import json
import tempfile
import unicodedata
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from docsgen.markdown import markdown_table
from handlers.registry import artifact_folder
from training.machine import machine

ROOT = Path(__file__).resolve().parent.parent
CARDS = ROOT / "docs" / "models"
SAMPLE_PROMPT = "ROMEO:"
SAMPLE_TEMPERATURES = (0.5, 1.0, 1.5)
SAMPLE_SEED = 1234
SAMPLE_TOKENS = 120
# The metrics.json keys a card shows, each with how to write it, in the order cards show them:
# a model's card has the ones its trainer writes, then `HOW_TRAINED`.
FIGURES: dict[str, tuple[str, str]] = {
    "dev_accuracy": ("SST-2 dev accuracy ({dev_rows} sentences)", "{:.1%}"),
    "teacher_dev_accuracy": ("its teacher's dev accuracy", "{:.1%}"),
    "best_epoch": ("best epoch (chosen by dev)", "{}"),
    "val_nats_per_char": ("validation nats/char (last 10% of Tiny Shakespeare)", "{:.4f}"),
    "val_token_perplexity": ("validation token perplexity", "{:.2f}"),
    "steps": ("training steps", "{:,}"),
    "train_minutes": ("training minutes", "{:.1f}"),
    "vocab_size": ("vocabulary ({vocabulary})", "{:,}"),
    "chars_per_token": ("characters per token", "{:.2f}"),
    "seconds": ("training time, all stages", "{:.0f} s"),
    "parameters": ("parameters", "{:,}"),
}
# What every trainer's metrics.json says of how it ran, last on each card.
HOW_TRAINED = {"threads": ("training threads", "{}"), "precision": ("training precision", "{}")}
ROWS = {**FIGURES, **HOW_TRAINED}  # every row a card may show, in order
# What a vocabulary entry is, per model with a card (its `vocab_size` row), where the
# trainer's metrics.json does not say (`token_unit`, written by the LM trainer).
VOCABULARY = {"sentiment": "words", "lm": "sentencepiece pieces"}


def source_file(model: str, cards: Path = CARDS) -> Path:
    return cards / f"{model}.json"


def read_figures(model: str, artifact: Path) -> dict[str, Any]:
    """The card's figures from ``artifact``/metrics.json, with where and when they came from."""
    metrics = json.loads((artifact / "metrics.json").read_text())
    trained = datetime.fromtimestamp((artifact / "metrics.json").stat().st_mtime, UTC)
    figures = {key: metrics[key] for key in ROWS if key in metrics}
    if "token_unit" in metrics:
        figures["token_unit"] = metrics["token_unit"]
    if model == "sentiment":
        figures["dev_rows"] = metrics["dev_rows"]
        figures["confusion_matrix"] = metrics["confusion_matrix"]
    return {
        "artifact": str(artifact),
        "trained": trained.strftime("%Y-%m-%d"),
        "machine": machine(),
        "figures": figures,
    }


def generate_samples(archive: Path) -> dict[str, Any]:
    """One sample per temperature, decoded from the served archive as the server decodes it
    (with the ``quantize`` setting packed in the archive)."""
    from models.generation import Generator
    from models.requests import GenerationRequest
    from training.archive import packed_quantize, unpack_archive

    quantize = packed_quantize(archive)
    with tempfile.TemporaryDirectory(prefix="model-card-") as folder:
        generator = Generator.from_artifact(unpack_archive(archive, folder), quantize=quantize)
        requests = [
            GenerationRequest(
                prompt=SAMPLE_PROMPT, max_new_tokens=SAMPLE_TOKENS, temperature=t, seed=SAMPLE_SEED
            )
            for t in SAMPLE_TEMPERATURES
        ]
        results = generator.generate(requests)
    return {
        "archive": str(archive),
        "quantize": generator.quantize or "fp32",  # "auto" resolved on this machine
        "machine": machine(),
        "texts": {str(t): r.text for t, r in zip(SAMPLE_TEMPERATURES, results, strict=True)},
    }


def vocabulary(model: str, figures: dict[str, Any]) -> str:
    """What one vocabulary entry is: both LM tokenizers are sentencepiece models, of
    characters or of unigram pieces."""
    if "token_unit" in figures:
        return f"sentencepiece {figures['token_unit']}"
    return VOCABULARY[model]


def figures_section(model: str, source: dict[str, Any] | None) -> str:
    if not source or "figures" not in source:
        return (
            f"_No default model's figures written yet: after `make models`, run "
            f"`python -m training.model_card {model}`._\n"
        )
    figures = source["figures"]
    lines = [
        f"From `{source['artifact']}/metrics.json` (trained {source['trained']}; card written "
        f"on {source['machine']}), by `python -m training.model_card {model}`:",
        "",
    ]
    rows = [
        (label.format(**figures, vocabulary=vocabulary(model, figures)), style.format(figures[key]))
        for key, (label, style) in ROWS.items()
        if key in figures
    ]
    if "confusion_matrix" in figures:
        (tn, fp), (fn, tp) = figures["confusion_matrix"]
        rows.append(
            (
                "confusion (rows true, columns predicted)",
                f"negative {tn} / {fp}, positive {fn} / {tp}",
            )
        )
    return "\n".join(lines) + "\n" + markdown_table(("figure", "value"), rows)


def printable(text: str) -> str:
    """``text`` as a page can hold it: control characters other than newline and tab (a small
    model samples them, and a page read back turns a carriage return into a newline) written
    as ``\\xNN`` escapes."""
    return "".join(
        f"\\x{ord(c):02x}" if unicodedata.category(c) == "Cc" and c not in "\n\t" else c
        for c in text
    )


def samples_section(source: dict[str, Any] | None) -> str:
    if not source or "samples" not in source:
        return (
            "_No samples written yet from a served default: after `make models`, run "
            "`python -m training.model_card lm --samples`._\n"
        )
    samples = source["samples"]
    heads = "".join(f"<th>temperature {t}</th>" for t in samples["texts"])
    cells = "".join(
        f"<td><pre>{html.escape(printable(SAMPLE_PROMPT + text))}</pre></td>"
        for text in samples["texts"].values()
    )
    return (
        f"From `{samples['archive']}` ({samples['quantize']}, as served; written on "
        f"{samples['machine']}), "
        f'prompt "{SAMPLE_PROMPT}", seed {SAMPLE_SEED}, {SAMPLE_TOKENS} tokens, by '
        f"`python -m training.model_card lm --samples`:\n\n"
        f"<table>\n<tr>{heads}</tr>\n<tr>{cells}</tr>\n</table>\n"
    )


def load_source(model: str, cards: Path = CARDS) -> dict[str, Any] | None:
    path = source_file(model, cards)
    return json.loads(path.read_text()) if path.exists() else None


def render(model: str, text: str, source: dict[str, Any] | None) -> str:
    """``text`` (the card) with its generated sections written from ``source``."""
    from handlers.api_docs import replace_marked

    text = replace_marked(text, f"card:{model}", figures_section(model, source))
    if model == "lm":
        text = replace_marked(text, "samples:lm", samples_section(source))
    return text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("model", choices=sorted(VOCABULARY))
    parser.add_argument("--artifact", type=Path, help="default: artifacts/<model>")
    parser.add_argument("--samples", action="store_true", help="also decode samples (lm)")
    parser.add_argument("--archive", type=Path, help="default: model_store/<model>.mar")
    parser.add_argument("--page", type=Path, help="default: docs/models/<model>.md")
    args = parser.parse_args(argv)
    page = args.page or CARDS / f"{args.model}.md"
    source = read_figures(args.model, args.artifact or Path(artifact_folder(args.model)))
    if args.samples:
        source["samples"] = generate_samples(args.archive or Path("model_store/lm.mar"))
    source_file(args.model, page.parent).write_text(json.dumps(source, indent=2) + "\n")
    page.write_text(render(args.model, page.read_text(), source))
    print(f"{page}: figures{' and samples' if args.samples else ''} of {source['artifact']}")


if __name__ == "__main__":
    main()
