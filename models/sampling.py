"""Per-row temperature / top-k / top-p sampling with one uniform draw per row.

`torch.multinomial` draws one random number per vocabulary entry; at batch 64 that was half
of a decode step here. Inverse-CDF sampling (cumulative sum + `searchsorted`) is exact and
needs a single uniform per row, drawn from that row's own seeded generator, so a row's tokens
never depend on which other rows share its batch.
"""

from __future__ import annotations

import torch

# Tokens ranked for a top-k / top-p row before it falls back to a full sort: how many rows
# of Locust's request mix fit, and what the ranking saves: `python -m benchmarks.sampling_head`.
HEAD = 64


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
    CDF in vocabulary order; rows with top-k or top-p rank their ``HEAD`` most likely tokens
    (`topk`, a few times cheaper than a full sort of 512) and only a row whose filter reaches
    past that head pays for a full sort (a [64, 512] sort cost as much as the int8 model step).
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
        picked[rows] = _sample_filtered(probs[rows], top_k[rows], top_p[rows], uniforms[rows])
    return torch.where(greedy, tokens, picked)


def _sample_filtered(
    probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, uniforms: torch.Tensor
) -> torch.Tensor:
    """Sampled token per row from its top-k / top-p survivors: from the row's ``HEAD`` most
    likely tokens where its filter ends inside them (decided by the row's own numbers, so a
    row's path never depends on its batch-mates), else from its fully sorted distribution."""
    ranked, order = probs.topk(min(HEAD, probs.shape[1]), dim=-1)
    total = probs.sum(dim=-1)
    # A nucleus-only row: mass beyond the head still counts in the nucleus's denominator.
    nucleus_only = top_k <= 0
    tail = torch.where(nucleus_only, total - ranked.sum(dim=-1), 0.0)
    in_head = torch.where(
        nucleus_only, nucleus_in_head(ranked, total, top_p), top_k <= ranked.shape[1]
    )
    chosen = torch.empty_like(top_k)
    if bool(in_head.any()):
        at = in_head.nonzero().squeeze(1)
        chosen[at] = _draw_ranked(
            ranked[at], order[at], top_k[at], top_p[at], tail[at], uniforms[at]
        )
    if not bool(in_head.all()):
        at = (~in_head).nonzero().squeeze(1)
        ranked, order = probs[at].sort(dim=-1, descending=True, stable=True)
        zero = ranked.new_zeros(len(at))
        chosen[at] = _draw_ranked(ranked, order, top_k[at], top_p[at], zero, uniforms[at])
    return chosen


def nucleus_in_head(ranked: torch.Tensor, total: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Per row: does the top-p nucleus end inside ``ranked`` (a row's most likely tokens, in
    descending order, out of ``total`` mass)? It does once the mass before the head's last
    token reaches top_p, so that token and everything after it are cut."""
    return (ranked.sum(dim=-1) - ranked[:, -1]) / total >= top_p


def _draw_ranked(
    ranked: torch.Tensor,
    order: torch.Tensor,
    top_k: torch.Tensor,
    top_p: torch.Tensor,
    tail: torch.Tensor,
    uniforms: torch.Tensor,
) -> torch.Tensor:
    """Vocabulary ids drawn from rows ranked in descending order (``order``: their ids)."""
    kept = _filter_sorted(ranked, top_k, top_p, tail)
    index = _inverse_cdf(kept, uniforms)
    return order.gather(1, index.unsqueeze(1)).squeeze(1)


def _inverse_cdf(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The first index whose cumulative mass exceeds u * total mass (unnormalised rows)."""
    cdf = probs.cumsum(dim=-1)
    targets = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)
    picked = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    # u * total can round up to total itself: then take the last token with mass, never one
    # that was filtered out.
    last_with_mass = probs.shape[1] - 1 - (probs > 0).flip(1).float().argmax(dim=1)
    return torch.minimum(picked, last_with_mass)


def _filter_sorted(
    probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor, tail: torch.Tensor
) -> torch.Tensor:
    """Zero the tail of probabilities sorted in descending order (renormalised by the caller).

    Top-k first, then the nucleus among the survivors renormalised (as HF and vLLM do).
    ``probs`` may be a head of each row's ranking: ``tail`` is the surviving mass left out of
    it (0 for a whole row, or where top-k ends inside the head)."""
    ranks = torch.arange(probs.shape[1], device=probs.device).unsqueeze(0)
    keep_k = (top_k <= 0).unsqueeze(1) | (ranks < top_k.unsqueeze(1))
    probs = probs * keep_k
    # Nucleus: keep the smallest prefix whose mass reaches top_p (the token that crosses the
    # threshold is kept, so at least one token always survives).
    cumulative = probs.cumsum(dim=-1)
    mass_before = (cumulative - probs) / (cumulative[:, -1] + tail).unsqueeze(1)
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


def penalise(
    logits: torch.Tensor,
    counts: dict[int, int],
    presence: float,
    frequency: float,
    bias: tuple[tuple[int, float], ...],
) -> torch.Tensor:
    """One row's logits [V] with OpenAI's penalties and logit bias, before sampling:
    ``mu[j] - c[j] * frequency - (c[j] > 0) * presence + bias[j]``, where ``c[j]`` counts how
    often token j was generated so far in this request (the prompt does not count)."""
    out = logits.clone()
    if counts and (presence or frequency):
        ids = torch.tensor(list(counts), dtype=torch.long)
        times = torch.tensor(list(counts.values()), dtype=out.dtype)
        out[ids] -= times * frequency + presence
    if bias:
        ids = torch.tensor([token for token, _ in bias], dtype=torch.long)
        out[ids] += torch.tensor([value for _, value in bias], dtype=out.dtype)
    return out
