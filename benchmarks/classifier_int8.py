"""fp32 `RecurrentClassifier` against the batch-invariant `Int8Classifier`, on SST-2 dev.

    python -m benchmarks.classifier_int8 --artifact artifacts/sentiment
    python -m benchmarks.classifier_int8 --artifact model_store --batch 16 --threads 1

``--artifact`` is an artifact folder, a ``.mar`` archive, or a model store holding
``sentiment.mar``. Prints sentences/s of the model's forward pass alone (texts encoded
beforehand, batches of ``--batch`` dev sentences in file order) for both models, measured in
interleaved rounds (median, with the range: the machine is shared, so compare only figures of
one run); dev accuracy of both; the share of dev sentences whose labels agree; and whether
int8 logits of a sample are bit-identical batched and one by one.

The served fp32 model packs mixed-length batches, which takes `nn.LSTM`'s native packed path;
only unpadded batches reach the fused oneDNN kernel. A third, reference-only figure runs the
same batches through the oneDNN path by declaring every row full length (padding computed as
tokens, so its answers are wrong for padded texts): the fastest fp32 `nn.LSTM` could go.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from models.classifier_predictor import ClassifierPredictor
from models.int8_classifier import Int8Classifier
from training.archive import unpack_archive
from training.data import load_sentiment

Batch = tuple[torch.Tensor, torch.Tensor]


def artifact_folder(path: Path, scratch: Path) -> Path:
    """The artifact folder for ``path``: itself, or a .mar (or a store's sentiment.mar)
    unpacked into ``scratch``."""
    if path.is_dir() and (path / "sentiment.mar").exists():
        path = path / "sentiment.mar"
    return unpack_archive(path, scratch) if path.suffix == ".mar" else path


def sentences_per_second(
    model: Callable[..., torch.Tensor], batches: list[Batch], seconds: float
) -> float:
    """Sentences/s of ``model`` looping over ``batches`` for about ``seconds``."""
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        for ids, lengths in batches:
            model(ids, lengths)
            done += ids.shape[0]
            if time.perf_counter() - started >= seconds:
                break
    return done / (time.perf_counter() - started)


@torch.inference_mode()
def speeds(
    models: dict[str, Callable[..., torch.Tensor]],
    batches: list[Batch],
    seconds: float,
    rounds: int,
) -> dict[str, tuple[float, float, float]]:
    """Median and range of sentences/s per model, the models taking turns round by round so
    that a slow spell of the shared machine hits both."""
    for model in models.values():
        model(*batches[0])  # warm-up
    rates: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            rates[name].append(sentences_per_second(model, batches, seconds / rounds))
    return {name: (statistics.median(r), min(r), max(r)) for name, r in rates.items()}


@torch.inference_mode()
def predictions(model: Callable[..., torch.Tensor], batches: list[Batch]) -> torch.Tensor:
    return torch.cat([model(ids, lengths).argmax(dim=-1) for ids, lengths in batches])


@torch.inference_mode()
def batch_invariant(model: Int8Classifier, batches: list[Batch]) -> tuple[int, int]:
    """(rows whose batched logits equal their one-by-one logits bit for bit, rows checked)."""
    equal = total = 0
    for ids, lengths in batches:
        batched = model(ids, lengths)
        for row, length in enumerate(lengths.tolist()):
            alone = model(ids[row : row + 1, :length], lengths[row : row + 1])
            equal += int(torch.equal(batched[row : row + 1], alone))
            total += 1
    return equal, total


def report_speeds(
    fp32: torch.nn.Module, int8: Int8Classifier, batches: list[Batch], seconds: float, rounds: int
) -> None:
    def dense(ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return fp32(ids, torch.full_like(lengths, ids.shape[1]))  # oneDNN; wrong when padded

    models = {
        "fp32 (served: packed nn.LSTM)": fp32,
        "int8 (Int8Classifier)": int8,
        "fp32 oneDNN dense (reference only)": dense,
    }
    rates = speeds(models, batches, seconds, rounds)
    for name, (median, low, high) in rates.items():
        print(f"  {name:<36} {median:6.0f} sentences/s (median of {rounds}: {low:.0f}-{high:.0f})")
    served, quantized, fused = (rate[0] for rate in rates.values())
    print(
        f"  int8 / fp32 served: {quantized / served:.2f}; "
        f"int8 / fp32 dense: {quantized / fused:.2f}"
    )


def report_quality(
    fp32: torch.nn.Module, int8: Int8Classifier, batches: list[Batch], labels: torch.Tensor
) -> None:
    labels32, labels8 = predictions(fp32, batches), predictions(int8, batches)
    for name, predicted in (("fp32", labels32), ("int8", labels8)):
        print(f"  dev accuracy {name}: {(predicted == labels).float().mean():.4f}")
    agree = int((labels32 == labels8).sum())
    print(f"  labels agree: {agree}/{len(labels)} ({agree / len(labels):.2%})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--artifact", type=Path, default=Path("artifacts/sentiment"))
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="timed seconds per model")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--sample", type=int, default=64, help="texts checked one by one")
    parser.add_argument("--data", default="sst2", help="sentiment source (see training.data)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as scratch:
        predictor = ClassifierPredictor.from_artifact(artifact_folder(args.artifact, Path(scratch)))
    dev = load_sentiment(args.data)["dev"]
    texts, labels = list(dev["sentence"]), torch.tensor(dev["label"])
    size = args.batch
    batches = [predictor.encode(texts[i : i + size]) for i in range(0, len(texts), size)]
    print(
        f"{len(texts)} dev sentences, batch {size}, {torch.get_num_threads()} thread(s); load "
        f"average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs (other work skews speeds)"
    )
    fp32, int8 = predictor.model, Int8Classifier(predictor.model)
    full = [b for b in batches if b[0].shape[0] == size] or batches
    report_speeds(fp32, int8, full, args.seconds, args.rounds)
    report_quality(fp32, int8, batches, labels)
    equal, total = batch_invariant(int8, batches[: -(-args.sample // size)])
    print(f"  int8 batched == one by one (bit for bit): {equal}/{total} texts")


if __name__ == "__main__":
    main()
