"""Train the language model on Tiny Shakespeare and write its artifact folder.

    python -m training.train_lm --out artifacts/lm                   # default: 12 minutes
    python -m training.train_lm --minutes 4 --vocab-size 256 ...     # another tokenizer, 4 min
    python -m training.train_lm --profile tiny --out /tmp/tiny-lm    # seconds, for tests

The text is split by characters, first 90% for training and the last 10% for validation
(nanoGPT's split, so the numbers compare). The tokenizer (characters by default, or
``--vocab-size N`` sentencepiece unigram pieces; lossless either way) is trained on the
training part. Training is truncated backpropagation through time over ``batch_size``
contiguous streams whose state is carried from one window to the next.

A run is a budget, not a number of steps: ``--minutes`` of wall time (and ``--steps`` as a cap
where given). Every new user trains the default on their own CPU, so the recipe was chosen at
equal CPU minutes: the learning rate warms up, then decays linearly to zero as the minutes run
out, and the forward pass runs under bf16 autocast where the CPU has native bf16 (loss,
carried state and validation stay fp32). The tokenizer comparison at equal minutes is in
docs/experiments/lm.md (``make lm-sweep`` reruns it).

The reported validation loss is in nats per character: the total negative log-likelihood of
the validation text divided by its number of characters, which compares across vocabularies.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

from handlers.registry import artifact_folder
from models import atomic
from models.artifact import save_artifact
from models.language_model import LMConfig, RecurrentLM, State
from models.tokenizer import Tokenizer
from training import budget, cli
from training.checkpoint import BestCheckpoint
from training.data import load_text, split_text
from training.lm_scoring import evaluate_nll, stream_batches
from training.precision import autocast, resolve_precision
from training.schedule import Budget, lr_factor
from training.tokenizer import train_tokenizer

LOG_EVERY = 50  # steps between points of the training-loss curve

# fmt: off
PROFILES: dict[str, dict[str, Any]] = {
    "default": {},
    # `make models PROFILE=fast` changes the classifier's recipe; the LM's default is its
    # time budget.
    "fast": {},
    # `make models PROFILE=budget` bounds the classifier by minutes too; the LM already is.
    "budget": {},
    "tiny": dict(
        vocab_size=0, embed_dim=16, hidden_dim=32, num_layers=1,  # characters, a small cell
        minutes=None, steps=30, batch_size=16, bptt=32, warmup=5, eval_every=30,
        max_chars=200_000, precision="fp32",
    ),
}
# fmt: on


MODEL = cli.field_defaults(LMConfig)  # the model's shape: declared in models/language_model.py


@dataclass
class LMTrainOptions(cli.RunOptions):
    """Everything one run depends on; saved into the artifact's config. Its recipe is a
    budget of wall-clock ``minutes`` (``steps`` only caps it), as the module's doc explains."""

    source: str = "tinyshakespeare"
    out: str = artifact_folder("lm")
    seed: int = 1337
    vocab_size: int = 512  # sentencepiece unigram pieces (bytes included); 0: characters
    embed_dim: int = MODEL["embed_dim"]
    hidden_dim: int = MODEL["hidden_dim"]
    num_layers: int = MODEL["num_layers"]
    dropout: float = MODEL["dropout"]
    cell: str = MODEL["cell"]
    forget_bias: float = 1.0  # LSTM forget gates start open: gradients flow through time early
    tie_weights: bool = MODEL["tie_weights"]
    batch_size: int = 32
    bptt: int = 32  # tokens per truncated-BPTT window: short windows, many updates a minute
    minutes: float | None = budget.LM_MINUTES  # the budget: wall time of the whole run
    steps: int | None = None  # optional cap (or the budget, when minutes is None)
    lr: float = 2e-3
    weight_decay: float = 0.1  # AdamW decay; 0.01, 0.3: docs/experiments/lm.md
    warmup: int = 50
    schedule: str = "linear"
    clip_norm: float = 1.0
    eval_every: int = 0  # steps between validations; 0: only at the end (each spends --minutes)
    max_chars: int | None = None  # use only the first N characters of the corpus (tests)


def token_unit(vocab_size: int) -> str:
    """What one token of a tokenizer built for ``vocab_size`` is, as the model card names it."""
    return "characters" if vocab_size <= 0 else "unigram pieces"


def build_tokenizer(train_text: str, vocab_size: int, prefix: Path) -> Tokenizer:
    """Lossless: newlines and spaces survive, so decode(encode(text)) == text."""
    lines = train_text.splitlines(keepends=True)
    if vocab_size <= 0:
        chars = sorted(set(train_text))
        # pad, unk, "\n" (a user symbol), every other character, and 256 byte-fallback pieces.
        size = 3 + len(chars) + 256
        path = train_tokenizer(lines, prefix, size, model_type="char", lossless=True)
    else:
        smallest = 3 + len(set(train_text)) + 256
        if vocab_size < smallest:
            raise ValueError(
                f"vocab size {vocab_size} is below {smallest}: the pieces must include every "
                "character of the text and 256 byte-fallback pieces (use 0 for characters)"
            )
        path = train_tokenizer(lines, prefix, vocab_size, model_type="unigram", lossless=True)
    return Tokenizer(path)


def encode_losslessly(tokenizer: Tokenizer, text: str) -> list[int]:
    """Token ids of ``text``, refusing a tokenizer that would not give the text back: nats per
    character are only honest if the tokens hold every character (newlines and spaces too)."""
    ids = tokenizer.encode(text)
    if tokenizer.decode(ids) != text:
        raise RuntimeError("tokenizer is not lossless on this text")
    return ids


def detach(state: State) -> State:
    """Cut the graph and keep the carried state in fp32 (autocast may hand back bf16)."""
    return tuple(s.detach().float() for s in state)


def open_forget_gates(model: RecurrentLM, bias: float) -> None:
    """Set the LSTM forget-gate bias (gate order i, f, g, o; the two bias vectors add up)."""
    if model.config.cell != "lstm" or bias == 0:
        return
    hidden = model.config.hidden_dim
    with torch.no_grad():
        for layer in range(model.config.num_layers):
            getattr(model.rnn, f"bias_ih_l{layer}")[hidden : 2 * hidden] = bias
            getattr(model.rnn, f"bias_hh_l{layer}")[hidden : 2 * hidden] = 0.0


def train(options: LMTrainOptions) -> dict[str, Any]:
    """Run one training and write the artifact to ``options.out``; returns the metrics."""
    budget = Budget(steps=options.steps, minutes=options.minutes)
    torch.manual_seed(options.seed)
    if options.threads:
        torch.set_num_threads(options.threads)
    device = torch.device(options.device)
    precision = resolve_precision(options.precision, device)
    out = Path(options.out)
    tokenizer, train_ids, val_ids, val_chars, train_chars = _corpus(options, out)
    config = cli.config_from(options, LMConfig, vocab_size=tokenizer.vocab_size)
    model = RecurrentLM(config).to(device)
    open_forget_gates(model, options.forget_bias)
    best, history, curve = _fit(model, options, budget, precision, train_ids, val_ids, val_chars)
    for point in curve:  # per character, like the validation figure
        point["nats_per_char"] = point.pop("loss") * train_ids.numel() / train_chars
    metrics = {
        "val_nats_per_char": -best.score,
        "val_token_perplexity": best.record["val_token_perplexity"],
        "best_step": best.record["step"],
        "steps": history[-1]["step"],
        "val_chars": val_chars,
        "val_tokens": val_ids.numel(),
        "chars_per_token": val_chars / val_ids.numel(),
        "vocab_size": tokenizer.vocab_size,
        "token_unit": token_unit(options.vocab_size),
        "parameters": sum(p.numel() for p in model.parameters()),
        "train_minutes": budget.elapsed_minutes(),
        "threads": torch.get_num_threads(),
        "precision": precision,
        "history": history,
        "train_curve": curve,
    }
    save_artifact(
        out,
        "lm",
        config.as_dict(),
        best.state_dict,
        out / "tokenizer.model",
        metrics={k: v for k, v in metrics.items() if k not in ("history", "train_curve")},
        training=asdict(options),
    )
    atomic.write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n")
    plot_history(history, curve, out / "loss_curve.png")
    print(
        f"best validation {metrics['val_nats_per_char']:.4f} nats/char "
        f"(token perplexity {metrics['val_token_perplexity']:.2f}, step {metrics['best_step']} "
        f"of {metrics['steps']}, {metrics['train_minutes']:.1f} min, {metrics['threads']} "
        f"threads, {precision}); wrote {out}"
    )
    return metrics


def _corpus(
    options: LMTrainOptions, out: Path
) -> tuple[Tokenizer, torch.Tensor, torch.Tensor, int, int]:
    """The tokenizer (trained on the training split, written to ``out``), both splits' ids and
    both splits' lengths in characters (validation, then training)."""
    text = load_text(options.source)
    if options.max_chars:
        text = text[: options.max_chars]
    train_text, val_text = split_text(text)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(train_text, options.vocab_size, out / "tokenizer")
    # Both splits together are the whole corpus: every character of it must survive.
    train_ids = torch.tensor(encode_losslessly(tokenizer, train_text), dtype=torch.long)
    val_ids = torch.tensor(encode_losslessly(tokenizer, val_text), dtype=torch.long)
    return tokenizer, train_ids, val_ids, len(val_text), len(train_text)


def _fit(
    model: RecurrentLM,
    options: LMTrainOptions,
    budget: Budget,
    precision: str,
    train_ids: torch.Tensor,
    val_ids: torch.Tensor,
    val_chars: int,
) -> tuple[BestCheckpoint, list[dict[str, float]], list[dict[str, float]]]:
    """The TBPTT loop proper: trains until the budget is spent, validating now and then.
    Returns the best checkpoint, the validation points and the training-loss curve."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=options.lr, weight_decay=options.weight_decay
    )
    data = stream_batches(train_ids, options.batch_size).to(device)
    windows = (data.shape[1] - 1) // options.bptt
    history: list[dict[str, float]] = []
    curve: list[dict[str, float]] = []
    recent: list[float] = []  # training losses since the last point of the curve
    best = BestCheckpoint()
    state, position, step = None, 0, 0
    bar = tqdm(total=100, desc="train lm", unit="%", disable=not options.progress)
    # At least one step and one validation, even when loading the data spent the budget (a
    # short budget on a busy machine): an artifact always has a measured best checkpoint.
    while step == 0 or not budget.spent(step):
        model.train()
        if position >= windows:  # a new pass over the text starts from a zero state
            state, position = None, 0
        window = data[:, position * options.bptt : (position + 1) * options.bptt + 1]
        position += 1
        factor = lr_factor(step, budget.progress(step), options.warmup, options.schedule)
        for group in optimizer.param_groups:
            group["lr"] = options.lr * factor
        with autocast(precision, device):
            logits, state = model(window[:, :-1], state)
        state = detach(state)
        loss = nn.functional.cross_entropy(
            logits.float().reshape(-1, logits.shape[-1]), window[:, 1:].reshape(-1)
        )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), options.clip_norm)
        optimizer.step()
        step += 1
        bar.update(round(100 * budget.progress(step)) - bar.n)
        bar.set_postfix(step=step, loss=f"{loss.item():.3f}", refresh=False)
        recent.append(loss.item())
        if step % LOG_EVERY == 0:
            mean = sum(recent) / len(recent)
            curve.append({"step": step, "minutes": budget.elapsed_minutes(), "loss": mean})
            recent.clear()
        if budget.spent(step) or (options.eval_every and step % options.eval_every == 0):
            point = _validate(model, val_ids, val_chars, step, budget.elapsed_minutes())
            history.append(point)
            best.offer(model, -point["val_nats_per_char"], point)
    bar.close()
    return best, history, curve


def _validate(
    model: RecurrentLM, val_ids: torch.Tensor, val_chars: int, step: int, minutes: float
) -> dict[str, float]:
    """One validation point (fp32, state carried, every character counted), also printed."""
    nll = evaluate_nll(model, val_ids)
    point = {
        "step": step,
        "val_nats_per_char": nll / val_chars,
        "val_token_perplexity": math.exp(nll / val_ids.numel()),
        "minutes": minutes,
    }
    tqdm.write(
        f"step {step} ({minutes:.1f} min): val {point['val_nats_per_char']:.4f} nats/char, "
        f"token perplexity {point['val_token_perplexity']:.2f}"
    )
    return point


def plot_history(
    history: list[dict[str, float]], curve: list[dict[str, float]], path: Path
) -> None:
    """Training loss per token and validation nats/char against minutes of training."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.plot(
        [p["minutes"] for p in curve],
        [p["nats_per_char"] for p in curve],
        label="training batches (dropout on)",
    )
    axis.plot(
        [p["minutes"] for p in history],
        [p["val_nats_per_char"] for p in history],
        "o",
        label="validation nats/char",
    )
    axis.axhline(1.45, color="grey", linestyle="--", label="target 1.45")
    axis.set_xlabel("minutes of training")
    axis.set_ylabel("nats per character")
    axis.set_ylim(1.0, 2.5)
    axis.set_title("Tiny Shakespeare language model")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def parse_options(argv: Sequence[str] | None = None) -> LMTrainOptions:
    return cli.parse_options(LMTrainOptions(), PROFILES, argv, __doc__)


def command() -> None:
    """The `rnn-serve-train-lm` console script."""
    cli.run(lambda: train(parse_options()))


if __name__ == "__main__":
    command()
