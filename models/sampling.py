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
    """
    greedy = temperature <= 0
    tokens = logits.argmax(dim=-1)
    if bool(greedy.all()):
        return tokens
    scaled = logits.float() / torch.where(greedy, 1.0, temperature).unsqueeze(1)
    # Every row walks its CDF in the same (descending, stable) order whether or not any row
    # filters: a row's token must not depend on its batch mates' parameters.
    scaled, order = scaled.sort(dim=-1, descending=True, stable=True)
    probs = _filter_sorted(torch.softmax(scaled, dim=-1), top_k, top_p)
    cdf = probs.cumsum(dim=-1)
    targets = (uniforms.to(cdf.dtype) * cdf[:, -1]).unsqueeze(1)
    picked = torch.searchsorted(cdf, targets, right=True).squeeze(1)
    # u * total can round up to total itself: then take the last token with mass, never a
    # filtered one.
    last_with_mass = probs.shape[1] - 1 - (probs > 0).flip(1).float().argmax(dim=1)
    picked = torch.minimum(picked, last_with_mass)
    picked = order.gather(1, picked.unsqueeze(1)).squeeze(1)
    return torch.where(greedy, tokens, picked)


def _filter_sorted(probs: torch.Tensor, top_k: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Zero the tail of probabilities sorted in descending order (renormalised by the caller)."""
    ranks = torch.arange(probs.shape[1], device=probs.device).unsqueeze(0)
    keep_k = (top_k <= 0).unsqueeze(1) | (ranks < top_k.unsqueeze(1))
    # Nucleus: keep the smallest prefix whose mass reaches top_p (the token that crosses the
    # threshold is kept, so at least one token always survives).
    mass_before = probs.cumsum(dim=-1) - probs
    keep_p = mass_before < top_p.unsqueeze(1)
    return probs * (keep_k & keep_p)


def row_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    return torch.Generator(device=device).manual_seed(seed)


def draw_uniforms(generators: list[torch.Generator]) -> torch.Tensor:
    """One U[0, 1) draw per row, each from that row's generator (CPU: cheap and device-free)."""
    return torch.cat([torch.rand(1, generator=g, dtype=torch.float64) for g in generators])
