"""How often a top-p row's nucleus ends inside the sampler's ranked head, and what ranking costs.

    python -m benchmarks.sampling_head                      # artifacts/lm, 4,000 validation tokens
    python -m benchmarks.sampling_head --artifact DIR --tokens 8000

`models.sampling` ranks only the ``HEAD`` most likely tokens of a top-k / top-p row (`topk`) and
falls back to a full sort where the row's nucleus reaches past them. This prints, for the
temperatures and top-p values of Locust's request mix, the share of the served LM's next-token
distributions on validation text whose nucleus fits in the head, and the time of `topk` against
a full sort on a batch of 64 rows.
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.decode import milliseconds
from models.generation import Generator
from models.sampling import HEAD, nucleus_in_head
from training.data import load_text, split_text

TEMPERATURES = (0.7, 0.8, 1.0, 1.2)  # the non-greedy temperatures of loadtest/payloads.py
TOP_PS = (0.9, 0.95)


@torch.inference_mode()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", default="artifacts/lm")
    parser.add_argument("--tokens", type=int, default=4000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    generator = Generator.from_artifact(args.artifact)
    _, validation = split_text(load_text("tinyshakespeare"))
    ids = generator.tokenizer.encode(validation[: args.tokens * 8])[: args.tokens]
    logits = generator.model(torch.tensor([ids]))[0][0].float()
    print(f"head {HEAD} of {logits.shape[1]} tokens, {len(ids)} validation positions")
    for temperature in TEMPERATURES:
        probs = torch.softmax(logits / temperature, dim=-1)
        ranked, total = probs.topk(HEAD, dim=-1).values, probs.sum(dim=-1)
        fits = [nucleus_in_head(ranked, total, torch.tensor(p)) for p in TOP_PS]
        shares = [f"{share.double().mean().item():.3f}" for share in fits]
        print(f"temperature {temperature}: nucleus inside the head at top-p {TOP_PS}: {shares}")
    batch = torch.softmax(logits[:64], dim=-1)
    sort = milliseconds(lambda: batch.sort(dim=-1, descending=True, stable=True), 500)
    head = milliseconds(lambda: batch.topk(HEAD, dim=-1), 500)
    print(f"64 rows: full sort {sort:.3f} ms, topk({HEAD}) {head:.3f} ms ({sort / head:.1f}x)")


if __name__ == "__main__":
    main()
