"""The sentiment student's training step: fp32 or bf16, unfused or fused AdamW, packed or not.

    python -m benchmarks.student_step                  # the default student's shape
    python -m benchmarks.student_step --hidden 256 --threads 1

Times forward + backward + optimizer step of `RecurrentClassifier` on random word ids in
batches of nearly one length (rows up to 2 shorter, so packed: `--batching buckets`) or of
exactly one length (unpacked: the trainer's default `--batching equal`), for every
combination, in interleaved rounds (median ms per step). Printed as ratios to the unfused
fp32 packed step measured in the same run: the figures behind the trainer's `fused=True`,
`--precision auto` and `--batching equal`. Quality at each setting is the trainer's business
(`python -m training.train_sentiment --precision fp32 ...` against the default).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time

import torch

from models.classifier import ClassifierConfig, RecurrentClassifier
from training.precision import autocast, resolve_precision
from training.train_sentiment import TrainOptions

DEFAULT = TrainOptions()  # the student's widths, pooling and dropout

# bf16 only where the CPU computes it natively: elsewhere oneDNN has no bf16 LSTM primitive
# (the step fails) and the trainer's "auto" picks fp32 anyway.
NATIVE_BF16 = resolve_precision("auto", torch.device("cpu")) == "bf16"
PRECISIONS = ("fp32", "bf16") if NATIVE_BF16 else ("fp32",)
# (precision, fused AdamW, batches)
SETTINGS = list(itertools.product(PRECISIONS, (False, True), ("packed", "equal")))


def step_ms(
    model: RecurrentClassifier,
    optimizer: torch.optim.Optimizer,
    precision: str,
    batches: list[tuple[torch.Tensor, torch.Tensor]],
) -> float:
    """Mean milliseconds of one full training step over ``batches``."""
    started = time.perf_counter()
    for ids, lengths in batches:
        with autocast(precision, torch.device("cpu")):
            logits = model(ids, lengths)
        loss = logits.float().logsumexp(1).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) * 1000 / len(batches)


def random_batches(
    count: int, batch: int, vocab: int, lengths: list[int], seed: int
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Batches of one nominal length each (cycling through ``lengths``), rows up to 2 shorter."""
    generator = torch.Generator().manual_seed(seed)
    out = []
    for i in range(count):
        length = lengths[i % len(lengths)]
        ids = torch.randint(1, vocab, (batch, length), generator=generator)
        row_lengths = torch.randint(max(1, length - 2), length + 1, (batch,), generator=generator)
        row_lengths[0] = length
        out.append((ids, row_lengths))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--vocab", type=int, default=27134)
    parser.add_argument("--embed", type=int, default=DEFAULT.embed_dim + DEFAULT.teacher_vectors)
    parser.add_argument("--hidden", type=int, default=DEFAULT.hidden_dim)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lengths", default="4,8,12,20", help="comma-separated batch lengths")
    parser.add_argument("--steps", type=int, default=20, help="steps per setting and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    config = ClassifierConfig(
        vocab_size=args.vocab,
        embed_dim=args.embed,
        hidden_dim=args.hidden,
        num_classes=2,
        pad_id=0,
        pooling=DEFAULT.pooling,
        dropout=DEFAULT.dropout,
    )
    model = RecurrentClassifier(config).train()
    lengths = [int(n) for n in args.lengths.split(",")]
    packed = random_batches(args.steps, args.batch, args.vocab, lengths, seed=1)
    shapes = {
        "packed": packed,
        "equal": [(ids, torch.full_like(rows, ids.shape[1])) for ids, rows in packed],
    }
    optimizers = {
        fused: torch.optim.AdamW(model.parameters(), lr=1e-4, fused=fused)
        for fused in (False, True)
    }
    times: dict[tuple[str, bool, str], list[float]] = {setting: [] for setting in SETTINGS}
    for _ in range(args.rounds):
        for precision, fused, shape in SETTINGS:
            batches = shapes[shape]
            step_ms(model, optimizers[fused], precision, batches[:2])  # warm-up
            times[precision, fused, shape].append(
                step_ms(model, optimizers[fused], precision, batches)
            )
    base = statistics.median(times["fp32", False, "packed"])
    print(
        f"student {args.hidden}x2 BiLSTM, embedding {args.vocab}x{args.embed}, batch "
        f"{args.batch}, lengths {lengths}, {args.threads} threads, {args.rounds} rounds"
    )
    if not NATIVE_BF16:
        print("  (no native bf16 on this CPU: fp32 only)")
    for precision, fused, shape in SETTINGS:
        ms = statistics.median(times[precision, fused, shape])
        label = f"{precision} {'fused' if fused else 'unfused'} AdamW, {shape}"
        print(f"  {label:<30} {ms:7.1f} ms/step  {base / ms:5.2f}x")


if __name__ == "__main__":
    main()
