"""Compare tokenizers for the language model at an equal budget of CPU minutes.

    python -m training.lm_sweep --minutes 4 --vocab-sizes 0 384 512 768 --out runs/lm-sweep

Each setting trains the default recipe for the same wall time (one after another, so they do
not share the cores), then the table of validation nats/char is written to
``<out>/sweep.md`` and ``sweep.json``. A lossless sentencepiece vocabulary holds every
character and 256 byte pieces (324 in all for Tiny Shakespeare), so 384 pieces add 60
multi-character pieces, 512 add 188 and 768 add 444. A GPU hides what a larger softmax costs
per step; on a CPU the comparison that matters is at equal minutes.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from docsgen.markdown import markdown_table
from training.train_lm import LMTrainOptions, train


def run_sweep(minutes: float, vocab_sizes: list[int], out: Path, seed: int) -> list[dict]:
    rows = []
    for vocab_size in vocab_sizes:
        options = replace(
            LMTrainOptions(),
            vocab_size=vocab_size,
            minutes=minutes,
            seed=seed,
            out=str(out / f"vocab-{vocab_size}"),
        )
        metrics = train(options)
        rows.append(
            {
                "tokenizer": "characters" if vocab_size <= 0 else f"unigram {vocab_size}",
                "vocab_size": metrics["vocab_size"],
                "chars_per_token": round(metrics["chars_per_token"], 3),
                "steps": metrics["steps"],
                "minutes": round(metrics["train_minutes"], 2),
                "val_nats_per_char": round(metrics["val_nats_per_char"], 4),
            }
        )
    return rows


def markdown(rows: list[dict]) -> str:
    return markdown_table(list(rows[0]), [list(row.values()) for row in rows])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=4.0)
    parser.add_argument("--vocab-sizes", type=int, nargs="+", default=[0, 384, 512, 768])
    parser.add_argument("--seed", type=int, default=LMTrainOptions.seed)
    parser.add_argument("--out", default="runs/lm-sweep")
    args = parser.parse_args()
    out = Path(args.out)
    rows = run_sweep(args.minutes, args.vocab_sizes, out, args.seed)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.json").write_text(json.dumps(rows, indent=2) + "\n")
    (out / "sweep.md").write_text(markdown(rows))
    print(markdown(rows))


if __name__ == "__main__":
    main()
