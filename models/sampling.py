"""Per-row temperature / top-k / top-p sampling with one uniform draw per row.

`torch.multinomial` draws one random number per vocabulary entry; at batch 64 that was half
of a decode step here. Inverse-CDF sampling (cumulative sum + `searchsorted`) is exact and
needs a single uniform per row, drawn from that row's own seeded generator, so a row's tokens
never depend on which other rows share its batch.
"""

from __future__ import annotations

import torch


def sample(
    logits: torch.Tensor,
    temperature: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    uniforms: torch.Tensor,
) -> torch.Tensor:
    """Next token per row. logits [B, V]; temperature, top_p, uniforms [B] float; top_k [B] long.

    A temperature of 0 means greedy (argmax). top_k 0 and top_p 1 switch those filters off.
    ``uniforms`` are draws from U[0, 1), one per row.

    How a row is sampled depends on its own parameters only: rows without filters walk their
    CDF in vocabulary order; only rows with top-k or top-p pay for a sort (a [64, 512] sort
    cost as much as the int8 model step).
    """
    greedy = temperature <= 0
    tokens = logits.argmax(dim=-1)
    if bool(greedy.all()):
        return tokens
    scaled = logits.float() / torch.where(greedy, 1.0, temperature).unsqueeze(1)
    probs = torch.softmax(scaled, dim=-1)
    picked = _inverse_cdf(probs, uniforms)
    filtered = ((top_k > 0) | (top_p < 1)) & ~greedy
    if bool(filtered.any()):
        rows = filtered.nonzero().squeeze(1)
        ranked, order = probs[rows].sort(dim=-1, descending=True, stable=True)
        kept = _filter_sorted(ranked, top_k[rows], top_p[rows])
        chosen = _inverse_cdf(kept, uniforms[rows])
        picked[rows] = order.gather(1, chosen.unsqueeze(1)).squeeze(1)
    return torch.where(greedy, tokens, picked)


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The first index whose cumulative mass exceeds u * total mass (unnormalised rows)."""
    cdf = probs.cumsum(dim=-1)
    targets = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)
    picked = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    # u * total can round up to total itself: then take the last token with mass, never one
    # that was filtered out.
    last_with_mass = probs.shape[1] - 1 - (probs > 0).flip(1).float().argmax(dim=1)
    return torch.minimum(picked, last_with_mass)


def _filter_sorted(probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tail of probabilities sorted in descending order (renormalised by the caller).

    Top-k first, then the nucleus among the survivors renormalised (as HF and vLLM do)."""
    ranks = torch.arange(probs.shape[1], device=probs.device).unsqueeze(0)
    keep_k = (top_k <= 0).unsqueeze(1) | (ranks < top_k.unsqueeze(1))
    probs = probs * keep_k
    # Nucleus: keep the smallest prefix whose mass reaches top_p (the token that crosses the
    # threshold is kept, so at least one token always survives).
    cumulative = probs.cumsum(dim=-1)
    mass_before = (cumulative - probs) / cumulative[:, -1:]
    return probs * (mass_before < top_p.unsqueeze(1))


class UniformStream:
    """A row's own seeded U[0, 1) draws, taken from its generator a block at a time: the same
    numbers as one `torch.rand` call per token (a CPU generator fills a block in order), for
    one call per ``block`` tokens instead of one per token and row."""

    def __init__(self, seed: int, block: int = 64) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.block = block
        self.buffer: list[float] = []
        self.position = 0

    def next(self) -> float:
        if self.position == len(self.buffer):
            fresh = torch.rand(self.block, generator=self.generator, dtype=torch.float64)
            self.buffer, self.position = fresh.tolist(), 0
        self.position += 1
        return self.buffer[self.position - 1]


def draw_uniforms(streams: list[UniformStream]) -> torch.Tensor:
    """One U[0, 1) draw per row, each from that row's own stream."""
    return torch.tensor([stream.next() for stream in streams], dtype=torch.float64)
