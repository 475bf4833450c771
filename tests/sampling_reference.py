"""An independent reference for temperature, top-k and top-p sampling, in NumPy, written from
the definitions (it imports nothing of models/sampling.py), and the seeded uniform draws a
request's tokens consume.

The definitions:
- temperature T: probabilities softmax(logits / T); T = 0 is greedy (the first arg-max);
- top-k k > 0: only the k most probable tokens survive;
- top-p p < 1: among the survivors, renormalised, keep the smallest set of most probable tokens
  whose mass reaches p (the token that crosses p is kept: at least one always survives);
- one uniform u in [0, 1) per generated token, from the request's own generator: the token is
  the first one, in walk order, whose cumulative (surviving) mass exceeds u times the total.
  The walk order is the documented one (models/sampling.py's docstring): vocabulary order for
  a row with no filter, most probable first (ties by lower id) for a row with top-k or top-p.

Computed in float64; the server computes in float32, so a token could differ only where a
uniform lies within ~1e-7 of a cumulative boundary (for a fixed seed that is decided once,
and the tests' seeds do not).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from models.language_model import zero_state


def reference_token(
    logits: np.ndarray, temperature: float, top_k: int, top_p: float, uniform: float
) -> int:
    """The token the definitions pick for one row of ``logits`` and one uniform draw."""
    logits = np.asarray(logits, dtype=np.float64)
    if temperature == 0:
        return int(np.argmax(logits))
    scaled = logits / temperature
    probs = np.exp(scaled - scaled.max())
    probs /= probs.sum()
    if top_k <= 0 and top_p >= 1:
        order = np.arange(len(probs))  # no filter: walk the vocabulary in order
        kept = probs
    else:
        order = np.argsort(-probs, kind="stable")  # most probable first, ties by lower id
        kept = probs[order].copy()
        if top_k > 0:
            kept[top_k:] = 0.0
        share = kept / kept.sum()
        mass_before = np.cumsum(share) - share
        kept[mass_before >= top_p] = 0.0
    cumulative = np.cumsum(kept)
    position = int(np.searchsorted(cumulative, uniform * cumulative[-1], side="right"))
    last_alive = int(np.nonzero(kept)[0][-1])
    return int(order[min(position, last_alive)])


def seeded_uniforms(seed: int, count: int) -> np.ndarray:
    """The uniforms a request with ``seed`` consumes, one per generated token: ``count`` draws
    in float64 from a CPU `torch.Generator` seeded with it, taken in one call (the server takes
    them a block at a time; a CPU generator fills blocks in order, so the numbers agree)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(count, generator=generator, dtype=torch.float64).numpy()


class StepLogits:
    """The served model's logits, one row at a time: reads tokens through the generator's own
    decode step (int8 where the archive says so, the arithmetic the server runs) and returns
    the logits after the last one read. Only the model is shared with the server, never its
    sampler or its decode loop."""

    def __init__(self, generator) -> None:
        self.step = generator.step
        self.state = zero_state(generator.config, 1, generator.device)

    @torch.inference_mode()
    def __call__(self, ids: list[int]) -> np.ndarray:
        for token in ids:
            logits, self.state = self.step(torch.tensor([token]), self.state)
        return logits[0].float().cpu().numpy()


def reference_generation(
    read: Callable[[list[int]], np.ndarray],
    prompt_ids: list[int],
    max_new_tokens: int,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    seed: int = 0,
) -> list[int]:
    """Tokens the reference sampler generates from a model given as ``read(ids)``: the logits
    after reading ``ids`` (the prompt first, then each new token), continuing its own state."""
    uniforms = seeded_uniforms(seed, max_new_tokens)
    logits, generated = read(prompt_ids), []
    for uniform in uniforms:
        token = reference_token(logits, temperature, top_k, top_p, float(uniform))
        generated.append(token)
        logits = read([token])
    return generated


# One prompt and seed under each setting: what the reference says must differ and must agree.
SETTINGS = {
    "plain": {"temperature": 1.0},
    "cooler": {"temperature": 0.5},
    "top_k": {"temperature": 1.0, "top_k": 5},
    "top_p": {"temperature": 1.0, "top_p": 0.8},
    "top_k_1": {"temperature": 1.0, "top_k": 1},
    "top_p_tiny": {"temperature": 1.0, "top_p": 1e-9},
    "greedy": {"temperature": 0.0},
}
CHANGED = ("cooler", "top_k", "top_p")  # each must change the plain text at the same seed
GREEDY_ALIKE = ("top_k_1", "top_p_tiny")  # each must equal greedy decoding


def check_settings(served: dict[str, str], expected: dict[str, str]) -> None:
    """``served`` texts (by setting name) equal the reference's ``expected`` ones; the chosen
    prompt and seed make every setting matter, and the greedy-alike ones equal greedy."""
    for name in SETTINGS:
        assert served[name] == expected[name], (name, served[name], expected[name])
    for name in CHANGED:
        assert expected[name] != expected["plain"], f"{name} does not matter at this seed"
    for name in GREEDY_ALIKE:
        assert expected[name] == expected["greedy"], name
