"""Score a text with a trained language model, from its archive alone.

    python -m training.evaluate_lm --archive model_store/lm.mar --text FILE
    python -m training.evaluate_lm --artifact artifacts/lm --validation --quantize int8

Prints JSON with `nats_per_char` (total negative log-likelihood of the text divided by its
number of characters), `tokens`, `chars` and the per-token perplexity. `--validation` scores the
last 10% of Tiny Shakespeare from DATA_DIR, the split the training run held out.
"""

from __future__ import annotations

import argparse
import json
import math
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch

from models.artifact import load_artifact
from models.language_model import LMConfig, RecurrentLM
from training.train_lm import EVAL_STREAMS, evaluate_nll


def load_lm(artifact_dir: str | Path, quantize: str | None = None) -> tuple[RecurrentLM, Any]:
    artifact = load_artifact(artifact_dir)
    model = RecurrentLM(LMConfig(**artifact.model))
    model.load_state_dict(artifact.state_dict)
    model.eval()
    if quantize == "int8":
        from torch.ao.quantization import quantize_dynamic

        model = quantize_dynamic(model, {torch.nn.LSTM, torch.nn.GRU, torch.nn.Linear})
    return model, artifact.tokenizer


def score_text(model: RecurrentLM, tokenizer: Any, text: str, bptt: int = 256) -> dict[str, Any]:
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    nll = evaluate_nll(model, ids, EVAL_STREAMS, bptt)
    return {
        "nats_per_char": nll / len(text),
        "token_perplexity": math.exp(nll / ids.numel()),
        "tokens": ids.numel(),
        "chars": len(text),
    }


def score_archive(archive: str | Path, text: str, quantize: str | None = None) -> dict[str, Any]:
    """Unpack a .mar (a zip) and score ``text`` with the model inside it."""
    with tempfile.TemporaryDirectory() as folder:
        with zipfile.ZipFile(archive) as packed:
            packed.extractall(folder)
        return score_text(*load_lm(folder, quantize), text)


def _main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--archive", help="a TorchServe .mar built by training.archive")
    source.add_argument("--artifact", help="an artifact folder written by training.train_lm")
    text = parser.add_mutually_exclusive_group(required=True)
    text.add_argument("--text", help="a UTF-8 text file to score")
    text.add_argument("--validation", action="store_true", help="the held-out 10%% of DATA_DIR")
    parser.add_argument("--quantize", choices=("int8",), default=None)
    args = parser.parse_args()
    if args.validation:
        from training.data import load_text, split_text

        content = split_text(load_text("tinyshakespeare"))[1]
    else:
        content = Path(args.text).read_text(encoding="utf-8")
    if args.archive:
        result = score_archive(args.archive, content, args.quantize)
    else:
        result = score_text(*load_lm(args.artifact, args.quantize), content)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    _main()
