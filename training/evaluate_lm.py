"""Score a text with a trained language model, from its archive alone.

    python -m training.evaluate_lm --archive model_store/lm.mar --text FILE
    python -m training.evaluate_lm --artifact artifacts/lm --validation --quantize int8
    python -m training.evaluate_lm --artifact artifacts/lm --validation --compare-int8

Prints JSON with `nats_per_char` (total negative log-likelihood of the text divided by its
number of characters), `tokens`, `chars` and the per-token perplexity. `--validation` scores the
last 10% of Tiny Shakespeare from DATA_DIR, the split the training run held out.

fp32 scores whole sequences with `nn.LSTM`, as training does. `--quantize int8` scores token
by token with the serving engine's int8 `DecodeStep`, so the figure is the one users get;
`--compare-int8` runs that step in fp32 and int8 side by side and adds the next-token top-1
agreement between them. `--chars N` scores only the text's first N characters: a quicker look
(the whole validation split through the decode step takes minutes).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.artifact import load_artifact
from models.decode_step import DecodeStep
from models.language_model import LMConfig, RecurrentLM, zero_state
from models.tokenizer import Tokenizer
from training.archive import unpack_archive
from training.lm_scoring import EVAL_STREAMS, evaluate_nll, stream_batches

Scorer = RecurrentLM | DecodeStep


def load_model(artifact_dir: str | Path) -> tuple[RecurrentLM, Tokenizer]:
    artifact = load_artifact(artifact_dir)
    model = RecurrentLM(LMConfig(**artifact.model))
    model.load_state_dict(artifact.state_dict)
    return model.eval(), artifact.tokenizer


def load_lm(artifact_dir: str | Path, quantize: str | None = None) -> tuple[Scorer, Tokenizer]:
    """The fp32 model, or the engine's int8 decode step built from it."""
    model, tokenizer = load_model(artifact_dir)
    return (DecodeStep(model, quantize=quantize) if quantize else model), tokenizer


@torch.inference_mode()
def step_nll(step: DecodeStep, ids: torch.Tensor, streams: int) -> tuple[float, torch.Tensor]:
    """Like `evaluate_nll`, token by token through ``step``; also each position's argmax.

    The same streams and the same uniform charge for each stream's unscored first token, so the
    fp32 step matches `evaluate_nll` to float tolerance."""
    data = stream_batches(ids, streams)
    state = zero_state(step.config, streams)
    total, predictions = 0.0, []
    for t in range(data.shape[1] - 1):
        logits, state = step(data[:, t], state)
        total += nn.functional.cross_entropy(logits, data[:, t + 1], reduction="sum").item()
        predictions.append(logits.argmax(dim=1))
    leftover = ids.numel() - data.shape[1] * streams + streams
    return total + leftover * math.log(step.config.vocab_size), torch.stack(predictions, 1)


@torch.inference_mode()
def document_nll(step: DecodeStep, ids: list[int]) -> float:
    """Negative log-likelihood (nats) of one document read alone from the model's start state,
    every token scored (the first from the start state's logits): what the server's ``echo``
    scores for a prompt (models/logprobs.py), computed here without the serving engine."""
    state = zero_state(step.config, 1)
    logits = step.logits(state)
    total = 0.0
    for token in ids:
        total += nn.functional.cross_entropy(logits.float(), torch.tensor([token])).item()
        logits, state = step(torch.tensor([token]), state)
    return total


def score_text(model: Scorer, tokenizer: Tokenizer, text: str) -> dict[str, Any]:
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    if isinstance(model, DecodeStep):
        nll = step_nll(model, ids, EVAL_STREAMS)[0]
    else:
        nll = evaluate_nll(model, ids)
    return _scores(nll, ids.numel(), len(text))


def compare_int8(artifact_dir: str | Path, text: str) -> dict[str, Any]:
    """The engine's decode step in fp32 and in int8 on the same text: loss and top-1 agreement."""
    model, tokenizer = load_model(artifact_dir)
    ids = torch.tensor(tokenizer.encode(text), dtype=torch.long)
    fp32, fp32_top = step_nll(DecodeStep(model), ids, EVAL_STREAMS)
    int8, int8_top = step_nll(DecodeStep(model, quantize="int8"), ids, EVAL_STREAMS)
    return {
        "fp32": _scores(fp32, ids.numel(), len(text)),
        "int8": _scores(int8, ids.numel(), len(text)),
        "nats_per_char_delta": (int8 - fp32) / len(text),
        "top1_agreement": (fp32_top == int8_top).double().mean().item(),
    }


def _scores(nll: float, tokens: int, chars: int) -> dict[str, Any]:
    return {
        "nats_per_char": nll / chars,
        "token_perplexity": math.exp(nll / tokens),
        "tokens": tokens,
        "chars": chars,
    }


def score_archive(archive: str | Path, text: str, quantize: str | None = None) -> dict[str, Any]:
    """Unpack a .mar (a zip) and score ``text`` with the model inside it."""
    with tempfile.TemporaryDirectory() as folder:
        return score_text(*load_lm(unpack_archive(archive, folder), quantize), text)


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
    parser.add_argument("--compare-int8", action="store_true", help="fp32 vs int8 decode step")
    parser.add_argument("--chars", type=int, default=None, help="score only the first N chars")
    args = parser.parse_args()
    for given in (args.archive, args.artifact, args.text):
        if given and not Path(given).exists():
            sys.exit(f"error: {given} does not exist")
    if args.validation:
        from training.data import load_text, split_text

        content = split_text(load_text("tinyshakespeare"))[1]
    else:
        content = Path(args.text).read_text(encoding="utf-8")
    if args.chars is not None:
        if args.chars < 1:
            sys.exit("error: --chars must be at least 1")
        content = content[: args.chars]
    with tempfile.TemporaryDirectory() as folder:
        artifact = unpack_archive(args.archive, folder) if args.archive else args.artifact
        if args.compare_int8:
            result = compare_int8(artifact, content)
        else:
            result = score_text(*load_lm(artifact, args.quantize), content)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    from training import cli

    cli.run(_main)
