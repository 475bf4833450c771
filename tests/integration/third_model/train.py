"""Train the topic model in seconds on sentences it makes up, and write its artifact folder.

    python -m handlers.topic.train --profile tiny --out artifacts/topic

Any trainer the registry names takes ``--profile`` and ``--out`` and writes ``config.json``,
``weights.pt`` and ``tokenizer.model`` there (`models.artifact`), plus ``metrics.json`` for
the training summary. Every profile is this small one.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch

from models.artifact import save_artifact
from models.classifier import ClassifierConfig, RecurrentClassifier, pad_batch
from models.text import PAD, UNK, WordTokenizer

TOPICS = {
    "animals": ("cat", "dog", "horse", "mouse", "bird", "cow", "fox", "sheep"),
    "food": ("bread", "soup", "cheese", "apple", "rice", "cake", "pasta", "salad"),
    "sport": ("football", "tennis", "goal", "match", "race", "team", "ball", "score"),
}
FILLER = ("the", "a", "my", "and", "saw", "liked", "was", "very", "good", "with", "today")
LABELS = tuple(TOPICS)
STEPS = 60  # batches of 32: enough for every dev sentence on these made-up ones


def sentences(count: int, rng: random.Random) -> list[tuple[str, int]]:
    """Filler words around one to three words of one topic: the topic is the label."""
    rows = []
    for _ in range(count):
        label = rng.randrange(len(LABELS))
        words = rng.choices(FILLER, k=rng.randint(2, 8))
        for word in rng.choices(TOPICS[LABELS[label]], k=rng.randint(1, 3)):
            words.insert(rng.randint(0, len(words)), word)
        rows.append((" ".join(words), label))
    return rows


def accuracy(model: RecurrentClassifier, ids, lengths, labels) -> float:
    model.eval()
    with torch.inference_mode():
        hits = (model(ids, lengths).argmax(-1) == labels).float().mean().item()
    model.train()
    return hits


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="tiny")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    started = time.perf_counter()
    torch.set_num_threads(1)  # tiny tensors: threads cost more than they bring
    rng = random.Random(0)
    torch.manual_seed(0)
    words = [PAD, UNK, *FILLER, *(word for group in TOPICS.values() for word in group)]
    tokenizer = WordTokenizer(words)
    config = ClassifierConfig(
        len(words), embed_dim=16, hidden_dim=16, num_layers=1, cell="gru", num_classes=3
    )
    model = RecurrentClassifier(config)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.02)
    dev = sentences(200, rng)
    dev_ids, dev_lengths = pad_batch(tokenizer.encode_batch([t for t, _ in dev]), 0)
    dev_labels = torch.tensor([label for _, label in dev])
    for _ in range(STEPS):
        batch = sentences(32, rng)
        ids, lengths = pad_batch(tokenizer.encode_batch([text for text, _ in batch]), 0)
        loss = torch.nn.functional.cross_entropy(
            model(ids, lengths), torch.tensor([label for _, label in batch])
        )
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    dev_accuracy = accuracy(model, dev_ids, dev_lengths, dev_labels)
    metrics = {"dev_accuracy": dev_accuracy, "seconds": time.perf_counter() - started}
    with tempfile.TemporaryDirectory() as scratch:
        vocabulary = tokenizer.save(Path(scratch) / "vocabulary.json")
        save_artifact(
            args.out, "topic", asdict(config), model.state_dict(), vocabulary, labels=list(LABELS)
        )
    (args.out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    print(f"topic: dev accuracy {dev_accuracy:.1%} in {metrics['seconds']:.1f} s")


if __name__ == "__main__":
    main()
